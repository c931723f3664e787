// The tokenizer as GGUF metadata (tokenizer.ggml.*), both ways:
//   awq::Tokenizer (a Hugging Face tokenizer.json) -> GgufVocab -> keys a GGUF writer stores;
//   keys of a GGUF file -> GgufVocab -> awq::Tokenizer (an equivalent tokenizer.json built in
//   memory), so a GGUF runs with awq.cpp's own tokenizer.
//
// Two vocabulary kinds, as llama.cpp has them:
//   "llama" (SentencePiece-style BPE with byte fallback): tokens, scores, token types. llama.cpp
//     merges the adjacent pair whose concatenation has the highest score. Hugging Face merges the
//     pair of lowest rank instead, so on export every merged token gets score -(rank + 1) of the
//     first merge that makes it, which makes both rules pick the same pair; on import the merges
//     are rebuilt from the scores as Hugging Face's SentencePiece converter does (every split of
//     a token into two vocabulary pieces, by descending score).
//   "gpt2" (byte-level BPE): tokens, token types, merges, and a pre-tokenizer name ("gpt-2",
//     "llama-bpe", "qwen2", "smollm") standing for the regex split llama.cpp applies.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "gguf/gguf_file.h"
#include "tokenizer/tokenizer.h"

namespace awq::gguf {

struct GgufVocab {
  std::string model;  // "llama" or "gpt2"
  std::string pre;    // "default" for "llama"
  std::vector<std::string> tokens;
  std::vector<float> scores;        // "llama" only
  std::vector<int32_t> types;       // TokenType values
  std::vector<std::string> merges;  // "gpt2" only: "left right"
  int64_t bos = -1, eos = -1, unk = -1, pad = -1;
  bool add_bos = false, add_eos = false;
  bool add_space_prefix = true;  // "llama" only
  std::string chat_template;
};

// The vocabulary of `tok`, padded to `n_vocab` ids (the embedding's row count) with unused
// "[PAD<id>]" tokens, as llama.cpp's converter does; holes in the vocabulary get the same. For
// byte-level tokenizers the pre-tokenizer is identified by building the GGUF side's tokenizer for
// each known name and comparing encodings of a probe text. awq::Error naming `source` when the
// tokenizer has more tokens than n_vocab, duplicate token strings, or no known equivalent.
GgufVocab vocab_from_tokenizer(const Tokenizer& tok, int64_t n_vocab, const std::string& source);

// Writes tokenizer.ggml.* (and tokenizer.chat_template).
void write_vocab(GgufWriter& w, const GgufVocab& v);

// Reads tokenizer.ggml.* from a file; errors name the file and the key.
GgufVocab read_vocab(const GgufFile& f);

// An awq::Tokenizer equivalent to the vocabulary (tokenizer.json built in memory).
Tokenizer tokenizer_from_vocab(const GgufVocab& v, const std::string& source);
inline Tokenizer tokenizer_from_gguf(const GgufFile& f) {
  return tokenizer_from_vocab(read_vocab(f), f.path());
}

// The text used to check that a vocabulary reproduces its source tokenizer: whitespace runs,
// digits, punctuation, apostrophes, accents, CJK, emoji.
const std::string& vocab_probe_text();

// The pre-tokenizer names tokenizer_from_vocab understands for "gpt2" vocabularies.
std::vector<std::string> supported_bpe_pre_names();

}  // namespace awq::gguf
