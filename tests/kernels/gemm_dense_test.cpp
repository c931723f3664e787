// gemm_f32 / gemm_f16 / gemm_bf16 against the double-precision scalar reference, on every ISA
// this machine has: bit-exact on exactly representable data (any summation order gives the same
// float), and within the worst-case f32 rounding bound on random data.
#include <gtest/gtest.h>

#include "base/error.h"
#include "base/half.h"
#include "kernel_test_util.h"
#include "kernels/reference.h"

namespace awq::kernels::test {
namespace {

enum class Dense { F32, F16, BF16 };
const char* dense_name(Dense d) {
  return d == Dense::F32 ? "f32" : d == Dense::F16 ? "f16" : "bf16";
}

// The weights as each type stores them, plus their f32 values.
struct DenseWeights {
  Dense type;
  int64_t out, in;
  std::vector<float> f32;      // the values (already rounded to the type)
  std::vector<uint16_t> bits;  // f16 / bf16 storage
};

DenseWeights make_weights(Dense type, std::vector<float> values, int64_t out, int64_t in) {
  DenseWeights w{type, out, in, std::move(values), {}};
  if (type != Dense::F32) {
    w.bits.resize(w.f32.size());
    for (size_t i = 0; i < w.f32.size(); ++i) {
      w.bits[i] = type == Dense::F16 ? f32_to_f16(w.f32[i]) : f32_to_bf16(w.f32[i]);
      w.f32[i] = type == Dense::F16 ? f16_to_f32(w.bits[i]) : bf16_to_f32(w.bits[i]);
    }
  }
  return w;
}

void run_kernel(const DenseWeights& w, const float* x, int64_t n, const float* bias, float* y) {
  switch (w.type) {
    case Dense::F32:
      return gemm_f32(x, n, w.f32.data(), w.out, w.in, bias, y);
    case Dense::F16:
      return gemm_f16(x, n, w.bits.data(), w.out, w.in, bias, y);
    case Dense::BF16:
      return gemm_bf16(x, n, w.bits.data(), w.out, w.in, bias, y);
  }
}

void run_reference(const DenseWeights& w, const float* x, int64_t n, const float* bias, float* y) {
  switch (w.type) {
    case Dense::F32:
      return ref::gemm_f32(x, n, w.f32.data(), w.out, w.in, bias, y);
    case Dense::F16:
      return ref::gemm_f16(x, n, w.bits.data(), w.out, w.in, bias, y);
    case Dense::BF16:
      return ref::gemm_bf16(x, n, w.bits.data(), w.out, w.in, bias, y);
  }
}

const Dense kTypes[] = {Dense::F32, Dense::F16, Dense::BF16};
// out and in deliberately off the vector widths (8, 16) and the row chunks.
const int64_t kOuts[] = {1, 5, 17, 40};
const int64_t kIns[] = {1, 7, 33, 100, 300};
const int64_t kNs[] = {1, 2, 3, 7, 33, 65};

TEST(GemmDense, ExactDataIsBitExactOnEveryIsa) {
  IsaGuard guard;
  std::mt19937 rng(1);
  for (Isa isa : available_isas()) {
    force_isa(isa);
    for (Dense type : kTypes)
      for (int64_t out : kOuts)
        for (int64_t in : kIns) {
          // Small integers: exact in every type, and every partial sum is an exact f32.
          const DenseWeights w = make_weights(type, random_ints(rng, size_t(out * in), 8), out, in);
          const std::vector<float> bias = random_ints(rng, size_t(out), 100);
          for (int64_t n : kNs) {
            const std::vector<float> x = random_ints(rng, size_t(n * in), 8);
            std::vector<float> got(size_t(n * out), -1.0f), want(size_t(n * out));
            run_kernel(w, x.data(), n, bias.data(), got.data());
            run_reference(w, x.data(), n, bias.data(), want.data());
            for (size_t i = 0; i < got.size(); ++i)
              ASSERT_EQ(got[i], want[i]) << isa_name(isa) << " " << dense_name(type) << " n=" << n
                                         << " out=" << out << " in=" << in << " at " << i;
          }
        }
  }
}

TEST(GemmDense, RandomDataWithinRoundingBoundOnEveryIsa) {
  IsaGuard guard;
  std::mt19937 rng(2);
  for (Isa isa : available_isas()) {
    force_isa(isa);
    for (Dense type : kTypes)
      for (int64_t out : {int64_t(17), int64_t(300)})
        for (int64_t in : {int64_t(100), int64_t(1000)}) {
          const DenseWeights w =
              make_weights(type, random_floats(rng, size_t(out * in), 0.05f), out, in);
          const std::vector<float> bias = random_floats(rng, size_t(out));
          for (int64_t n : {int64_t(1), int64_t(4), int64_t(33)}) {
            const std::vector<float> x = random_floats(rng, size_t(n * in));
            std::vector<float> got(size_t(n * out)), want(size_t(n * out));
            run_kernel(w, x.data(), n, bias.data(), got.data());
            run_reference(w, x.data(), n, bias.data(), want.data());
            for (int64_t t = 0; t < n; ++t)
              for (int64_t o = 0; o < out; ++o) {
                double abs_sum = std::fabs(bias[size_t(o)]);
                for (int64_t i = 0; i < in; ++i)
                  abs_sum += std::fabs(double(w.f32[size_t(o * in + i)]) * x[size_t(t * in + i)]);
                const double want_v = want[size_t(t * out + o)];
                ASSERT_NEAR(got[size_t(t * out + o)], want_v,
                            dot_error_bound(abs_sum, in + 1, want_v))
                    << isa_name(isa) << " " << dense_name(type) << " n=" << n << " out=" << out
                    << " in=" << in << " t=" << t << " o=" << o;
              }
          }
        }
  }
}

// More tokens than one token block of the panel path (512): the block boundary must not show.
TEST(GemmDense, ManyTokensCrossTheTokenBlock) {
  IsaGuard guard;
  std::mt19937 rng(4);
  const int64_t n = 530, out = 40, in = 70;
  for (Isa isa : available_isas()) {
    force_isa(isa);
    for (Dense type : kTypes) {
      const DenseWeights w = make_weights(type, random_ints(rng, size_t(out * in), 8), out, in);
      const std::vector<float> x = random_ints(rng, size_t(n * in), 8);
      std::vector<float> got(size_t(n * out)), want(size_t(n * out));
      run_kernel(w, x.data(), n, nullptr, got.data());
      run_reference(w, x.data(), n, nullptr, want.data());
      ASSERT_EQ(got, want) << isa_name(isa) << " " << dense_name(type);
    }
  }
}

TEST(GemmDense, NoBiasAndEmptyShapes) {
  std::mt19937 rng(3);
  const DenseWeights w = make_weights(Dense::F16, random_ints(rng, 6 * 40, 8), 6, 40);
  const std::vector<float> x = random_ints(rng, 2 * 40, 8);
  std::vector<float> got(12), want(12);
  gemm_f16(x.data(), 2, w.bits.data(), 6, 40, nullptr, got.data());
  ref::gemm_f16(x.data(), 2, w.bits.data(), 6, 40, nullptr, want.data());
  EXPECT_EQ(got, want);
  gemm_f32(x.data(), 0, w.f32.data(), 6, 40, nullptr, got.data());  // n = 0: nothing to do
  EXPECT_EQ(got, want);
  EXPECT_THROW(gemm_f32(x.data(), 2, w.f32.data(), 6, 0, nullptr, got.data()), Error);
}

}  // namespace
}  // namespace awq::kernels::test
