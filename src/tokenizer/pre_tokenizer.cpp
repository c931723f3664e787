#include "tokenizer/pre_tokenizer.h"

#include <utf8proc.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace awq::tok {

using json = nlohmann::json;

const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

static std::shared_ptr<const Regex> gpt2_regex() {
  static const auto re = std::make_shared<const Regex>(kGpt2Pattern, "ByteLevel pre-tokenizer");
  return re;
}

static PreTokenizer::Behavior read_behavior(const json& j, const std::string& what) {
  const std::string b = j.get<std::string>();
  using B = PreTokenizer::Behavior;
  if (b == "Removed") return B::kRemoved;
  if (b == "Isolated") return B::kIsolated;
  if (b == "MergedWithPrevious") return B::kMergedWithPrevious;
  if (b == "MergedWithNext") return B::kMergedWithNext;
  if (b == "Contiguous") return B::kContiguous;
  fail("{}: unknown split behavior \"{}\"", what, b);
}

PreTokenizer PreTokenizer::from_json(const json& j, const std::string& what) {
  PreTokenizer p;
  if (!j.is_null()) p.add(j, what);
  return p;
}

void PreTokenizer::add(const json& j, const std::string& what) {
  const std::string type = component_type(j, what + " (pre_tokenizer)");
  Step st{};
  if (type == "Sequence") {
    for (const json& sub : j.at("pretokenizers")) add(sub, what);
    return;
  } else if (type == "Split") {
    st.kind = Step::kSplit;
    read_pattern(j.at("pattern"), what + " (Split pre-tokenizer)", &st.literal, &st.regex);
    st.behavior = read_behavior(j.at("behavior"), what);
    st.invert = j.value("invert", false);
  } else if (type == "ByteLevel") {
    st.kind = Step::kByteLevel;
    st.add_prefix_space = j.value("add_prefix_space", true);
    if (j.value("use_regex", true)) st.regex = gpt2_regex();
  } else if (type == "Metaspace") {
    st.kind = Step::kMetaspace;
    st.replacement = j.value("replacement", std::string("\xE2\x96\x81"));
    st.prepend = read_prepend_scheme(j, what);
    st.split = j.contains("split") && !j["split"].is_null() ? j["split"].get<bool>() : true;
  } else if (type == "Digits") {
    st.kind = Step::kDigits;
    st.individual_digits = j.value("individual_digits", false);
  } else {
    fail(
        "{}: unsupported pre_tokenizer type \"{}\" (supported: Split, ByteLevel, Metaspace, "
        "Digits, Sequence)",
        what, type);
  }
  steps_.push_back(std::move(st));
}

namespace {

struct Segment {
  size_t begin, end;
  bool is_match;
};

// Hugging Face's Pattern::find_matches: matches and the gaps between them, covering the text.
void segments_from_matches(const std::string& text,
                           const std::vector<std::pair<size_t, size_t>>& matches,
                           std::vector<Segment>& segs) {
  segs.clear();
  if (text.empty()) {
    segs.push_back({0, 0, false});
    return;
  }
  size_t prev = 0;
  for (const auto& [b, e] : matches) {
    if (prev != b) segs.push_back({prev, b, false});
    segs.push_back({b, e, true});
    prev = e;
  }
  if (prev != text.size()) segs.push_back({prev, text.size(), false});
}

// Every character satisfying `pred` is a one-character match.
template <typename Pred>
void char_matches(const std::string& text, Pred pred,
                  std::vector<std::pair<size_t, size_t>>& matches) {
  matches.clear();
  size_t i = 0;
  while (i < text.size()) {
    const size_t b = i;
    const char32_t cp = next_code_point(text, i);
    if (pred(cp)) matches.emplace_back(b, i);
  }
}

// NormalizedString::split: turns the segments into pieces according to the behaviour.
void split_segments(const Piece& in, std::vector<Segment>& segs, PreTokenizer::Behavior behavior,
                    bool invert, std::vector<Piece>& out) {
  using B = PreTokenizer::Behavior;
  if (invert)
    for (Segment& s : segs) s.is_match = !s.is_match;
  std::vector<std::pair<Segment, bool>> splits;  // (range, remove)
  switch (behavior) {
    case B::kIsolated:
      for (const Segment& s : segs) splits.push_back({s, false});
      break;
    case B::kRemoved:
      for (const Segment& s : segs) splits.push_back({s, s.is_match});
      break;
    case B::kContiguous: {
      bool prev_match = false;
      for (const Segment& s : segs) {
        if (s.is_match == prev_match && !splits.empty()) {
          splits.back().first.end = s.end;
        } else {
          splits.push_back({s, false});
        }
        prev_match = s.is_match;
      }
      break;
    }
    case B::kMergedWithPrevious: {
      bool prev_match = false;
      for (const Segment& s : segs) {
        if (s.is_match && !prev_match && !splits.empty()) {
          splits.back().first.end = s.end;
        } else {
          splits.push_back({s, false});
        }
        prev_match = s.is_match;
      }
      break;
    }
    case B::kMergedWithNext: {
      bool prev_match = false;
      for (auto it = segs.rbegin(); it != segs.rend(); ++it) {
        if (it->is_match && !prev_match && !splits.empty()) {
          splits.back().first.begin = it->begin;
        } else {
          splits.push_back({*it, false});
        }
        prev_match = it->is_match;
      }
      std::reverse(splits.begin(), splits.end());
      break;
    }
  }
  for (const auto& [s, remove] : splits) {
    if (remove || s.end == s.begin) continue;
    out.push_back(Piece{in.text.substr(s.begin, s.end - s.begin), in.at_start && s.begin == 0});
  }
}

bool is_numeric(char32_t cp) {
  const auto c = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  return c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
}

}  // namespace

void PreTokenizer::apply(const Step& st, const Piece& in, std::vector<Piece>& out) const {
  std::vector<std::pair<size_t, size_t>> matches;
  std::vector<Segment> segs;
  switch (st.kind) {
    case Step::kSplit:
      if (st.regex) {
        st.regex->find_all(in.text, matches);
      } else if (!st.literal.empty()) {
        for (size_t p = 0; (p = in.text.find(st.literal, p)) != std::string::npos;
             p += st.literal.size())
          matches.emplace_back(p, p + st.literal.size());
      }
      segments_from_matches(in.text, matches, segs);
      split_segments(in, segs, st.behavior, st.invert, out);
      return;
    case Step::kByteLevel: {
      // Split (optionally after prefixing a space), then map every piece's bytes to characters.
      Piece p = in;
      if (st.add_prefix_space && !p.text.starts_with(' ')) p.text = " " + p.text;
      const size_t first = out.size();
      if (st.regex) {
        st.regex->find_all(p.text, matches);
        segments_from_matches(p.text, matches, segs);
        split_segments(p, segs, Behavior::kIsolated, false, out);
      } else if (!p.text.empty()) {
        out.push_back(std::move(p));
      }
      for (size_t k = first; k < out.size(); ++k) out[k].text = byte_level_encode(out[k].text);
      return;
    }
    case Step::kMetaspace: {
      Piece p{replace_all(in.text, " ", st.replacement), in.at_start};
      const bool prepend = st.prepend == PrependScheme::kAlways ||
                           (st.prepend == PrependScheme::kFirst && in.at_start);
      if (prepend && !p.text.starts_with(st.replacement)) p.text.insert(0, st.replacement);
      if (!st.split) {
        if (!p.text.empty()) out.push_back(std::move(p));
        return;
      }
      const char32_t rep = [&] {
        size_t k = 0;
        return next_code_point(st.replacement, k);
      }();
      char_matches(
          p.text, [rep](char32_t c) { return c == rep; }, matches);
      segments_from_matches(p.text, matches, segs);
      split_segments(p, segs, Behavior::kMergedWithNext, false, out);
      return;
    }
    case Step::kDigits:
      char_matches(in.text, is_numeric, matches);
      segments_from_matches(in.text, matches, segs);
      split_segments(in, segs, st.individual_digits ? Behavior::kIsolated : Behavior::kContiguous,
                     false, out);
      return;
  }
}

void PreTokenizer::pre_tokenize(std::vector<Piece>& pieces) const {
  std::vector<Piece> next;
  for (const Step& st : steps_) {
    next.clear();
    next.reserve(pieces.size());
    for (const Piece& p : pieces) apply(st, p, next);
    pieces.swap(next);
  }
}

bool PreTokenizer::has_byte_level() const {
  for (const Step& st : steps_)
    if (st.kind == Step::kByteLevel) return true;
  return false;
}

bool PreTokenizer::has_metaspace() const {
  for (const Step& st : steps_)
    if (st.kind == Step::kMetaspace) return true;
  return false;
}

bool PreTokenizer::metaspace_prepends() const {
  for (const Step& st : steps_)
    if (st.kind == Step::kMetaspace && st.prepend != PrependScheme::kNever) return true;
  return false;
}

std::vector<std::string> PreTokenizer::regex_patterns() const {
  std::vector<std::string> r;
  for (const Step& st : steps_)
    if (st.regex) r.push_back(st.regex->pattern());
  return r;
}

}  // namespace awq::tok
