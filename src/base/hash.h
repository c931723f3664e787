// A fast 64-bit content hash for integrity checks and fingerprints: four independent lanes of
// multiply-rotate over 8-byte words (several GB/s, so sealing a block's activations costs well
// under a second), folded and avalanched at the end. Not cryptographic: it detects damage (a
// torn write, a flipped byte) and changed inputs, not an adversary.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace awq {

class Hasher {
 public:
  void update(const void* data, size_t n);
  void update(std::string_view s) { update(s.data(), s.size()); }
  uint64_t digest() const;  // of everything given so far; update may continue after it

 private:
  void block(const uint8_t* p);  // 32 bytes, one word per lane
  uint64_t lanes_[4] = {0x9E3779B97F4A7C15ull, 0xC2B2AE3D27D4EB4Full, 0x165667B19E3779F9ull,
                        0x85EBCA77C2B2AE63ull};
  uint8_t tail_[32] = {};
  size_t tail_n_ = 0;
  uint64_t total_ = 0;
};

uint64_t hash64(const void* data, size_t n);
inline uint64_t hash64(std::string_view s) {
  return hash64(s.data(), s.size());
}
std::string hex64(uint64_t v);  // 16 lowercase hex digits

}  // namespace awq
