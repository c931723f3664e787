#include "tokenizer/byte_level.h"

#include "tokenizer/unicode.h"

namespace awq::tok {

static ByteLevelMap build_map() {
  ByteLevelMap m;
  m.cp_to_byte.fill(-1);
  int next = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    const char32_t cp = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + next++);
    m.byte_to_cp[b] = cp;
    m.byte_to_utf8[b] = utf8_of(cp);
    m.cp_to_byte[cp] = static_cast<int16_t>(b);
  }
  return m;
}

const ByteLevelMap& byte_level_map() {
  static const ByteLevelMap m = build_map();
  return m;
}

std::string byte_level_encode(std::string_view s) {
  const ByteLevelMap& m = byte_level_map();
  std::string out;
  out.reserve(s.size() * 2);
  for (unsigned char b : s) out += m.byte_to_utf8[b];
  return out;
}

bool byte_level_decode(std::string_view token, std::string& out) {
  const ByteLevelMap& m = byte_level_map();
  out.clear();
  size_t i = 0;
  while (i < token.size()) {
    const char32_t cp = next_code_point(token, i);
    if (cp >= m.cp_to_byte.size() || m.cp_to_byte[cp] < 0) return false;
    out.push_back(static_cast<char>(m.cp_to_byte[cp]));
  }
  return true;
}

}  // namespace awq::tok
