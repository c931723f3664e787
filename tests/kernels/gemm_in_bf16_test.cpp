// gemm_f32_in_bf16 (x and W rounded to bfloat16, f32 sums) against its scalar reference, on
// ragged shapes (n, out, in not multiples of the 12-token, 32-row or 32-column tiles), with and
// without bias; its thread-count invariance; and its refusal where AVX512-BF16 is not in use.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>

#include "base/error.h"
#include "base/half.h"
#include "base/sysinfo.h"
#include "base/thread_pool.h"
#include "kernel_test_util.h"
#include "kernels/reference.h"

namespace awq::kernels::test {
namespace {

std::vector<float> abs_of(std::vector<float> v) {
  for (float& f : v) f = std::fabs(f);
  return v;
}

TEST(GemmInBf16, MatchesRoundedReferenceOnRaggedShapes) {
  if (!bf16_products_available()) GTEST_SKIP() << "no AVX512-BF16 here (or AWQ_ISA below avx512)";
  std::mt19937 rng(18);
  struct Shape {
    int64_t n, out, in;
  };
  // in = 1 and odd widths (a pair half of zero), out below / across the 32-row panel, n below,
  // at and across 12-token tiles and 512-token blocks.
  for (Shape s : {Shape{1, 1, 1}, Shape{13, 33, 31}, Shape{12, 32, 64}, Shape{25, 47, 129},
                  Shape{515, 70, 67}, Shape{40, 5, 300}}) {
    for (bool with_bias : {false, true}) {
      const std::vector<float> x = random_floats(rng, size_t(s.n * s.in));
      const std::vector<float> w = random_floats(rng, size_t(s.out * s.in), 0.1f);
      const std::vector<float> bias = random_floats(rng, size_t(s.out));
      const float* b = with_bias ? bias.data() : nullptr;
      std::vector<float> y(size_t(s.n * s.out)), want(y.size()), mag(y.size()), f32(y.size());
      gemm_f32_in_bf16(x.data(), s.n, w.data(), s.out, s.in, b, y.data());
      ref::gemm_f32_in_bf16(x.data(), s.n, w.data(), s.out, s.in, b, want.data());
      ref::gemm_f32(x.data(), s.n, w.data(), s.out, s.in, b, f32.data());
      const std::vector<float> xa = abs_of(x), wa = abs_of(w);
      ref::gemm_f32_in_bf16(xa.data(), s.n, wa.data(), s.out, s.in, nullptr, mag.data());
      double worst_f32 = 0, worst_mag = 0;
      for (size_t i = 0; i < y.size(); ++i) {
        // The products of bf16 values are exact in f32; what is left is the f32 sum of in terms
        // (and the bias): at most (in + 1) u of the sum of magnitudes.
        const double bound =
            double(s.in + 1) * kU * (double(mag[i]) + (b ? std::fabs(b[i % size_t(s.out)]) : 0.0));
        ASSERT_LE(std::fabs(double(y[i]) - double(want[i])), bound + 1e-30)
            << "n=" << s.n << " out=" << s.out << " in=" << s.in << " bias=" << with_bias << " at "
            << i;
        worst_f32 = std::max(worst_f32, std::fabs(double(y[i]) - double(f32[i])));
        worst_mag = std::max(worst_mag, double(mag[i]));
      }
      // The inputs really are rounded: the plain f32 product differs by about 2^-9 of the
      // magnitudes, far beyond the bound above (unless in = 1 happens to land on bf16 values).
      if (s.in >= 31) EXPECT_GT(worst_f32, worst_mag * 1e-4) << "n=" << s.n << " in=" << s.in;
    }
  }
}

TEST(GemmInBf16, RoundsToNearestEven) {
  if (!bf16_products_available()) GTEST_SKIP() << "no AVX512-BF16 here";
  // 1 + 2^-8 is halfway between bf16 1 and 1 + 2^-7: even is 1. 1 + 3 * 2^-8 rounds up to
  // 1 + 2^-6 (the even neighbour). Against w = 1: the product shows the rounded x.
  const float x[2] = {1.0f + 1.0f / 256, 1.0f + 3.0f / 256};
  const float w[2] = {1.0f, 0.0f}, w2[2] = {0.0f, 1.0f};
  float y[2];
  gemm_f32_in_bf16(x, 1, w, 1, 2, nullptr, y);
  gemm_f32_in_bf16(x, 1, w2, 1, 2, nullptr, y + 1);
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[1], 1.0f + 1.0f / 64);
}

TEST(GemmInBf16, OneAndTwoThreadsGiveIdenticalBits) {
  if (!bf16_products_available()) GTEST_SKIP() << "no AVX512-BF16 here";
  const int saved = num_threads();
  std::mt19937 rng(19);
  const int64_t n = 1100, out = 200, in = 333;  // 3 token blocks x 7 panels
  const std::vector<float> x = random_floats(rng, size_t(n * in));
  const std::vector<float> w = random_floats(rng, size_t(out * in), 0.1f);
  const std::vector<float> bias = random_floats(rng, size_t(out));
  std::vector<float> one(size_t(n * out)), two(one.size());
  set_num_threads(1);
  gemm_f32_in_bf16(x.data(), n, w.data(), out, in, bias.data(), one.data());
  set_num_threads(2);
  gemm_f32_in_bf16(x.data(), n, w.data(), out, in, bias.data(), two.data());
  set_num_threads(saved);
  for (size_t i = 0; i < one.size(); ++i)
    ASSERT_EQ(std::bit_cast<uint32_t>(one[i]), std::bit_cast<uint32_t>(two[i])) << "at " << i;
}

TEST(GemmInBf16, RefusedWithoutAvx512Bf16) {
  IsaGuard guard;
  // Capped below avx512 (what AWQ_ISA=avx2 does), or a CPU without the instructions: a clear
  // error, never a silently different product.
  if (cpu_best_isa() >= Isa::Avx2) force_isa(Isa::Avx2);
  EXPECT_FALSE(bf16_products_available());
  const float x[2] = {1, 2}, w[2] = {3, 4};
  float y[1];
  try {
    gemm_f32_in_bf16(x, 1, w, 1, 2, nullptr, y);
    FAIL() << "gemm_f32_in_bf16 ran without AVX512-BF16";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("AVX512-BF16"), std::string::npos) << e.what();
  }
  if (cpu_features().avx512bf16 && cpu_best_isa() == Isa::Avx512) {
    force_isa(Isa::Avx512);
    EXPECT_TRUE(bf16_products_available());
  }
}

}  // namespace
}  // namespace awq::kernels::test
