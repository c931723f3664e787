// Pre-tokenizers of tokenizer.json ("pre_tokenizer"): Split (regex or literal, with the five
// delimiter behaviours), ByteLevel (GPT-2 regex split + byte-to-character mapping), Metaspace
// (' ' -> '▁', prepend scheme, split before '▁'), Digits, and Sequence of these. Each turns the
// text pieces between added tokens into smaller pieces that the model encodes independently.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <string>
#include <vector>

#include "tokenizer/json_util.h"

namespace awq::tok {

class Regex;

struct Piece {
  std::string text;
  bool at_start = false;  // begins at offset 0 of the original input (Metaspace "first")
};

class PreTokenizer {
 public:
  enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

  // `j` may be null (no pre-tokenization). Unsupported types are an awq::Error naming `what`.
  static PreTokenizer from_json(const nlohmann::json& j, const std::string& what);
  void pre_tokenize(std::vector<Piece>& pieces) const;
  bool has_byte_level() const;
  bool has_metaspace() const;
  // A Metaspace step that prepends '▁' (prepend_scheme always or first).
  bool metaspace_prepends() const;
  // The split regexes in order (ByteLevel with use_regex contributes GPT-2's), for exporters.
  std::vector<std::string> regex_patterns() const;

 private:
  struct Step {
    enum Kind { kSplit, kByteLevel, kMetaspace, kDigits } kind;
    std::shared_ptr<const Regex> regex;  // Split with a Regex pattern; ByteLevel with use_regex
    std::string literal;                 // Split with a String pattern
    Behavior behavior = Behavior::kIsolated;
    bool invert = false;
    bool add_prefix_space = false;  // ByteLevel
    std::string replacement;        // Metaspace
    PrependScheme prepend = PrependScheme::kAlways;
    bool split = true;               // Metaspace
    bool individual_digits = false;  // Digits
  };
  void add(const nlohmann::json& j, const std::string& what);
  void apply(const Step& st, const Piece& in, std::vector<Piece>& out) const;
  std::vector<Step> steps_;
};

// GPT-2's pre-tokenization regex, which the ByteLevel pre-tokenizer uses.
extern const char* const kGpt2Pattern;

}  // namespace awq::tok
