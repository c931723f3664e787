// A PCRE2 regex (UTF + UCP, JIT-compiled when available) for the pre-tokenizer patterns of
// tokenizer.json, which Hugging Face evaluates with Oniguruma. The patterns in use (GPT-2, Llama-3,
// Qwen2: \p{L}, \p{N}, (?i:...), lookahead) mean the same in both engines, except that Oniguruma's
// Unicode \s also matches U+0085 (NEL); the pattern is rewritten so that PCRE2 agrees.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace awq::tok {

class Regex {
 public:
  // Throws awq::Error (naming `what` and the pattern) when the pattern does not compile.
  Regex(const std::string& pattern, const std::string& what);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // All non-overlapping matches in `text` (valid UTF-8), leftmost first, as [begin, end) byte
  // offsets. After an empty match the search resumes one character further, as Oniguruma does.
  void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;
  const std::string& pattern() const { return pattern_; }

  static std::string escape(std::string_view literal);

 private:
  struct Impl;
  std::string pattern_;
  std::unique_ptr<Impl> impl_;
};

// Rewrites \s and \S so that they include U+0085 as Oniguruma's Unicode \s does.
std::string oniguruma_compatible(const std::string& pattern);

}  // namespace awq::tok
