#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include <pcre2.h>

#include "base/error.h"

namespace awq::tok {

struct Regex::Impl {
  pcre2_code* code = nullptr;
  bool jit = false;
};

static std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof buf);
  return reinterpret_cast<const char*>(buf);
}

std::string oniguruma_compatible(const std::string& p) {
  std::string out;
  out.reserve(p.size() + 16);
  int class_depth = 0;  // inside [...] (POSIX classes like [:alpha:] do not nest in practice)
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char n = p[i + 1];
      if (n == 's') {
        out += class_depth > 0 ? "\\s\\x{85}" : "[\\s\\x{85}]";
      } else if (n == 'S' && class_depth == 0) {
        out += "[^\\s\\x{85}]";
      } else {
        out += c;
        out += n;
      }
      ++i;
      continue;
    }
    if (c == '[') {
      // "[]" or "[^]" at the start of a class is a literal ']'; copy it so it does not close.
      out += c;
      ++class_depth;
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      continue;
    }
    if (c == ']' && class_depth > 0) --class_depth;
    out += c;
  }
  return out;
}

std::string Regex::escape(std::string_view literal) {
  std::string out;
  for (char c : literal) {
    if (std::string_view("\\^$.|?*+()[]{}-#&~ \t\n\r\f\v").find(c) != std::string_view::npos)
      out += '\\';
    if (c == '\n') {
      out += 'n';
    } else if (c == '\r') {
      out += 'r';
    } else if (c == '\t') {
      out += 't';
    } else if (c == '\f') {
      out += 'f';
    } else if (c == '\v') {
      out += 'v';
    } else {
      out += c;
    }
  }
  return out;
}

Regex::Regex(const std::string& pattern, const std::string& what)
    : pattern_(pattern), impl_(std::make_unique<Impl>()) {
  const std::string compiled = oniguruma_compatible(pattern);
  int err = 0;
  PCRE2_SIZE err_off = 0;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(compiled.data()), compiled.size(),
                              PCRE2_UTF | PCRE2_UCP, &err, &err_off, nullptr);
  AWQ_CHECK(impl_->code != nullptr, "{}: regex /{}/ does not compile at offset {}: {}", what,
            pattern, err_off, pcre2_message(err));
  impl_->jit = pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() {
  if (impl_ && impl_->code) pcre2_code_free(impl_->code);
}

void Regex::find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const {
  out.clear();
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(impl_->code, nullptr);
  AWQ_CHECK(md != nullptr, "out of memory creating regex match data");
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  uint32_t extra = 0;  // PCRE2_NOTEMPTY_ATSTART | PCRE2_ANCHORED after an empty match
  while (start <= text.size()) {
    int rc = pcre2_match(impl_->code, subject, text.size(), start, PCRE2_NO_UTF_CHECK | extra, md,
                         nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {  // deep backtracking: the interpreter has no such limit
      rc = pcre2_match(impl_->code, subject, text.size(), start,
                       PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT | extra, md, nullptr);
    }
    if (rc == PCRE2_ERROR_NOMATCH) {
      if (extra == 0) break;
      // No non-empty match at `start` after an empty one: step over one character.
      extra = 0;
      if (start >= text.size()) break;
      ++start;
      while (start < text.size() && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80)
        ++start;
      continue;
    }
    if (rc < 0) {
      pcre2_match_data_free(md);
      fail("regex /{}/ failed: {}", pattern_, pcre2_message(rc));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    out.emplace_back(ov[0], ov[1]);
    start = ov[1];
    extra = ov[0] == ov[1] ? (PCRE2_NOTEMPTY_ATSTART | PCRE2_ANCHORED) : 0;
  }
  pcre2_match_data_free(md);
}

}  // namespace awq::tok
