#include "quant/awq_gemm_pack.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/half.h"
#include "quant/quantize.h"
#include "quant_reference.h"

namespace awq {
namespace {

TEST(AwqGemmPack, WorkedExampleFromTheSpec) {
  // Columns (output channels) 0..7 hold codes 1..8 at input row k = 0.
  QuantizedMatrix q;
  q.out = 8;
  q.in = 32;
  q.group = 32;
  q.spec = QuantSpec{4, 32, true};
  q.codes.assign(8 * 32, 0);
  for (int n = 0; n < 8; ++n) q.codes[size_t(n * 32)] = uint8_t(n + 1);
  q.scales.assign(8, 0.5f);
  q.zeros.assign(8, 3);
  const AwqGemmTensors t = pack_awq_gemm(q, "w");
  ASSERT_EQ(t.qweight.size(), 32u);
  EXPECT_EQ(t.qweight[0], int32_t(0x86427531u));
  EXPECT_LT(t.qweight[0], 0);  // stored as two's complement int32
  for (int k = 1; k < 32; ++k) EXPECT_EQ(t.qweight[size_t(k)], 0);
  EXPECT_EQ(t.qzeros, (std::vector<int32_t>{0x33333333}));
  EXPECT_EQ(t.scales_f16, std::vector<uint16_t>(8, f32_to_f16(0.5f)));
}

// A consumer's view (vLLM's Triton awq_dequantize: shift (reverse_order[n % 8]) * 4 on word
// n / 8, zeros the same, (q - z) * s with W as [K, N]) must reproduce q.dequant(n, k).
TEST(AwqGemmPack, LayoutAsConsumersReadIt) {
  const int64_t N = 24, K = 256;
  const std::vector<float> w = test::random_weights(N, K, 99);
  const QuantizedMatrix q = quantize(w.data(), N, K, QuantSpec{4, 64, true}, "w");
  const AwqGemmTensors t = pack_awq_gemm(q, "w");
  ASSERT_EQ(t.K, K);
  ASSERT_EQ(t.N, N);
  ASSERT_EQ(t.qweight.size(), size_t(K * N / 8));
  ASSERT_EQ(t.qzeros.size(), size_t(K / 64 * N / 8));
  ASSERT_EQ(t.scales_f16.size(), size_t(K / 64 * N));
  const int shifts[8] = {0, 16, 4, 20, 8, 24, 12, 28};
  for (int64_t k = 0; k < K; ++k) {
    for (int64_t n = 0; n < N; ++n) {
      const int64_t g = k / 64;
      const int qv = (uint32_t(t.qweight[size_t(k * (N / 8) + n / 8)]) >> shifts[n % 8]) & 0xF;
      const int zv = (uint32_t(t.qzeros[size_t(g * (N / 8) + n / 8)]) >> shifts[n % 8]) & 0xF;
      const float s = f16_to_f32(t.scales_f16[size_t(g * N + n)]);  // [K/G, N], natural order
      ASSERT_EQ(qv, q.codes[size_t(n * K + k)]);
      ASSERT_EQ(zv, q.zeros[size_t(n * (K / 64) + g)]);
      ASSERT_EQ(s, q.scales[size_t(n * (K / 64) + g)]);
      ASSERT_EQ(float(qv - zv) * s, q.dequant(n, k));
    }
  }
}

TEST(AwqGemmPack, PackUnpackIsIdentity) {
  std::mt19937 rng(5);
  for (bool zp : {true, false}) {
    const int64_t N = 64, K = 384;
    const std::vector<float> w = test::random_weights(N, K, zp ? 1 : 2);
    const QuantizedMatrix q = quantize(w.data(), N, K, QuantSpec{4, 128, zp}, "w");
    const QuantizedMatrix back = unpack_awq_gemm(pack_awq_gemm(q), zp);
    EXPECT_EQ(back.out, N);
    EXPECT_EQ(back.in, K);
    EXPECT_EQ(back.group, 128);
    EXPECT_EQ(back.spec.zero_point, zp);
    EXPECT_EQ(back.codes, q.codes);
    EXPECT_EQ(back.zeros, q.zeros);
    EXPECT_EQ(back.scales, q.scales);
  }
  // Arbitrary codes and zeros (not only what the quantizer picks) survive too.
  QuantizedMatrix q;
  q.out = 16;
  q.in = 64;
  q.group = 32;
  q.spec = QuantSpec{4, 32, true};
  for (int i = 0; i < 16 * 64; ++i) q.codes.push_back(uint8_t(rng() % 16));
  for (int i = 0; i < 32; ++i) {
    q.zeros.push_back(uint8_t(rng() % 16));
    q.scales.push_back(round_to_f16(float(rng() % 1000 + 1) * 1e-4f));
  }
  const QuantizedMatrix back = unpack_awq_gemm(pack_awq_gemm(q), true);
  EXPECT_EQ(back.codes, q.codes);
  EXPECT_EQ(back.zeros, q.zeros);
  EXPECT_EQ(back.scales, q.scales);
}

TEST(AwqGemmPack, ClearErrors) {
  const std::vector<float> w = test::random_weights(12, 64, 1);
  const QuantizedMatrix q12 = quantize(w.data(), 12, 64, QuantSpec{4, 32, true}, "w");
  try {
    pack_awq_gemm(q12, "layers.0.self_attn.k_proj");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("k_proj"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("multiple of 8"), std::string::npos) << e.what();
  }
  const QuantizedMatrix q3 = quantize(w.data(), 8, 64, QuantSpec{3, 32, true}, "w");
  EXPECT_THROW(pack_awq_gemm(q3), Error);

  const QuantizedMatrix q = quantize(w.data(), 8, 64, QuantSpec{4, 32, true}, "w");
  AwqGemmTensors t = pack_awq_gemm(q);
  EXPECT_THROW(unpack_awq_gemm(t, false), Error);  // asymmetric zeros read as symmetric
  t.qzeros.pop_back();
  try {
    unpack_awq_gemm(t, true, "model.layers.5.mlp.up_proj");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.5.mlp.up_proj.qzeros"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace awq
