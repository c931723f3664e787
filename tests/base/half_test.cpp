#include "base/half.h"

#include <gtest/gtest.h>
#include <immintrin.h>

#include <cmath>
#include <random>

#include "base/sysinfo.h"

namespace awq {

// Every one of the 65536 halves converts up and back to itself (nans stay nans).
TEST(Half, F16RoundTripAllValues) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = f16_to_f32(uint16_t(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f))));
      continue;
    }
    ASSERT_EQ(f32_to_f16(f), h) << "h=" << h;
  }
}

// The software conversion agrees with the hardware one (F16C, round to nearest even) on random
// floats across the whole range, including subnormals, overflow and exact ties.
__attribute__((target("f16c"))) static uint16_t hw_f16(float f) {
  return uint16_t(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT));
}

TEST(Half, F16MatchesHardware) {
  if (!cpu_features().f16c) GTEST_SKIP() << "no F16C on this CPU";
  std::mt19937 rng(1);
  for (int i = 0; i < 2000000; ++i) {
    uint32_t bits = rng();
    float f = std::bit_cast<float>(bits);
    if (std::isnan(f)) continue;
    // bias towards the half range
    if (i % 2) f = std::ldexp(float(int32_t(rng())) / 2147483648.0f, int(rng() % 48) - 30);
    ASSERT_EQ(f32_to_f16(f), hw_f16(f)) << f;
  }
}

TEST(Half, Bf16) {
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f)), 1.0f);
  EXPECT_EQ(f32_to_bf16(1.00390625f), 0x3f80);  // exact tie rounds to even
  EXPECT_EQ(f32_to_bf16(1.01171875f), 0x3f82);  // tie, odd below: rounds up
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
}

}  // namespace awq
