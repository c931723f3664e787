// Added tokens of tokenizer.json ("added_tokens"): special and ordinary tokens matched in the text
// before the model sees it. As in Hugging Face tokenizers, tokens with normalized=false are found
// in the raw text first; the remaining text is normalized and then searched for the normalized
// forms of the normalized=true tokens. Matching is leftmost-longest, with the lstrip / rstrip
// (absorb neighbouring whitespace) and single_word (must not touch word characters) options.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace awq::tok {

class Normalizer;

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool single_word = false, lstrip = false, rstrip = false, normalized = true, special = false;
};

class AddedVocab {
 public:
  // Adds or replaces (same id) a token. Call build() after the last add.
  void add(const AddedToken& t);
  // Builds the raw-text and normalized-text matchers; `n` normalizes the normalized=true tokens.
  void build(const Normalizer& n);

  struct Segment {
    size_t begin, end;
    int32_t id;  // -1: ordinary text
  };
  // Splits `text` into text segments and added-token matches, covering it; `normalized` picks the
  // matcher (false: tokens with normalized=false, against raw text).
  void split(std::string_view text, bool normalized, std::vector<Segment>& out) const;

  const AddedToken* by_id(int32_t id) const;
  int32_t id_of(std::string_view content) const;  // -1 when absent
  bool is_special_content(std::string_view content) const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }
  bool empty() const { return tokens_.empty(); }

 private:
  struct Matcher {
    // Candidate patterns by first byte, longest first: (pattern, index into tokens_).
    std::array<std::vector<std::pair<std::string, size_t>>, 256> by_first;
    bool empty = true;
  };
  void build_matcher(Matcher& m, bool normalized, const Normalizer& n);
  std::vector<AddedToken> tokens_;
  std::unordered_map<int32_t, size_t> by_id_;
  std::unordered_map<std::string, int32_t> by_content_;
  std::unordered_set<std::string> special_;
  Matcher raw_, normalized_;
};

}  // namespace awq::tok
