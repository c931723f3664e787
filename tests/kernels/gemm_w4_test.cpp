// gemm_w4a16 and gemm_w4a8 on every ISA against the scalar references (kernels/reference.h).
#include <gtest/gtest.h>

#include "kernel_test_util.h"
#include "kernels/kernel_table.h"
#include "kernels/reference.h"

namespace awq::kernels::test {
namespace {

const int kGroups[] = {32, 64, 128, -1};
const int64_t kOuts[] = {1, 15, 17, 40,
                         250};  // 250: 16 tiles, the last ragged (4-tile decode path)
const int64_t kIns[] = {128, 384};
const int64_t kNs[] = {1, 2, 3, 7, 8, 9, 33, 65};  // 8 / 9: both sides of the w4a16 path switch

// Exact data: integer codes, scales in {1, 2}, integer activations whose int8 quantization is the
// identity, integer bias. Every intermediate is an exactly representable f32 (|sum| < 2^24), so
// every correct kernel gives the same bits whatever its order of operations: w4a16, w4a8 and
// both references must agree exactly. Any indexing or nibble-order mistake shows up here.
TEST(GemmW4, ExactDataIsBitExactOnEveryIsa) {
  IsaGuard guard;
  std::mt19937 rng(20);
  for (Isa isa : available_isas()) {
    force_isa(isa);
    for (int group : kGroups)
      for (int64_t out : kOuts)
        for (int64_t in : kIns) {
          if (group > 0 && in % group) continue;
          const W4Data d = random_w4(rng, out, in, group, /*exact=*/true);
          const W4Matrix m = W4Matrix::pack(d.source());
          const std::vector<float> bias = random_ints(rng, size_t(out), 1000);
          for (int64_t n : kNs) {
            const std::vector<float> x = q8_exact_acts(rng, n, in);
            std::vector<float> want(size_t(n * out)), want8(size_t(n * out));
            std::vector<float> got16(size_t(n * out), -1.0f), got8(size_t(n * out), -1.0f);
            ref::gemm_w4a16(x.data(), n, m, bias.data(), want.data());
            ref::gemm_w4a8(x.data(), n, m, bias.data(), want8.data());
            gemm_w4a16(x.data(), n, m, bias.data(), got16.data());
            gemm_w4a8(x.data(), n, m, bias.data(), got8.data());
            for (size_t i = 0; i < want.size(); ++i) {
              ASSERT_EQ(want8[i], want[i]) << "references disagree at " << i;
              ASSERT_EQ(got16[i], want[i])
                  << isa_name(isa) << " w4a16 g=" << group << " out=" << out << " in=" << in
                  << " n=" << n << " at " << i;
              ASSERT_EQ(got8[i], want[i]) << isa_name(isa) << " w4a8 g=" << group << " out=" << out
                                          << " in=" << in << " n=" << n << " at " << i;
            }
          }
        }
  }
}

// More tokens than one token block of the w4a16 panel path (512), exact data.
TEST(GemmW4, ManyTokensCrossTheTokenBlock) {
  IsaGuard guard;
  std::mt19937 rng(23);
  const int64_t n = 530, out = 40, in = 128;
  const W4Data d = random_w4(rng, out, in, 64, /*exact=*/true);
  const W4Matrix m = W4Matrix::pack(d.source());
  const std::vector<float> x = q8_exact_acts(rng, n, in);
  std::vector<float> want(size_t(n * out));
  ref::gemm_w4a16(x.data(), n, m, nullptr, want.data());
  for (Isa isa : available_isas()) {
    force_isa(isa);
    std::vector<float> got16(size_t(n * out)), got8(size_t(n * out));
    gemm_w4a16(x.data(), n, m, nullptr, got16.data());
    gemm_w4a8(x.data(), n, m, nullptr, got8.data());
    ASSERT_EQ(got16, want) << isa_name(isa);
    ASSERT_EQ(got8, want) << isa_name(isa);
  }
}

struct Case {
  int group;
  int64_t out, in;
  std::vector<int64_t> ns;
};

// Random data: each kernel within a bound derived for its own order of operations.
TEST(GemmW4, RandomDataWithinDerivedBoundsOnEveryIsa) {
  IsaGuard guard;
  std::mt19937 rng(21);
  const Case cases[] = {{32, 17, 384, {1, 3, 9}},
                        {64, 40, 128, {2, 7, 33}},
                        {-1, 23, 256, {1, 8, 65}},
                        {128, 300, 1024, {1, 9, 33}}};
  for (Isa isa : available_isas()) {
    force_isa(isa);
    for (const Case& c : cases) {
      const W4Data d = random_w4(rng, c.out, c.in, c.group, /*exact=*/false);
      const W4Matrix m = W4Matrix::pack(d.source());
      const int64_t in = c.in, out = c.out, g = d.g(), groups = in / g, blocks = in / 32;
      const std::vector<float> bias = random_floats(rng, size_t(out));
      for (int64_t n : c.ns) {
        const std::vector<float> x = random_floats(rng, size_t(n * in));
        std::vector<float> ref16(size_t(n * out)), ref8(size_t(n * out));
        std::vector<float> got16(size_t(n * out)), got8(size_t(n * out));
        ref::gemm_w4a16(x.data(), n, m, bias.data(), ref16.data());
        ref::gemm_w4a8(x.data(), n, m, bias.data(), ref8.data());
        gemm_w4a16(x.data(), n, m, bias.data(), got16.data());
        gemm_w4a8(x.data(), n, m, bias.data(), got8.data());
        std::vector<int8_t> q(static_cast<size_t>(in));
        std::vector<float> qd(static_cast<size_t>(blocks));
        std::vector<int32_t> qsum(static_cast<size_t>(blocks));
        for (int64_t t = 0; t < n; ++t) {
          const float* xt = x.data() + t * in;
          ref::quantize_row_q8(xt, in, q.data(), qd.data(), qsum.data());
          for (int64_t o = 0; o < out; ++o) {
            const size_t at = size_t(t * out + o);
            // w4a16: s * (sum code*x - z * sum x) per group, then over groups; every term is
            // bounded by s * (code + z) * |x|.
            double mag16 = std::fabs(bias[size_t(o)]);
            for (int64_t i = 0; i < in; ++i) mag16 += d.wmag(o, i) * std::fabs(xt[i]);
            const double tol16 = dot_error_bound(mag16, in + groups, ref16[at]);
            ASSERT_NEAR(got16[at], ref16[at], tol16) << isa_name(isa) << " w4a16 g=" << c.group
                                                     << " n=" << n << " t=" << t << " o=" << o;

            // w4a8 against its reference (same int8 codes, exact integer dots): only the f32
            // epilogue differs: per group sum_b d_b*dot_b and sum_b d_b*sum_b, the fold, the
            // sum over groups. Bounded by gamma(blocks + groups + 6) * sum of the magnitudes.
            double mag8 = std::fabs(bias[size_t(o)]);
            double int8_err = 0.0;  // sum |w| * |d q - x|: what int8 rounding can move w4a16
            for (int64_t j = 0; j < groups; ++j) {
              const double s = std::fabs(m.scale(o, j)), z = m.zero(o, j);
              for (int64_t b = j * g / 32; b < (j + 1) * g / 32; ++b) {
                int64_t dot = 0;
                for (int64_t k = b * 32; k < (b + 1) * 32; ++k) {
                  dot += int64_t(m.code(o, k)) * q[size_t(k)];
                  // |d q - x| <= d / 2 from rounding to nearest, plus a few ulps from the
                  // rounded 127 / max|x| and d.
                  int8_err += std::fabs(d.w(o, k)) * qd[size_t(b)] * (0.5 + 1e-4);
                }
                mag8 +=
                    s * qd[size_t(b)] * (std::fabs(double(dot)) + z * std::abs(qsum[size_t(b)]));
              }
            }
            const double tol8 = dot_error_bound(mag8, blocks + groups + 6, ref8[at]);
            ASSERT_NEAR(got8[at], ref8[at], tol8)
                << isa_name(isa) << " w4a8 g=" << c.group << " n=" << n << " t=" << t << " o=" << o;
            ASSERT_NEAR(got8[at], got16[at], int8_err + tol8 + tol16)
                << isa_name(isa) << " w4a8 vs w4a16 g=" << c.group << " n=" << n;
          }
        }
      }
    }
  }
}

// The int8 activation codes are the same bits on every ISA (the w4a8 result depends on them).
TEST(GemmW4, ActivationQuantizationIsIdenticalOnEveryIsa) {
  std::mt19937 rng(22);
  const int64_t in = 320;
  std::vector<float> x = random_floats(rng, size_t(in), 3.0f);
  for (int k = 32; k < 64; ++k) x[size_t(k)] = 0.0f;  // an all-zero block
  // Ties under round-half-to-even: with max|x| = 127 the scale is 1 and x*id = x.
  const float ties[] = {127.0f, 2.5f, 3.5f, -2.5f, -0.5f, 0.5f, 1.5f, -127.0f};
  for (int k = 0; k < 8; ++k) x[size_t(64 + k)] = ties[k];
  for (int k = 8; k < 32; ++k) x[size_t(64 + k)] = float(k) - 20.0f;
  x[100] = 1e-30f;  // tiny values and a huge one
  x[130] = 3e30f;
  std::vector<int8_t> want_q(static_cast<size_t>(in)), got_q(static_cast<size_t>(in));
  std::vector<float> want_d(static_cast<size_t>(in / 32)), got_d(static_cast<size_t>(in / 32));
  std::vector<int32_t> want_s(static_cast<size_t>(in / 32)), got_s(static_cast<size_t>(in / 32));
  ref::quantize_row_q8(x.data(), in, want_q.data(), want_d.data(), want_s.data());
  EXPECT_EQ(want_q[65], 2);
  EXPECT_EQ(want_q[66], 4);
  EXPECT_EQ(want_q[67], -2);
  for (Isa isa : available_isas()) {
    detail::table(isa).quantize_q8(x.data(), in, got_q.data(), got_d.data(), got_s.data());
    EXPECT_EQ(got_q, want_q) << isa_name(isa);
    EXPECT_EQ(got_d, want_d) << isa_name(isa);
    EXPECT_EQ(got_s, want_s) << isa_name(isa);
  }
}

}  // namespace
}  // namespace awq::kernels::test
