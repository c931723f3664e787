// The native tokenizer: Hugging Face tokenizer.json (BPE: byte-level as GPT-2 / Llama-3 / Qwen2,
// or SentencePiece-style with byte fallback as Llama-2 / Mistral / Phi-3) with the semantics of
// the `tokenizers` library, plus what Transformers takes from tokenizer_config.json (add_bos_token
// for Llama-family tokenizers, bos/eos tokens). Also: incremental decoding for streaming output,
// conversion of a llama2.c tokenizer.bin to tokenizer.json, and a synthetic byte-level tokenizer.
//
// Pipeline of encode(): added tokens are split out (raw text for normalized=false tokens, then
// the normalizer runs on the rest, then normalized=true tokens are split out), the pre-tokenizer
// cuts the remaining text into pieces, the BPE model encodes each piece (cached per piece), and the
// post-processor adds BOS/EOS when add_special is set.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace awq {

enum class TokenizerKind {
  kSentencePieceBpe,  // '▁' for spaces, <0xNN> byte fallback (Llama-2, Mistral, Phi-3, llama2.c)
  kByteLevelBpe,      // GPT-2 byte-to-character alphabet (GPT-2, Llama-3, Qwen2)
  kOtherBpe,          // BPE with neither convention
};

// Token types in the sense of GGUF's tokenizer.ggml.token_type.
enum class TokenType : uint8_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,      // special added token (BOS, EOS, chat markers)
  kUserDefined = 4,  // added token that is not special
  kUnused = 5,       // an id with no token (a hole in the vocabulary)
  kByte = 6,         // <0xNN> byte-fallback token
};

class Tokenizer {
 public:
  // Loads <dir>/tokenizer.json and, when present, <dir>/tokenizer_config.json and
  // <dir>/special_tokens_map.json. A missing or malformed file is an awq::Error naming it.
  static Tokenizer from_dir(const std::string& dir);
  // From file contents; `tokenizer_config_json` may be empty. `source` names them in errors.
  static Tokenizer from_json(const std::string& tokenizer_json,
                             const std::string& tokenizer_config_json,
                             const std::string& special_tokens_map_json = "",
                             const std::string& source = "tokenizer.json");

  // Text (UTF-8; invalid sequences are first replaced by U+FFFD) to ids. Added tokens in the text
  // are always recognized; add_special adds what the post-processor adds (BOS for Llama-2).
  std::vector<int32_t> encode(std::string_view text, bool add_special = true) const;
  // Ids to text, through the decoder. Ids with no token are skipped (as Hugging Face does);
  // skip_special drops special added tokens.
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;
  // As decode(), but byte tokens keep their raw bytes even when they do not form valid UTF-8
  // (no U+FFFD substitution), for incremental decoding.
  std::string decode_raw(std::span<const int32_t> ids, bool skip_special = false) const;

  int32_t bos_id() const;  // -1 if none
  int32_t eos_id() const;  // -1 if none
  int32_t unk_id() const;  // -1 if none
  int32_t pad_id() const;  // -1 if none
  bool adds_bos() const;   // encode(text, true) starts with bos_id()
  bool adds_eos() const;   // encode(text, true) ends with eos_id()
  // Largest id + 1 over the model vocabulary and the added tokens.
  int64_t vocab_size() const;

  // --- for exporters (GGUF) ---
  TokenizerKind kind() const;
  // Per id: the token string as in the vocabulary (or the added token's content); "" for holes.
  const std::vector<std::string>& tokens() const;
  const std::string& token(int32_t id) const;
  int32_t token_to_id(std::string_view token) const;  // added tokens first, then the vocab; -1
  TokenType token_type(int32_t id) const;
  bool is_special(int32_t id) const;  // a special added token
  bool is_added(int32_t id) const;    // any added token
  bool is_byte(int32_t id) const;     // a <0xNN> byte-fallback token
  // BPE merges in rank order (rank 0 first).
  const std::vector<std::pair<std::string, std::string>>& merges() const;
  // The pre-tokenizer's split regexes, in order (empty for SentencePiece-style).
  std::vector<std::string> pre_tokenizer_patterns() const;
  // True when the SentencePiece-style '▁' prefix is added to the text (legacy Prepend normalizer
  // or Metaspace with prepend_scheme always/first).
  bool adds_space_prefix() const;
  // tokenizer_config.json's "legacy" (nullopt when absent), "chat_template" ("" when absent).
  std::optional<bool> legacy() const;
  const std::string& chat_template() const;

  struct Impl;

 private:
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

// Incremental decoding for streaming generation: push ids one at a time and get back the text that
// became complete. Never splits a UTF-8 character (byte-fallback tokens and byte-level pieces of a
// character are held back until the character is whole), and applies the SentencePiece leading-
// space strip only at the start of the stream, so the concatenation of all pieces plus flush()
// equals tokenizer.decode(all ids) for valid text.
class StreamDecoder {
 public:
  explicit StreamDecoder(Tokenizer tokenizer, bool skip_special = false);
  std::string push(int32_t id);
  // The text still held back (an incomplete character becomes U+FFFD); the stream then restarts.
  std::string flush();

 private:
  Tokenizer tok_;
  bool skip_special_;
  std::vector<int32_t> window_;  // context token(s) + ids not yet fully emitted
  size_t emitted_ = 0;           // bytes of decode_raw(window_) already returned
};

// Tokenizer files generated for checkpoints that lack them.
struct GeneratedTokenizer {
  std::string tokenizer_json, tokenizer_config_json;
};

// A Hugging Face tokenizer.json + tokenizer_config.json equivalent to a llama2.c tokenizer.bin
// (int32 max_token_length, then per token {f32 score, int32 len, bytes}): SentencePiece-style BPE
// with byte fallback whose merges, ranked by score, make HF's BPE reproduce llama2.c's greedy
// "merge the adjacent pair whose concatenation scores highest". Ids 0, 1, 2 are <unk>, <s>, </s>
// (BOS added by the post-processor). A truncated or malformed file, or one whose token count is not
// `expected_vocab_size` (when >= 0, e.g. the model header's), is an awq::Error naming it.
GeneratedTokenizer tokenizer_json_from_llama2c(const std::string& tokenizer_bin_path,
                                               int64_t expected_vocab_size = -1);
GeneratedTokenizer tokenizer_json_from_llama2c_bytes(const std::string& bytes,
                                                     const std::string& source,
                                                     int64_t expected_vocab_size = -1);

// A byte-level BPE tokenizer with exactly `vocab_size` ids (>= 258): the 256 byte characters,
// deterministic merges (letter pairs, space+letter, ...) up to vocab_size - 2, then
// <|begin_of_text|> (BOS, added by the post-processor) and <|end_of_text|> (EOS). For synthetic
// checkpoints that have no real tokenizer.
GeneratedTokenizer synthetic_byte_level_tokenizer(int64_t vocab_size);

}  // namespace awq
