// IEEE half (f16) and bfloat16 <-> f32 conversions, exact and portable (no F16C needed), with
// round-to-nearest-even on the way down, as numpy, torch and safetensors producers do.
#pragma once
#include <bit>
#include <cstdint>
#include <cstring>

namespace awq {

inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalize
      exp = 127 - 15 + 1;
      while ((mant & 0x400) == 0) {
        mant <<= 1;
        --exp;
      }
      bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  return std::bit_cast<float>(bits);
}

inline uint16_t f32_to_f16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint32_t sign = (x >> 16) & 0x8000;
  const uint32_t absx = x & 0x7fffffff;
  if (absx >= 0x7f800000) {  // inf or nan
    return uint16_t(sign | 0x7c00 | (absx > 0x7f800000 ? 0x200 : 0));
  }
  if (absx >= 0x477ff000) return uint16_t(sign | 0x7c00);  // rounds to >= 65520: overflow to inf
  if (absx < 0x38800000) {  // below the smallest normal half: subnormal or zero
    if (absx < 0x33000000) return uint16_t(sign);  // < 2^-25 rounds to zero
    const uint32_t mant = (absx & 0x7fffff) | 0x800000;
    const int shift = 126 - int(absx >> 23);  // half subnormal k * 2^-24 = mant * 2^(e - 150)
    const uint32_t half_bits = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1);
    const uint32_t halfway = 1u << (shift - 1);
    uint32_t r = half_bits + ((rem > halfway || (rem == halfway && (half_bits & 1))) ? 1 : 0);
    return uint16_t(sign | r);
  }
  // normal: rebias exponent, round mantissa from 23 to 10 bits, nearest even
  uint32_t r = absx - 0x38000000;  // exponent 127 -> 15
  const uint32_t rem = r & 0x1fff;
  r >>= 13;
  if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) ++r;  // may carry into the exponent: correct
  return uint16_t(sign | r);
}

inline float bf16_to_f32(uint16_t h) {
  return std::bit_cast<float>(uint32_t(h) << 16);
}

inline uint16_t f32_to_bf16(float f) {
  uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7fffffff) > 0x7f800000) return uint16_t((x >> 16) | 0x40);  // keep nan a nan
  x += 0x7fff + ((x >> 16) & 1);
  return uint16_t(x >> 16);
}

// The value f takes after a round trip through f16: what a consumer of an f16 file will see.
inline float round_to_f16(float f) {
  return f16_to_f32(f32_to_f16(f));
}

}  // namespace awq
