#include "tokenizer/added_vocab.h"

#include <algorithm>

#include "tokenizer/normalizer.h"
#include "tokenizer/unicode.h"

namespace awq::tok {

void AddedVocab::add(const AddedToken& t) {
  if (t.content.empty()) return;  // Hugging Face ignores empty added tokens
  if (auto it = by_id_.find(t.id); it != by_id_.end()) {
    AddedToken& old = tokens_[it->second];
    by_content_.erase(old.content);
    special_.erase(old.content);
    old = t;
  } else {
    by_id_[t.id] = tokens_.size();
    tokens_.push_back(t);
  }
  by_content_[t.content] = t.id;
  if (t.special) special_.insert(t.content);
}

void AddedVocab::build_matcher(Matcher& m, bool normalized, const Normalizer& n) {
  for (auto& v : m.by_first) v.clear();
  m.empty = true;
  for (size_t k = 0; k < tokens_.size(); ++k) {
    const AddedToken& t = tokens_[k];
    if (t.normalized != normalized) continue;
    std::string pattern = t.content;
    if (normalized) n.normalize(pattern);
    if (pattern.empty()) continue;
    m.by_first[static_cast<unsigned char>(pattern[0])].emplace_back(std::move(pattern), k);
    m.empty = false;
  }
  for (auto& v : m.by_first) {
    std::stable_sort(v.begin(), v.end(),
                     [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  }
}

void AddedVocab::build(const Normalizer& n) {
  build_matcher(raw_, false, n);
  build_matcher(normalized_, true, n);
}

static bool ends_with_word(std::string_view s) {
  if (s.empty()) return false;
  size_t start = s.size() - 1;
  while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  size_t i = start;
  return is_word_char(next_code_point(s, i));
}

static bool starts_with_word(std::string_view s) {
  if (s.empty()) return false;
  size_t i = 0;
  return is_word_char(next_code_point(s, i));
}

// Start of the run of white space that ends `s` (s.size() when none).
static size_t trailing_space_start(std::string_view s) {
  size_t e = s.size();
  while (e > 0) {
    size_t start = e - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    size_t i = start;
    if (!is_white_space(next_code_point(s, i))) break;
    e = start;
  }
  return e;
}

// Length of the run of white space that begins `s`.
static size_t leading_space_length(std::string_view s) {
  size_t b = 0;
  while (b < s.size()) {
    size_t i = b;
    if (!is_white_space(next_code_point(s, i))) break;
    b = i;
  }
  return b;
}

void AddedVocab::split(std::string_view text, bool normalized, std::vector<Segment>& out) const {
  out.clear();
  const Matcher& m = normalized ? normalized_ : raw_;
  if (m.empty || text.empty()) {
    if (!text.empty()) out.push_back({0, text.size(), -1});
    return;
  }
  size_t start_offset = 0;  // end of the previous accepted match
  size_t pos = 0;           // where the leftmost-longest search resumes
  while (pos < text.size()) {
    // Leftmost position with a match; the longest pattern there.
    size_t mstart = text.size(), mend = 0, mtok = 0;
    for (size_t i = pos; i < text.size() && mstart == text.size(); ++i) {
      for (const auto& [pat, k] : m.by_first[static_cast<unsigned char>(text[i])]) {
        if (text.compare(i, pat.size(), pat) == 0) {
          mstart = i;
          mend = i + pat.size();
          mtok = k;
          break;
        }
      }
    }
    if (mstart == text.size()) break;
    pos = mend;
    const AddedToken& t = tokens_[mtok];
    size_t start = mstart, stop = mend;
    if (t.single_word) {
      const bool start_space = start == 0 || !ends_with_word(text.substr(0, start));
      const bool stop_space = stop == text.size() || !starts_with_word(text.substr(stop));
      if (!start_space || !stop_space) continue;  // not a whole word: leave it as text
    }
    if (t.lstrip) start = std::max(trailing_space_start(text.substr(0, start)), start_offset);
    if (t.rstrip) stop += leading_space_length(text.substr(stop));
    if (start_offset < start) out.push_back({start_offset, start, -1});
    out.push_back({start, stop, t.id});
    start_offset = stop;
    // Note: as in Hugging Face, the search resumes at the end of the pattern match even when
    // rstrip absorbed whitespace beyond it.
  }
  if (start_offset < text.size()) out.push_back({start_offset, text.size(), -1});
}

const AddedToken* AddedVocab::by_id(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

int32_t AddedVocab::id_of(std::string_view content) const {
  auto it = by_content_.find(std::string(content));
  return it == by_content_.end() ? -1 : it->second;
}

bool AddedVocab::is_special_content(std::string_view content) const {
  return special_.count(std::string(content)) > 0;
}

}  // namespace awq::tok
