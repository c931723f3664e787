// GPT-2's reversible byte <-> Unicode character mapping used by byte-level BPE: printable bytes
// ('!'..'~', '¡'..'¬', '®'..'ÿ') map to the same code point, the other 68 bytes to U+0100 upwards
// in byte order. Every byte therefore becomes a visible character that a vocabulary can hold.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace awq::tok {

struct ByteLevelMap {
  std::array<char32_t, 256> byte_to_cp;
  std::array<std::string, 256> byte_to_utf8;  // byte_to_cp as UTF-8
  // Code point (< 0x144) -> byte, or -1 when the code point is not in the alphabet.
  std::array<int16_t, 0x144> cp_to_byte;
};

const ByteLevelMap& byte_level_map();

// Maps every byte of `s` to its character.
std::string byte_level_encode(std::string_view s);
// Inverse mapping of one token. Returns false (and leaves `out` unspecified) when a character is
// outside the alphabet; the ByteLevel decoder then keeps the token's raw UTF-8.
bool byte_level_decode(std::string_view token, std::string& out);

}  // namespace awq::tok
