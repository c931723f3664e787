// Calibration data, built as llm-awq and AutoAWQ build it (awq-spec §1.2): each document is
// stripped and tokenized with BOS; the first n_samples accepted documents are concatenated into
// one token stream and cut into blocks of seqlen tokens, the tail dropped. Blocks therefore cross
// document boundaries and carry mid-block BOS tokens, exactly like the reference.
// The one departure is what happens to a document longer than seqlen (CalibLong): the reference
// skips it, which refuses a book or a log file without blank lines outright; by default it is cut
// into pieces of seqlen tokens instead.
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

// What becomes of a document longer than seqlen tokens (--calib-long). Each sample taken counts
// against n_samples, so the stream never holds more than n_samples * seqlen tokens, whatever the
// mode: a 10 MB book costs no more memory than 128 short documents.
enum class CalibLong {
  Split,     // cut into consecutive pieces of seqlen tokens, each a sample (the default)
  Skip,      // left out: AutoAWQ and llm-awq
  Truncate,  // its first seqlen tokens only, as llm-compressor's tokenizer call truncates
             // (truncation=True, max_length); they then join the stream like any document
};
CalibLong parse_calib_long(const std::string& s);  // "split" | "skip" | "truncate"
const char* calib_long_name(CalibLong m);

struct CalibBlocks {
  int64_t seqlen = 0;
  int64_t n_blocks = 0;
  std::vector<int32_t> tokens;  // [n_blocks * seqlen]
  CalibLong long_docs = CalibLong::Split;
  int64_t docs_taken = 0;      // documents that gave tokens, whole, split or truncated
  int64_t docs_too_long = 0;   // longer than seqlen: split, truncated or skipped (long_docs)
  int64_t samples = 0;         // what n_samples counts: whole documents, pieces, truncated ones
  int64_t pieces = 0;          // Split: the pieces taken of the long documents
  int64_t tokens_read = 0;     // tokens of every document encoded, skipped ones included
  int64_t tokens_total = 0;    // tokens of the samples taken, before the cut into blocks
  int64_t tokens_dropped = 0;  // tail that did not fill a block
};

// Builds the blocks from documents given in the order they should be taken; `encode` returns a
// document's tokens with BOS (called lazily, only until n_samples samples are taken).
// Throws awq::Error (naming `source`) if there is not enough text for a single block.
CalibBlocks build_calib_blocks(size_t n_docs,
                               const std::function<std::vector<int32_t>(size_t)>& encode,
                               int64_t n_samples, int64_t seqlen, CalibLong long_docs,
                               const std::string& source);

// "3 documents (1 longer than 512 tokens split into 40 pieces), 20,480 tokens used of 20,517
// read": what quantize and imatrix print. Documents after the last sample are not read.
std::string describe_calibration(const CalibBlocks& c);

// The order in which documents are taken: file order, or a seeded shuffle (--shuffle SEED) that
// is the same on every platform (own Fisher-Yates over splitmix64, no std distributions).
std::vector<size_t> document_order(size_t n_docs, std::optional<uint64_t> shuffle_seed);

}  // namespace awq
