// Calibration data, built as llm-awq and AutoAWQ build it (awq-spec §1.2): each document is
// stripped and tokenized with BOS; documents longer than the sequence length are skipped (not
// truncated); the first n_samples accepted documents are concatenated into one token stream and
// cut into blocks of seqlen tokens, the tail dropped. Blocks therefore cross document boundaries
// and carry mid-block BOS tokens, exactly like the reference.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace awq {

// How one calibration file is cut into documents.
enum class DocSplit {
  Auto,        // JSON lines for *.jsonl (or a ":field" suffix); <|endoftext|> if the text has one;
               // else blank-line paragraphs
  EndOfText,   // on the literal "<|endoftext|>" separator
  Paragraphs,  // on runs of blank (empty or whitespace-only) lines
  JsonLines,   // one JSON value per line: an object's `field`, or a bare string
};

// Splits `text` (read from `source`, named in errors) into documents, each stripped of surrounding
// whitespace; empty documents are dropped. For JsonLines, `field` names the text field.
std::vector<std::string> split_documents(const std::string& text, DocSplit how,
                                         const std::string& field, const std::string& source);

// Reads the documents named by a --calib argument: FILE, DIR (its regular files, sorted by name,
// hidden ones skipped) or FILE.jsonl[:field] (default field "text").
std::vector<std::string> load_calib_documents(const std::string& spec);

struct CalibBlocks {
  int64_t seqlen = 0;
  int64_t n_blocks = 0;
  std::vector<int32_t> tokens;  // [n_blocks * seqlen]
  int64_t docs_taken = 0;       // accepted documents (AutoAWQ's n_samples counts these)
  int64_t docs_too_long = 0;    // skipped because longer than seqlen
  int64_t tokens_total = 0;     // tokens in the accepted documents
  int64_t tokens_dropped = 0;   // tail that did not fill a block
};

// Builds the blocks from documents given in the order they should be taken; `encode` returns a
// document's tokens with BOS (called lazily, only until n_samples documents are accepted).
// Throws awq::Error (naming `source`) if there is not enough text for a single block.
CalibBlocks build_calib_blocks(size_t n_docs,
                               const std::function<std::vector<int32_t>(size_t)>& encode,
                               int64_t n_samples, int64_t seqlen, const std::string& source);

// The order in which documents are taken: file order, or a seeded shuffle (--shuffle SEED) that
// is the same on every platform (own Fisher-Yates over splitmix64, no std distributions).
std::vector<size_t> document_order(size_t n_docs, std::optional<uint64_t> shuffle_seed);

}  // namespace awq
