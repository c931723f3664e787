#include "base/hash.h"

#include <fmt/format.h>

#include <cstring>

namespace awq {
namespace {

constexpr uint64_t kP1 = 0x9E3779B185EBCA87ull, kP2 = 0xC2B2AE3D27D4EB4Full,
                   kP3 = 0x165667B19E3779F9ull;

uint64_t rotl(uint64_t x, int r) {
  return (x << r) | (x >> (64 - r));
}

uint64_t mix(uint64_t lane, uint64_t word) {
  return rotl(lane + word * kP2, 31) * kP1;
}

uint64_t load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);  // little-endian hosts only (as every file format here)
  return v;
}

}  // namespace

void Hasher::block(const uint8_t* p) {
  for (int i = 0; i < 4; ++i) lanes_[i] = mix(lanes_[i], load64(p + 8 * i));
}

void Hasher::update(const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  total_ += n;
  if (tail_n_ > 0) {
    const size_t take = std::min(n, sizeof(tail_) - tail_n_);
    std::memcpy(tail_ + tail_n_, p, take);
    tail_n_ += take;
    p += take;
    n -= take;
    if (tail_n_ < sizeof(tail_)) return;
    block(tail_);
    tail_n_ = 0;
  }
  for (; n >= 32; p += 32, n -= 32) block(p);
  std::memcpy(tail_, p, n);
  tail_n_ = n;
}

uint64_t Hasher::digest() const {
  uint64_t h = rotl(lanes_[0], 1) + rotl(lanes_[1], 7) + rotl(lanes_[2], 12) + rotl(lanes_[3], 18);
  h = (h ^ total_) * kP1;
  // The tail, 8 bytes at a time, then byte by byte; its length is already in total_.
  size_t i = 0;
  for (; i + 8 <= tail_n_; i += 8) h = rotl(h ^ mix(0, load64(tail_ + i)), 27) * kP1 + kP3;
  for (; i < tail_n_; ++i) h = rotl(h ^ (uint64_t(tail_[i]) * kP3), 11) * kP1;
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  h ^= h >> 32;
  return h;
}

uint64_t hash64(const void* data, size_t n) {
  Hasher h;
  h.update(data, n);
  return h.digest();
}

std::string hex64(uint64_t v) {
  return fmt::format("{:016x}", v);
}

}  // namespace awq
