#include "tokenizer/decoder.h"

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace awq::tok {

using json = nlohmann::json;

static const char* const kReplacementChar = "\xEF\xBF\xBD";

Decoder Decoder::from_json(const json& j, const std::string& what) {
  Decoder d;
  if (!j.is_null()) {
    d.present_ = true;
    d.add(j, what);
  }
  return d;
}

void Decoder::add(const json& j, const std::string& what) {
  const std::string type = component_type(j, what + " (decoder)");
  Step st{};
  if (type == "Sequence") {
    for (const json& sub : j.at("decoders")) add(sub, what);
    return;
  } else if (type == "ByteLevel") {
    st.kind = Step::kByteLevel;
  } else if (type == "Metaspace") {
    st.kind = Step::kMetaspace;
    st.content = j.value("replacement", std::string("\xE2\x96\x81"));
    st.prepend = read_prepend_scheme(j, what);
  } else if (type == "Replace") {
    st.kind = Step::kReplace;
    read_pattern(j.at("pattern"), what + " (Replace decoder)", &st.pattern, &st.regex);
    st.content = j.at("content").get<std::string>();
  } else if (type == "ByteFallback") {
    st.kind = Step::kByteFallback;
  } else if (type == "Fuse") {
    st.kind = Step::kFuse;
  } else if (type == "Strip") {
    st.kind = Step::kStrip;
    st.content = j.at("content").get<std::string>();
    st.start = j.value("start", size_t{0});
    st.stop = j.value("stop", size_t{0});
  } else {
    fail(
        "{}: unsupported decoder type \"{}\" (supported: ByteLevel, Metaspace, Replace, "
        "ByteFallback, Fuse, Strip, Sequence)",
        what, type);
  }
  steps_.push_back(std::move(st));
}

// "<0xNN>" -> NN, or -1.
static int byte_token_value(const std::string& t) {
  if (t.size() != 6 || !t.starts_with("<0x") || t[5] != '>') return -1;
  int v = 0;
  for (int k = 3; k < 5; ++k) {
    const char c = t[k];
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else {
      return -1;
    }
    v = v * 16 + d;
  }
  return v;
}

std::string Decoder::decode(std::vector<std::string> tokens, bool lossy) const {
  if (!present_) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i) out += ' ';
      out += tokens[i];
    }
    return out;
  }
  std::vector<std::string> next;
  for (const Step& st : steps_) {
    switch (st.kind) {
      case Step::kByteLevel: {
        std::string bytes, raw;
        for (const std::string& t : tokens) {
          // A token with a character outside the byte alphabet (an added token) stays as it is.
          if (byte_level_decode(t, raw)) {
            bytes += raw;
          } else {
            bytes += t;
          }
        }
        tokens.assign(1, lossy ? utf8_lossy(bytes) : std::move(bytes));
        break;
      }
      case Step::kMetaspace:
        for (size_t i = 0; i < tokens.size(); ++i) {
          const bool drop = i == 0 && st.prepend != PrependScheme::kNever;
          tokens[i] = replace_all(tokens[i], st.content, drop ? "" : " ");
        }
        break;
      case Step::kReplace:
        for (std::string& t : tokens) {
          if (st.regex) {
            t = replace_all(is_valid_utf8(t) ? t : utf8_lossy(t), *st.regex, st.content);
          } else {
            t = replace_all(t, st.pattern, st.content);
          }
        }
        break;
      case Step::kByteFallback: {
        next.clear();
        std::string pending;  // consecutive byte tokens
        auto flush = [&] {
          if (pending.empty()) return;
          if (!lossy || is_valid_utf8(pending)) {
            next.push_back(pending);
          } else {
            // Hugging Face emits one U+FFFD per byte when the group is not valid UTF-8.
            for (size_t k = 0; k < pending.size(); ++k) next.push_back(kReplacementChar);
          }
          pending.clear();
        };
        for (std::string& t : tokens) {
          const int b = byte_token_value(t);
          if (b >= 0) {
            pending.push_back(static_cast<char>(b));
          } else {
            flush();
            next.push_back(std::move(t));
          }
        }
        flush();
        tokens.swap(next);
        break;
      }
      case Step::kFuse: {
        std::string all;
        for (const std::string& t : tokens) all += t;
        tokens.clear();
        tokens.push_back(std::move(all));
        break;
      }
      case Step::kStrip:
        for (std::string& t : tokens) {
          const std::string& c = st.content;
          size_t b = 0, e = t.size();
          for (size_t k = 0; k < st.start && !c.empty() && t.compare(b, c.size(), c) == 0; ++k)
            b += c.size();
          for (size_t k = 0; k < st.stop && !c.empty() && e >= b + c.size() &&
                             t.compare(e - c.size(), c.size(), c) == 0;
               ++k)
            e -= c.size();
          t = t.substr(b, e - b);
        }
        break;
    }
  }
  std::string out;
  for (const std::string& t : tokens) out += t;
  return out;
}

bool Decoder::has_byte_level() const {
  for (const Step& st : steps_)
    if (st.kind == Step::kByteLevel) return true;
  return false;
}

bool Decoder::has_metaspace() const {
  for (const Step& st : steps_)
    if (st.kind == Step::kMetaspace) return true;
  return false;
}

}  // namespace awq::tok
