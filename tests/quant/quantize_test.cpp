#include "quant/quantize.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/half.h"
#include "quant/group_kernels.h"
#include "quant_reference.h"

namespace awq {
namespace {

using test::random_weights;
using test::ref_quantize_group;

QuantSpec spec_of(int bits, int group, bool zero_point) {
  QuantSpec s;
  s.bits = bits;
  s.group_size = group;
  s.zero_point = zero_point;
  return s;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Hand-worked 4-bit asymmetric groups of 8; scale 1 makes every w / scale visible.
TEST(Quantize, HandWorkedGroupsRoundHalfToEven) {
  const std::vector<float> w = {
      // min 0, max 15: scale 1, zero 0; .5 ties go to the even neighbour
      0, 15, 0.5f, 1.5f, 2.5f, 3.5f, 14.5f, 7.5f,
      // min -8, max 7: scale 1, zero 8
      -8, 7, -2.5f, -0.5f, 0.5f, 1.5f, -7.5f, 6.5f,
      // min -2.5, max 12.5: scale 1, zero = -round(-2.5) = 2 (a tie in the zero itself)
      -2.5f, 12.5f, 0, 1, -1.5f, 11.5f, 4.5f, 5.5f};
  const QuantizedMatrix q = quantize(w.data(), 1, 24, spec_of(4, 8, true), "hand");
  ASSERT_EQ(q.group, 8);
  const std::vector<uint8_t> codes = {0, 15, 0, 2, 2, 4,  14, 8,   //
                                      0, 15, 6, 8, 8, 10, 0,  14,  //
                                      0, 14, 2, 3, 0, 14, 6,  8};
  EXPECT_EQ(q.codes, codes);
  EXPECT_EQ(q.scales, (std::vector<float>{1, 1, 1}));
  EXPECT_EQ(q.zeros, (std::vector<uint8_t>{0, 8, 2}));
  // The zero's own rounding costs the group's minimum: -2.5 comes back as -2.
  EXPECT_EQ(q.dequant(0, 16), -2.0f);
  EXPECT_EQ(q.dequant(0, 10), -2.0f);
  EXPECT_EQ(q.dequant(0, 7), 8.0f);
}

TEST(Quantize, ConstantZeroAndOneSidedGroups) {
  const float tiny = round_to_f16(1e-5f / 15.0f);  // the scale of a group with no range
  ASSERT_GT(tiny, 0.0f);
  ASSERT_LT(tiny, 1e-6f);
  const float s12 = round_to_f16(1.0f / 15.0f);  // range 1
  std::vector<float> w(40);
  for (int i = 0; i < 8; ++i) {
    w[size_t(i)] = 3.0f;                       // constant positive
    w[size_t(8 + i)] = 0.0f;                   // all zero
    w[size_t(16 + i)] = -3.0f;                 // constant negative
    w[size_t(24 + i)] = 1.0f + float(i) / 7;   // all in [1, 2]
    w[size_t(32 + i)] = -2.0f + float(i) / 7;  // all in [-2, -1]
  }
  const QuantizedMatrix q = quantize(w.data(), 1, 40, spec_of(4, 8, true), "groups");
  for (int i = 0; i < 8; ++i) {
    // The zero point is clamped to the code range, so 0 stays representable and a one-sided
    // group cannot use its own range: all its values saturate at the end nearest to them.
    EXPECT_EQ(q.codes[size_t(i)], 15);
    EXPECT_EQ(q.codes[size_t(8 + i)], 0);
    EXPECT_EQ(q.codes[size_t(16 + i)], 0);
    EXPECT_EQ(q.codes[size_t(24 + i)], 15);
    EXPECT_EQ(q.codes[size_t(32 + i)], 0);
    EXPECT_EQ(q.dequant(0, i), 15 * tiny);  // 3.0 comes back as ~1e-5: the reference's behaviour
    EXPECT_EQ(q.dequant(0, 8 + i), 0.0f);
    EXPECT_EQ(q.dequant(0, 16 + i), -15 * tiny);
    EXPECT_EQ(q.dequant(0, 24 + i), 15 * s12);  // ~1.0 for all of [1, 2]
    EXPECT_EQ(q.dequant(0, 32 + i), -15 * s12);
  }
  EXPECT_EQ(q.scales, (std::vector<float>{tiny, tiny, tiny, s12, s12}));
  EXPECT_EQ(q.zeros, (std::vector<uint8_t>{0, 0, 15, 0, 15}));
}

// f16_scales = false keeps the scale (max - min) / (2^b - 1) in f32, as the reference computes
// it; the default rounds it to f16 first. Every kernel variant agrees in either mode.
TEST(Quantize, F32ScalesAreUnroundedAndF16ScalesRounded) {
  // One group of 8: min 0, max 1 -> scale 1/15 (not an f16 value).
  const std::vector<float> w = {0.0f, 1.0f, 0.3f, 0.5f, 0.7f, 0.1f, 0.9f, 0.2f};
  QuantSpec f16 = spec_of(4, 8, true), f32 = f16;
  f32.f16_scales = false;
  const float exact = 1.0f / 15.0f;
  ASSERT_NE(round_to_f16(exact), exact);
  for (const qk::KernelTable* t : qk::usable_kernels()) {
    SCOPED_TRACE(t->name);
    qk::override_kernels(t);
    const QuantizedMatrix a = quantize(w.data(), 1, 8, f16, "w");
    const QuantizedMatrix b = quantize(w.data(), 1, 8, f32, "w");
    EXPECT_EQ(a.scales[0], round_to_f16(exact));
    EXPECT_EQ(b.scales[0], exact);
    // Codes from the scale in use: round(w / scale) + zero.
    for (int i = 0; i < 8; ++i) {
      EXPECT_EQ(b.codes[size_t(i)], uint8_t(std::nearbyint(w[size_t(i)] / exact))) << i;
      EXPECT_EQ(a.codes[size_t(i)], uint8_t(std::nearbyint(w[size_t(i)] / a.scales[0]))) << i;
    }
    std::vector<float> fq = w;
    fake_quantize(fq.data(), 1, 8, f32, "w");
    for (int i = 0; i < 8; ++i) EXPECT_EQ(fq[size_t(i)], b.dequant(0, i)) << i;
  }
  qk::override_kernels(nullptr);
}

TEST(Quantize, SymmetricHandWorked) {
  const std::vector<float> w = {-7, 7, 2.5f, 3.5f, -2.5f, 0.5f, -6.5f, 1.0f};
  const QuantizedMatrix q = quantize(w.data(), 1, 8, spec_of(4, -1, false), "sym");
  EXPECT_EQ(q.group, 8);
  EXPECT_EQ(q.scales, (std::vector<float>{1.0f}));
  EXPECT_EQ(q.zeros, (std::vector<uint8_t>{8}));
  EXPECT_EQ(q.codes, (std::vector<uint8_t>{1, 15, 10, 12, 6, 8, 2, 9}));
  EXPECT_EQ(q.dequant(0, 6), -6.0f);
  // 3 bits: scale max|w| / 3, codes q + 4 with q in [-4, 3].
  const std::vector<float> w3 = {-3, 3, 1.5f, -1.5f};
  const QuantizedMatrix q3 = quantize(w3.data(), 1, 4, spec_of(3, 4, false), "sym3");
  EXPECT_EQ(q3.codes, (std::vector<uint8_t>{1, 7, 6, 2}));
  EXPECT_EQ(q3.zeros, (std::vector<uint8_t>{4}));
}

// Every bit width, both modes, several group sizes: codes, scales and zeros equal the plain
// scalar reference exactly, and reconstruction is within half a step inside the group's range.
TEST(Quantize, MatchesReferenceForAllBitsAndGroups) {
  const int64_t out = 9, in = 192;
  const std::vector<float> w = random_weights(out, in, 7);
  for (int bits = 2; bits <= 8; ++bits) {
    for (int group : {32, 64, -1, 3}) {
      for (bool zp : {true, false}) {
        SCOPED_TRACE(testing::Message() << "bits " << bits << " group " << group << " zp " << zp);
        const QuantizedMatrix q = quantize(w.data(), out, in, spec_of(bits, group, zp), "w");
        const int g = group == -1 ? int(in) : group;
        ASSERT_EQ(q.group, g);
        const int64_t ng = in / g;
        for (int64_t o = 0; o < out; ++o) {
          for (int64_t k = 0; k < ng; ++k) {
            const float* wg = w.data() + o * in + k * g;
            const test::RefGroup r = ref_quantize_group(wg, g, bits, zp);
            ASSERT_EQ(q.scales[size_t(o * ng + k)], r.scale);
            ASSERT_EQ(q.zeros[size_t(o * ng + k)], r.zero);
            for (int i = 0; i < g; ++i) {
              const int code = q.codes[size_t(o * in + k * g + i)];
              ASSERT_EQ(code, r.codes[size_t(i)]) << "row " << o << " col " << k * g + i;
              ASSERT_LE(code, (1 << bits) - 1);
              const float lo = float(0 - r.zero) * r.scale,
                          hi = float((1 << bits) - 1 - r.zero) * r.scale;
              if (wg[i] >= lo && wg[i] <= hi) {
                ASSERT_LE(std::fabs(q.dequant(o, k * g + i) - wg[i]), 0.5f * r.scale * 1.0001f);
              }
            }
          }
        }
      }
    }
  }
}

TEST(Quantize, DequantizeEqualsFakeQuantizeBitExactly) {
  for (auto [bits, group, zp] : {std::tuple{4, 128, true},
                                 {4, 128, false},
                                 {3, 64, true},
                                 {8, -1, true},
                                 {2, 32, false},
                                 {5, 24, true}}) {
    const int64_t out = 37, in = 384;
    const std::vector<float> w = random_weights(out, in, uint32_t(bits * 100 + group));
    const QuantSpec spec = spec_of(bits, group, zp);
    std::vector<float> deq(w.size()), fake = w;
    quantize(w.data(), out, in, spec, "w").dequantize(deq.data());
    fake_quantize(fake.data(), out, in, spec);
    ASSERT_EQ(std::memcmp(deq.data(), fake.data(), deq.size() * sizeof(float)), 0)
        << "bits " << bits << " group " << group;
    EXPECT_NE(fake, w);  // it did something
  }
}

// All instruction-set variants choose identical codes (the per-group arithmetic is shared and
// the element arithmetic has no fused operations).
TEST(Quantize, KernelVariantsAgreeExactly) {
  const int64_t out = 13, in = 200;  // 200: groups of 40 leave vector tails
  std::vector<float> w = random_weights(out, in, 3);
  w[17] = 1e-30f;
  std::vector<std::vector<uint8_t>> codes;
  std::vector<std::vector<float>> deq;
  for (const qk::KernelTable* t : qk::usable_kernels()) {
    qk::RowsJob job;
    job.w = w.data();
    job.rows = out;
    job.in = in;
    job.group = 40;
    job.bits = 4;
    std::vector<uint8_t> c(w.size());
    std::vector<float> d(w.size()), s(size_t(out * 5));
    std::vector<uint8_t> z(s.size());
    job.codes = c.data();
    job.deq = d.data();
    job.scales = s.data();
    job.zeros = z.data();
    ASSERT_EQ(t->quantize_rows(job).kind, 0) << t->name;
    codes.push_back(c);
    deq.push_back(d);
  }
  for (size_t i = 1; i < codes.size(); ++i) {
    EXPECT_EQ(codes[i], codes[0]) << qk::usable_kernels()[i]->name;
    EXPECT_EQ(std::memcmp(deq[i].data(), deq[0].data(), deq[0].size() * 4), 0);
  }
}

TEST(Quantize, RejectsNonFiniteNamingTensorAndPosition) {
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    std::vector<float> w = random_weights(4, 64, 1);
    w[size_t(2 * 64 + 37)] = bad;
    const std::string msg = error_of([&] {
      quantize(w.data(), 4, 64, QuantSpec{4, 32, true}, "layers.3.mlp.up_proj");
    });
    EXPECT_NE(msg.find("layers.3.mlp.up_proj"), std::string::npos) << msg;
    EXPECT_NE(msg.find("row 2, col 37"), std::string::npos) << msg;
    const std::string msg2 = error_of([&] {
      fake_quantize(w.data(), 4, 64, QuantSpec{4, 32, true}, "o_proj");
    });
    EXPECT_NE(msg2.find("o_proj"), std::string::npos) << msg2;
    EXPECT_NE(msg2.find("row 2, col 37"), std::string::npos) << msg2;
  }
}

TEST(Quantize, RejectsScaleBeyondF16) {
  std::vector<float> w(32, 0.0f);
  w[3] = 2e6f;
  EXPECT_THROW(quantize(w.data(), 1, 32, QuantSpec{}, "big"), Error);
}

TEST(Quantize, GroupNotDividingWidthNamesTensor) {
  std::vector<float> w(96, 0.5f);
  const std::string msg = error_of([&] {
    quantize(w.data(), 1, 96, QuantSpec{4, 128, true}, "layers.0.self_attn.v_proj");
  });
  EXPECT_NE(msg.find("layers.0.self_attn.v_proj"), std::string::npos) << msg;
  EXPECT_NE(msg.find("96"), std::string::npos) << msg;
  EXPECT_NE(msg.find("8, 16, 24, 32, 48, 96 or -1"), std::string::npos) << msg;
}

}  // namespace
}  // namespace awq
