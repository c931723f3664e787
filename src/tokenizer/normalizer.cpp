#include "tokenizer/normalizer.h"

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "tokenizer/json_util.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace awq::tok {

using json = nlohmann::json;

static const char* const kMetaspace = "\xE2\x96\x81";  // U+2581 '▁'

std::string replace_all(const std::string& s, const std::string& from, const std::string& to) {
  if (from.empty()) return s;
  std::string out;
  out.reserve(s.size() + s.size() / 4);
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size()) {
    out.append(s, pos, hit - pos);
    out += to;
  }
  out.append(s, pos, std::string::npos);
  return out;
}

std::string replace_all(const std::string& s, const Regex& re, const std::string& to) {
  std::vector<std::pair<size_t, size_t>> m;
  re.find_all(s, m);
  std::string out;
  size_t pos = 0;
  for (const auto& [b, e] : m) {
    out.append(s, pos, b - pos);
    out += to;
    pos = e;
  }
  out.append(s, pos, std::string::npos);
  return out;
}

Normalizer Normalizer::from_json(const json& j, const std::string& what) {
  Normalizer n;
  if (!j.is_null()) n.add(j, what);
  return n;
}

void Normalizer::add(const json& j, const std::string& what) {
  const std::string type = component_type(j, what + " (normalizer)");
  Step st{};
  if (type == "Sequence") {
    for (const json& sub : j.at("normalizers")) add(sub, what);
    return;
  } else if (type == "NFC") {
    st.kind = Step::kNFC;
  } else if (type == "NFD") {
    st.kind = Step::kNFD;
  } else if (type == "NFKC") {
    st.kind = Step::kNFKC;
  } else if (type == "NFKD") {
    st.kind = Step::kNFKD;
  } else if (type == "Prepend") {
    st.kind = Step::kPrepend;
    st.text = j.at("prepend").get<std::string>();
  } else if (type == "Replace") {
    st.kind = Step::kReplace;
    read_pattern(j.at("pattern"), what + " (Replace normalizer)", &st.text, &st.regex);
    st.content = j.at("content").get<std::string>();
  } else if (type == "Strip") {
    st.kind = Step::kStrip;
    st.left = j.value("strip_left", true);
    st.right = j.value("strip_right", true);
  } else {
    fail(
        "{}: unsupported normalizer type \"{}\" (supported: NFC, NFD, NFKC, NFKD, Prepend, "
        "Replace, Strip, Sequence)",
        what, type);
  }
  steps_.push_back(std::move(st));
}

static std::string strip_white_space(const std::string& s, bool left, bool right) {
  size_t b = 0, e = s.size();
  if (left) {
    while (b < e) {
      size_t i = b;
      if (!is_white_space(next_code_point(s, i))) break;
      b = i;
    }
  }
  if (right) {
    while (e > b) {
      size_t start = e - 1;
      while (start > b && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
      size_t i = start;
      if (!is_white_space(next_code_point(s, i))) break;
      e = start;
    }
  }
  return s.substr(b, e - b);
}

void Normalizer::normalize(std::string& s) const {
  for (const Step& st : steps_) {
    switch (st.kind) {
      case Step::kNFC:
        s = unicode_normalize(s, NormalForm::kNFC);
        break;
      case Step::kNFD:
        s = unicode_normalize(s, NormalForm::kNFD);
        break;
      case Step::kNFKC:
        s = unicode_normalize(s, NormalForm::kNFKC);
        break;
      case Step::kNFKD:
        s = unicode_normalize(s, NormalForm::kNFKD);
        break;
      case Step::kPrepend:
        if (!s.empty()) s.insert(0, st.text);  // only non-empty text gets the prefix
        break;
      case Step::kReplace:
        s = st.regex ? replace_all(s, *st.regex, st.content) : replace_all(s, st.text, st.content);
        break;
      case Step::kStrip:
        s = strip_white_space(s, st.left, st.right);
        break;
    }
  }
}

bool Normalizer::is_sentencepiece_style() const {
  for (const Step& st : steps_) {
    if (st.kind == Step::kPrepend && st.text == kMetaspace) return true;
    if (st.kind == Step::kReplace && !st.regex && st.text == " " && st.content == kMetaspace)
      return true;
  }
  return false;
}

bool Normalizer::prepends_metaspace() const {
  for (const Step& st : steps_)
    if (st.kind == Step::kPrepend && st.text == kMetaspace) return true;
  return false;
}

}  // namespace awq::tok
