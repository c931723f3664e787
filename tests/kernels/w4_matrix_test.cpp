// W4Matrix packing: what goes in comes back out exactly, and bad sources are refused.
#include <gtest/gtest.h>

#include "base/error.h"
#include "kernel_test_util.h"

namespace awq::kernels::test {
namespace {

TEST(W4Matrix, DequantizeRowEqualsSourceFormulaExactly) {
  std::mt19937 rng(10);
  for (int group : {32, 64, 128, -1})
    for (int64_t out : {1, 15, 16, 17, 50})
      for (int64_t in : {128, 384}) {
        if (group > 0 && in % group) continue;
        const W4Data d = random_w4(rng, out, in, group, /*exact=*/false);
        const W4Matrix m = W4Matrix::pack(d.source());
        EXPECT_EQ(m.out(), out);
        EXPECT_EQ(m.in(), in);
        EXPECT_EQ(m.group(), d.g());
        EXPECT_EQ(m.groups(), in / d.g());
        std::vector<float> row(static_cast<size_t>(in));
        for (int64_t o = 0; o < out; ++o) {
          m.dequantize_row(o, row.data());
          for (int64_t i = 0; i < in; ++i) {
            const int64_t j = o * (in / d.g()) + i / d.g();
            // The formula in f32, as the quantizer's consumer would evaluate it.
            const float want = float(int(d.codes[size_t(o * in + i)]) - int(d.zeros[size_t(j)])) *
                               d.scales[size_t(j)];
            ASSERT_EQ(row[size_t(i)], want) << "group " << group << " row " << o << " col " << i;
            ASSERT_EQ(m.code(o, i), d.codes[size_t(o * in + i)]);
          }
          for (int64_t j = 0; j < in / d.g(); ++j) {
            ASSERT_EQ(m.scale(o, j), d.scales[size_t(o * (in / d.g()) + j)]);
            ASSERT_EQ(m.zero(o, j), d.zeros[size_t(o * (in / d.g()) + j)]);
          }
        }
      }
}

TEST(W4Matrix, SymmetricZerosDefaultToEightAndCopiesAreDeep) {
  std::mt19937 rng(11);
  W4Data d = random_w4(rng, 20, 64, 32, false);
  W4Source src = d.source();
  src.zeros = nullptr;
  W4Matrix m = W4Matrix::pack(src);
  for (int64_t o = 0; o < 20; ++o)
    for (int64_t j = 0; j < 2; ++j) EXPECT_EQ(m.zero(o, j), 8);
  const W4Matrix copy = m;
  m = W4Matrix::pack(d.source());  // the copy must not follow
  EXPECT_EQ(copy.zero(3, 1), 8);
  EXPECT_EQ(copy.bytes(), m.bytes());
  EXPECT_EQ(copy.bytes() % 64, 0u);
  // 4.31 bits per weight at g = 32 here: 16 rows x 64 cols x 0.5 B + 16 x 2 groups x 5 B, per tile.
  EXPECT_EQ(copy.bytes(), size_t(2 * (16 * 64 / 2 + 16 * 2 * 5 + 32)));
}

TEST(W4Matrix, RejectsBadSources) {
  std::mt19937 rng(12);
  W4Data d = random_w4(rng, 4, 64, 32, false);
  {
    W4Source s = d.source();
    s.group = 48;  // not a multiple of 32
    EXPECT_THROW(W4Matrix::pack(s), Error);
    s.group = 128;  // does not divide 64
    EXPECT_THROW(W4Matrix::pack(s), Error);
    s.group = 0;
    EXPECT_THROW(W4Matrix::pack(s), Error);
  }
  {
    W4Data e = random_w4(rng, 4, 48, -1, false);  // in not a multiple of 32
    EXPECT_THROW(W4Matrix::pack(e.source()), Error);
  }
  {
    W4Data e = d;
    e.codes[77] = 16;
    try {
      W4Matrix::pack(e.source());
      FAIL() << "code 16 accepted";
    } catch (const Error& err) {
      EXPECT_NE(std::string(err.what()).find("row 1, column 13"), std::string::npos) << err.what();
    }
  }
  {
    W4Data e = d;
    e.zeros[3] = 200;
    EXPECT_THROW(W4Matrix::pack(e.source()), Error);
  }
  {
    W4Source s = d.source();
    s.scales = nullptr;
    EXPECT_THROW(W4Matrix::pack(s), Error);
    s = d.source();
    s.out = 0;
    EXPECT_THROW(W4Matrix::pack(s), Error);
  }
  W4Matrix empty;
  std::vector<float> x(64), y(4);
  EXPECT_THROW(gemm_w4a16(x.data(), 1, empty, nullptr, y.data()), Error);
}

}  // namespace
}  // namespace awq::kernels::test
