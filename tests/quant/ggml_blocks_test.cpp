#include "quant/ggml_blocks.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"
#include "base/half.h"
#include "quant/quantize.h"
#include "quant_reference.h"

namespace awq {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Q4_1 from asymmetric AWQ: identical except for m = -z*s rounded to f16, and by no more.
TEST(GgmlBlocks, Q4_1MatchesAwqUpToTheRoundingOfM) {
  const int64_t out = 6, in = 256;
  const std::vector<float> w = test::random_weights(out, in, 17);
  for (auto [bits, group] : {std::pair{4, 32}, {4, 64}, {4, 128}, {4, -1}, {3, 64}, {2, 32}}) {
    const QuantizedMatrix q = quantize(w.data(), out, in, QuantSpec{bits, group, true}, "w");
    const std::vector<uint8_t> blocks = to_ggml_q4_1(q);
    ASSERT_EQ(blocks.size(), size_t(out * in / 32 * 20));
    ASSERT_EQ(blocks.size(), ggml_tensor_bytes(kGgmlQ4_1, out, in));
    std::vector<float> a(w.size()), b(w.size());
    q.dequantize(a.data());
    dequantize_ggml(kGgmlQ4_1, blocks.data(), out, in, b.data());
    int exact = 0;
    for (int64_t o = 0; o < out; ++o) {
      for (int64_t i = 0; i < in; ++i) {
        const int64_t gi = o * q.n_groups() + i / q.group;
        const float m = -float(q.zeros[size_t(gi)]) * q.scales[size_t(gi)];
        const float bound = std::fabs(m - round_to_f16(m));
        ASSERT_LE(std::fabs(a[size_t(o * in + i)] - b[size_t(o * in + i)]), bound)
            << bits << " bits, group " << group << " at " << o << "," << i;
        exact += a[size_t(o * in + i)] == b[size_t(o * in + i)];
      }
    }
    EXPECT_LT(exact, out * in);  // the bound is not vacuous: some m did round
  }
}

TEST(GgmlBlocks, Q4_1BlockLayout) {
  const std::vector<float> w = test::random_weights(2, 128, 3);
  const QuantizedMatrix q = quantize(w.data(), 2, 128, QuantSpec{4, 64, true}, "w");
  const std::vector<uint8_t> blocks = to_ggml_q4_1(q);
  // Row 1, block 3 (elements 96..127) belongs to group 1 of row 1.
  const uint8_t* blk = blocks.data() + (1 * 4 + 3) * 20;
  const float s = q.scales[3];
  const int z = q.zeros[3];
  EXPECT_EQ(uint16_t(blk[0] | blk[1] << 8), f32_to_f16(s));
  EXPECT_EQ(uint16_t(blk[2] | blk[3] << 8), f32_to_f16(-float(z) * s));
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(blk[4 + j] & 0xF, q.codes[size_t(128 + 96 + j)]);
    EXPECT_EQ(blk[4 + j] >> 4, q.codes[size_t(128 + 96 + 16 + j)]);
  }
}

TEST(GgmlBlocks, Q4_0FromSymmetricIsExact) {
  const int64_t out = 5, in = 192;
  const std::vector<float> w = test::random_weights(out, in, 23);
  for (auto [bits, group] : {std::pair{4, 32}, {4, 64}, {4, -1}, {3, 32}, {2, 64}}) {
    const QuantizedMatrix q = quantize(w.data(), out, in, QuantSpec{bits, group, false}, "w");
    const std::vector<uint8_t> blocks = to_ggml_q4_0(q);
    ASSERT_EQ(blocks.size(), size_t(out * in / 32 * 18));
    std::vector<float> a(w.size()), b(w.size());
    q.dequantize(a.data());
    dequantize_ggml(kGgmlQ4_0, blocks.data(), out, in, b.data());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0) << bits << " bits, group " << group;
  }
}

TEST(GgmlBlocks, CodesComeBackFromBlocks) {
  const int64_t out = 4, in = 256;
  const std::vector<float> w = test::random_weights(out, in, 29);
  const QuantizedMatrix qa = quantize(w.data(), out, in, QuantSpec{4, 128, true}, "w");
  const QuantizedMatrix ra = from_ggml_q4_1(to_ggml_q4_1(qa).data(), out, in);
  EXPECT_EQ(ra.group, 128);  // blocks sharing (d, z) merge back into the AWQ group
  EXPECT_EQ(ra.codes, qa.codes);
  EXPECT_EQ(ra.zeros, qa.zeros);
  EXPECT_EQ(ra.scales, qa.scales);
  const QuantizedMatrix qs = quantize(w.data(), out, in, QuantSpec{4, 64, false}, "w");
  const QuantizedMatrix rs = from_ggml_q4_0(to_ggml_q4_0(qs).data(), out, in);
  EXPECT_EQ(rs.group, 64);
  EXPECT_FALSE(rs.spec.zero_point);
  EXPECT_EQ(rs.codes, qs.codes);
  EXPECT_EQ(rs.scales, qs.scales);
  // A llama.cpp-style Q4_1 block (m = the block minimum) holds no integer zero point.
  std::vector<uint8_t> foreign = to_ggml_q4_1(qa);
  const uint16_t m = f32_to_f16(-0.3337f), d = f32_to_f16(0.05f);
  foreign[0] = uint8_t(d & 0xff);
  foreign[1] = uint8_t(d >> 8);
  foreign[2] = uint8_t(m & 0xff);
  foreign[3] = uint8_t(m >> 8);
  const std::string msg =
      error_of([&] { from_ggml_q4_1(foreign.data(), out, in, "blk.0.ffn_up"); });
  EXPECT_NE(msg.find("blk.0.ffn_up"), std::string::npos) << msg;
  EXPECT_NE(msg.find("row 0, block 0"), std::string::npos) << msg;
}

TEST(GgmlBlocks, Q8_0RoundTripWithinHalfAStep) {
  const int64_t out = 3, in = 128;
  std::vector<float> x = test::random_weights(out, in, 37, 1.0f);
  for (int j = 0; j < 32; ++j) x[size_t(32 + j)] = 0.0f;  // an all-zero block
  x[70] = 1000.0f;                                        // a large one
  const std::vector<uint8_t> blocks = quantize_ggml_q8_0(x.data(), out, in);
  ASSERT_EQ(blocks.size(), size_t(out * in / 32 * 34));
  std::vector<float> y(x.size());
  dequantize_ggml(kGgmlQ8_0, blocks.data(), out, in, y.data());
  for (int64_t b = 0; b < out * in / 32; ++b) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[size_t(b * 32 + j)]));
    const float d = amax / 127.0f;  // f32 step used to choose q; the file holds f16(d)
    const float d16 =
        f16_to_f32(uint16_t(blocks[size_t(b * 34)] | blocks[size_t(b * 34 + 1)] << 8));
    EXPECT_EQ(d16, round_to_f16(d));
    int max_q = 0;
    for (int j = 0; j < 32; ++j) {
      const size_t i = size_t(b * 32 + j);
      // q = round(x/d): |x - q*d| <= d/2; the f16 step adds |q| * |d - d16| <= 127 |d - d16|.
      EXPECT_LE(std::fabs(x[i] - y[i]), d / 2 * 1.00001f + 127 * std::fabs(d - d16)) << i;
      max_q = std::max(max_q, std::abs(int(int8_t(blocks[size_t(b * 34 + 2 + j)]))));
    }
    EXPECT_EQ(max_q, amax > 0 ? 127 : 0);
    if (amax == 0) {
      for (int j = 0; j < 32; ++j) EXPECT_EQ(y[size_t(b * 32 + j)], 0.0f);
    }
  }
  x[5] = std::numeric_limits<float>::infinity();
  EXPECT_THROW(quantize_ggml_q8_0(x.data(), out, in, "token_embd"), Error);
}

TEST(GgmlBlocks, ErrorsSayWhatWouldWork) {
  const std::vector<float> w = test::random_weights(2, 256, 1);
  const QuantizedMatrix q16 = quantize(w.data(), 2, 256, QuantSpec{4, 16, true}, "w");
  std::string msg = error_of([&] { to_ggml_q4_1(q16, "blk.1.attn_v"); });
  EXPECT_NE(msg.find("blk.1.attn_v"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--group-size 32, 64, 128, 256 or -1"), std::string::npos) << msg;
  const QuantizedMatrix asym = quantize(w.data(), 2, 256, QuantSpec{4, 32, true}, "w");
  msg = error_of([&] { to_ggml_q4_0(asym, "blk.1.attn_v"); });
  EXPECT_NE(msg.find("zero_point"), std::string::npos) << msg;
  const QuantizedMatrix q8 = quantize(w.data(), 2, 256, QuantSpec{8, 32, true}, "w");
  EXPECT_THROW(to_ggml_q4_1(q8), Error);
  const std::vector<float> w48 = test::random_weights(2, 48, 1);
  const QuantizedMatrix q48 = quantize(w48.data(), 2, 48, QuantSpec{4, 16, true}, "w");
  msg = error_of([&] { to_ggml_q4_1(q48, "x"); });
  EXPECT_NE(msg.find("not a multiple of 32"), std::string::npos) << msg;
  EXPECT_THROW(dequantize_ggml(12, nullptr, 1, 32, nullptr), Error);
}

}  // namespace
}  // namespace awq
