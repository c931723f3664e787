// W4Matrix::concat and rows_view: a fused matrix (q|k|v, gate|up) computes every row exactly as
// its part does, on every ISA, for both activation forms, so decode can run one kernel call.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "base/error.h"
#include "kernel_test_util.h"

namespace awq::kernels::test {
namespace {

// Bitwise equality (also for NaN/-0, which ASSERT_EQ on floats would blur).
bool same_bits(const float* a, const float* b, size_t n) {
  return std::memcmp(a, b, n * sizeof(float)) == 0;
}

TEST(W4Concat, FusedRowsAreBitIdenticalToParts) {
  IsaGuard guard;
  std::mt19937 rng(41);
  const int64_t in = 256;
  for (int group : {32, 128, -1}) {
    // Random (non-exact) data: a different order of operations would change the bits.
    const int64_t outs[] = {64, 16, 16, 40};  // the last part ragged (40 = 2.5 tiles)
    std::vector<W4Data> data;
    std::vector<W4Matrix> parts;
    for (int64_t o : outs) {
      data.push_back(random_w4(rng, o, in, group, /*exact=*/false));
      parts.push_back(W4Matrix::pack(data.back().source()));
    }
    const W4Matrix* ptrs[] = {&parts[0], &parts[1], &parts[2], &parts[3]};
    const W4Matrix fused = W4Matrix::concat(ptrs, 4);
    ASSERT_EQ(fused.out(), 136);
    ASSERT_EQ(fused.bytes(),
              parts[0].bytes() + parts[1].bytes() + parts[2].bytes() + parts[3].bytes());
    const std::vector<float> bias = random_floats(rng, size_t(fused.out()));
    for (Isa isa : available_isas()) {
      force_isa(isa);
      for (int64_t n : {1, 2, 3, 5, 8, 9, 20}) {
        const std::vector<float> x = random_floats(rng, size_t(n * in));
        for (bool a8 : {false, true}) {
          auto gemm = a8 ? gemm_w4a8 : gemm_w4a16;
          std::vector<float> yf(size_t(n * fused.out()));
          gemm(x.data(), n, fused, bias.data(), yf.data());
          int64_t row0 = 0;
          for (size_t p = 0; p < parts.size(); ++p) {
            const int64_t o = parts[p].out();
            std::vector<float> yp(size_t(n * o)), yv(size_t(n * o));
            gemm(x.data(), n, parts[p], bias.data() + row0, yp.data());
            const W4Matrix view = fused.rows_view(row0, o);
            EXPECT_EQ(view.bytes(), parts[p].bytes());
            gemm(x.data(), n, view, bias.data() + row0, yv.data());
            for (int64_t t = 0; t < n; ++t) {
              // Up to kFusedMaxTokens rows (what forward_group fuses) every row is computed
              // alone: the same bits. Beyond, the scalar W4A16 path hands row chunks to OpenBLAS,
              // whose edge kernels may sum a column differently for another matrix height (seen
              // on an AMD EPYC): equal to rounding only.
              const float* fr = yf.data() + t * fused.out() + row0;
              const float* pr = yp.data() + t * o;
              if (n <= 8 || a8 || isa != Isa::Scalar) {
                ASSERT_TRUE(same_bits(fr, pr, size_t(o)))
                    << isa_name(isa) << (a8 ? " w4a8" : " w4a16") << " g=" << group << " n=" << n
                    << " part " << p << " token " << t;
              } else {
                for (int64_t r = 0; r < o; ++r)
                  ASSERT_NEAR(fr[r], pr[r], 1e-5f * (1.0f + std::fabs(pr[r]))) << "row " << r;
              }
              ASSERT_TRUE(same_bits(yv.data() + t * o, yp.data() + t * o, size_t(o)))
                  << "view of part " << p;
            }
            for (int64_t r = 0; r < o; r += 7)
              ASSERT_EQ(view.code(r, r % in), data[p].codes[size_t(r * in + r % in)]);
            row0 += o;
          }
        }
      }
    }
  }
}

TEST(W4Concat, RejectsMismatchedParts) {
  std::mt19937 rng(42);
  const W4Matrix a = W4Matrix::pack(random_w4(rng, 20, 128, 32, false).source());
  const W4Matrix b = W4Matrix::pack(random_w4(rng, 16, 128, 64, false).source());
  const W4Matrix c = W4Matrix::pack(random_w4(rng, 16, 256, 32, false).source());
  const W4Matrix d = W4Matrix::pack(random_w4(rng, 16, 128, 32, false).source());
  const W4Matrix* ragged_first[] = {&a, &d};  // 20 rows: not a whole number of tiles
  const W4Matrix* groups[] = {&d, &b};
  const W4Matrix* widths[] = {&d, &c};
  EXPECT_THROW(W4Matrix::concat(ragged_first, 2), Error);
  EXPECT_THROW(W4Matrix::concat(groups, 2), Error);
  EXPECT_THROW(W4Matrix::concat(widths, 2), Error);
  EXPECT_THROW(d.rows_view(8, 8), Error);   // not on a tile boundary
  EXPECT_THROW(d.rows_view(0, 17), Error);  // out of range
  const W4Matrix* ok[] = {&d, &a};          // ragged last part is fine
  EXPECT_EQ(W4Matrix::concat(ok, 2).out(), 36);
}

}  // namespace
}  // namespace awq::kernels::test
