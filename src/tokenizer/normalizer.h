// Normalizers of tokenizer.json ("normalizer"): NFC/NFD/NFKC/NFKD, Prepend, Replace, Strip and
// Sequence of these, applied to the text between added tokens before pre-tokenization.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <string>
#include <vector>

namespace awq::tok {

class Regex;

class Normalizer {
 public:
  // `j` may be null (no normalization). Unsupported types are an awq::Error naming `what`.
  static Normalizer from_json(const nlohmann::json& j, const std::string& what);
  void normalize(std::string& s) const;
  bool empty() const { return steps_.empty(); }
  // True when it contains Prepend("▁") or Replace(" " -> "▁"): the legacy Llama SentencePiece form.
  bool is_sentencepiece_style() const;
  bool prepends_metaspace() const;  // has Prepend("▁")

 private:
  struct Step {
    enum Kind { kNFC, kNFD, kNFKC, kNFKD, kPrepend, kReplace, kStrip } kind;
    std::string text;                    // Prepend: the prefix; Replace: the literal pattern
    std::string content;                 // Replace: the replacement
    std::shared_ptr<const Regex> regex;  // Replace with a Regex pattern
    bool left = false, right = false;    // Strip
  };
  void add(const nlohmann::json& j, const std::string& what);
  std::vector<Step> steps_;
};

// Replaces every non-overlapping occurrence of `from` in `s` (leftmost first) by `to`.
std::string replace_all(const std::string& s, const std::string& from, const std::string& to);
// Replaces every match of `re` in `s` by `to`.
std::string replace_all(const std::string& s, const Regex& re, const std::string& to);

}  // namespace awq::tok
