// Helpers shared by the tokenizer tests: cached loading of the shared tokenizer directories (the
// 7 MB Qwen2.5 file takes a moment to parse), expected-id files, and a first-difference report.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/files.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace awq::test {

// The tokenizer in <data>/tokenizers/<family>/, loaded once per test binary.
inline const Tokenizer& family_tokenizer(const std::string& family) {
  static std::map<std::string, Tokenizer> cache;
  auto it = cache.find(family);
  if (it == cache.end())
    it = cache.emplace(family, Tokenizer::from_dir(data_path("tokenizers/" + family))).first;
  return it->second;
}

inline std::string read_data(const std::string& rel) {
  return read_text_file(data_path(rel));
}

// "" when equal; otherwise where and how `got` first differs from `want`, with context.
inline std::string first_difference(const std::vector<int32_t>& got,
                                    const std::vector<int32_t>& want, const Tokenizer* tok) {
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  if (i == got.size() && i == want.size()) return "";
  std::string msg = "sizes got " + std::to_string(got.size()) + " want " +
                    std::to_string(want.size()) + "; first difference at index " +
                    std::to_string(i) + "\n";
  const size_t lo = i >= 8 ? i - 8 : 0;
  auto show = [&](const char* name, const std::vector<int32_t>& v) {
    msg += std::string("  ") + name + ":";
    for (size_t k = lo; k < std::min(v.size(), i + 8); ++k) {
      msg += (k == i ? " [" : " ") + std::to_string(v[k]);
      if (tok && v[k] >= 0 && v[k] < tok->vocab_size()) msg += "'" + tok->token(v[k]) + "'";
      if (k == i) msg += "]";
    }
    msg += "\n";
  };
  show("got ", got);
  show("want", want);
  if (tok) {
    const size_t hi = std::min(want.size(), i + 8);
    std::vector<int32_t> ctx(want.begin() + static_cast<long>(lo),
                             want.begin() + static_cast<long>(hi));
    msg += "  text around it: \"" + tok->decode(ctx) + "\"\n";
  }
  return msg;
}

}  // namespace awq::test
