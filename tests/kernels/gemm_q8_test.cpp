// Q8Matrix (the int8 lm_head copy) and gemm_q8a8 on every ISA against the scalar reference
// (kernels/reference.h), on ragged shapes: rows not a multiple of the 16-row tile, input widths
// a multiple of 32 but not of 64, and token counts on both sides of each kernel's blocking.
#include <gtest/gtest.h>

#include <bit>

#include "base/error.h"
#include "base/half.h"
#include "kernel_test_util.h"
#include "kernels/reference.h"

namespace awq::kernels::test {
namespace {

// Rows whose every block of 32 holds integer codes in [-127, 127] with one of them +-127, times a
// scale in {1, 2}: packing recovers exactly those codes and scales (max|w| / 127 is the scale, a
// power of two, exact in f16).
struct ExactQ8 {
  std::vector<float> w;
  std::vector<int8_t> codes;
  std::vector<float> scales;  // [out, in / 32]
};

ExactQ8 exact_q8(std::mt19937& rng, int64_t out, int64_t in) {
  ExactQ8 e;
  std::uniform_int_distribution<int> code(-127, 127);
  e.codes.resize(size_t(out * in));
  for (auto& c : e.codes) c = int8_t(code(rng));
  e.scales.resize(size_t(out * in / 32));
  e.w.resize(e.codes.size());
  for (int64_t o = 0; o < out; ++o)
    for (int64_t b = 0; b < in / 32; ++b) {
      const size_t j = size_t(o * (in / 32) + b);
      e.scales[j] = float(1 + (rng() & 1));
      e.codes[size_t(o * in + b * 32 + int64_t(rng() % 32))] = (rng() & 1) ? 127 : -127;
      for (int64_t k = b * 32; k < (b + 1) * 32; ++k)
        e.w[size_t(o * in + k)] = float(e.codes[size_t(o * in + k)]) * e.scales[j];
    }
  return e;
}

// Exact data and activations whose int8 quantization is the identity: every intermediate is an
// exactly representable f32 (|sum| <= 12 blocks x 32 x 127 x 127 x 2 < 2^24), so every ISA and
// the double reference must give the same bits. Any indexing, sign or scale-order mistake shows.
TEST(GemmQ8, ExactDataIsBitExactOnEveryIsa) {
  IsaGuard guard;
  std::mt19937 rng(40);
  const int64_t outs[] = {1, 15, 17, 40, 250, 291};  // 291: 19 tiles, 4 + 4 + 4 + 4 + 2 + 1
  const int64_t ins[] = {32, 96, 384};               // 96: a multiple of 32, not of 64
  const int64_t ns[] = {1, 2, 3, 8, 9, 17};
  for (int64_t out : outs)
    for (int64_t in : ins) {
      const ExactQ8 e = exact_q8(rng, out, in);
      const Q8Matrix m = Q8Matrix::pack(e.w.data(), Q8RowType::F32, out, in, "exact");
      for (int64_t o = 0; o < out; ++o) {
        for (int64_t i = 0; i < in; ++i)
          ASSERT_EQ(m.code(o, i), e.codes[size_t(o * in + i)]) << "o=" << o << " i=" << i;
        for (int64_t b = 0; b < in / 32; ++b)
          ASSERT_EQ(m.scale(o, b), e.scales[size_t(o * (in / 32) + b)]);
      }
      const std::vector<float> bias = random_ints(rng, size_t(out), 1000);
      for (int64_t n : ns) {
        const std::vector<float> x = q8_exact_acts(rng, n, in);
        std::vector<float> want(size_t(n * out));
        ref::gemm_q8a8(x.data(), n, m, bias.data(), want.data());
        for (Isa isa : available_isas()) {
          force_isa(isa);
          std::vector<float> got(size_t(n * out), -1.0f);
          gemm_q8a8(x.data(), n, m, bias.data(), got.data());
          for (size_t i = 0; i < want.size(); ++i)
            ASSERT_EQ(got[i], want[i])
                << isa_name(isa) << " out=" << out << " in=" << in << " n=" << n << " at " << i;
        }
      }
    }
}

// Random data: every ISA computes the same float operations in the same order (the integer dots
// are exact), so all ISAs give the scalar ISA's bits exactly; against the double reference the
// f32 epilogue (one rounding for float(dot) * d, one per fma, over `blocks` terms, plus the bias)
// is within gamma(blocks + 3) x the sum of the terms' magnitudes.
TEST(GemmQ8, RandomDataIsIdenticalOnEveryIsaAndNearTheReference) {
  IsaGuard guard;
  std::mt19937 rng(41);
  struct Case {
    int64_t out, in;
  };
  // in 1600 (tile 27 KiB) and 2048 take the AVX-512 two-stream decode path, 384 the four-stream
  // one, 3040 (95 blocks, 50 KiB tiles) one stream.
  const Case cases[] = {{17, 384}, {53, 1600}, {37, 2048}, {40, 3040}, {300, 96}};
  for (const Case& c : cases)
    for (int64_t n : {1, 2, 3, 17}) {
      const std::vector<float> w = random_floats(rng, size_t(c.out * c.in), 0.05f);
      const Q8Matrix m = Q8Matrix::pack(w.data(), Q8RowType::F32, c.out, c.in, "random");
      const std::vector<float> x = random_floats(rng, size_t(n * c.in));
      const std::vector<float> bias = random_floats(rng, size_t(c.out));
      std::vector<float> want(size_t(n * c.out));
      ref::gemm_q8a8(x.data(), n, m, bias.data(), want.data());
      force_isa(Isa::Scalar);
      std::vector<float> scalar(size_t(n * c.out));
      gemm_q8a8(x.data(), n, m, bias.data(), scalar.data());
      const int64_t blocks = c.in / 32;
      std::vector<int8_t> q(static_cast<size_t>(c.in));
      std::vector<float> d(static_cast<size_t>(blocks));
      std::vector<int32_t> sums(static_cast<size_t>(blocks));
      for (int64_t t = 0; t < n; ++t) {
        ref::quantize_row_q8(x.data() + t * c.in, c.in, q.data(), d.data(), sums.data());
        for (int64_t o = 0; o < c.out; ++o) {
          double mag = std::fabs(bias[size_t(o)]);
          for (int64_t b = 0; b < blocks; ++b) {
            int64_t dot = 0;
            for (int64_t k = b * 32; k < (b + 1) * 32; ++k)
              dot += int64_t(m.code(o, k)) * q[size_t(k)];
            mag += double(m.scale(o, b)) * d[size_t(b)] * std::fabs(double(dot));
          }
          const size_t at = size_t(t * c.out + o);
          ASSERT_NEAR(scalar[at], want[at], dot_error_bound(mag, blocks + 3, want[at]))
              << "out=" << c.out << " in=" << c.in << " n=" << n << " t=" << t << " o=" << o;
        }
      }
      for (Isa isa : available_isas()) {
        force_isa(isa);
        std::vector<float> got(size_t(n * c.out));
        gemm_q8a8(x.data(), n, m, bias.data(), got.data());
        for (size_t i = 0; i < got.size(); ++i)
          ASSERT_EQ(std::bit_cast<uint32_t>(got[i]), std::bit_cast<uint32_t>(scalar[i]))
              << isa_name(isa) << " out=" << c.out << " in=" << c.in << " n=" << n << " at " << i;
      }
    }
}

// Dequantized codes are within half a step of the source (plus the rounding of w / d to a code:
// a few ulps of 127), from f32, f16 and bf16 rows alike; an all-zero block packs to scale 0.
TEST(GemmQ8, PackRoundTripIsWithinHalfAStep) {
  std::mt19937 rng(42);
  const int64_t out = 19, in = 160;
  std::vector<float> w = random_floats(rng, size_t(out * in), 0.03f);
  for (int64_t k = 32; k < 64; ++k) w[size_t(2 * in + k)] = 0.0f;                  // row 2, block 1
  w[size_t(5 * in + 7)] = 40.0f;                                                   // an outlier
  for (int64_t k = 0; k < 32; ++k) w[size_t(7 * in + k)] = 1e-7f * float(k - 16);  // tiny scale
  std::vector<uint16_t> wh(w.size()), wb(w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    wh[i] = f32_to_f16(w[i]);
    wb[i] = f32_to_bf16(w[i]);
  }
  struct Src {
    Q8RowType type;
    const void* p;
  };
  for (const Src& s : {Src{Q8RowType::F32, w.data()}, Src{Q8RowType::F16, wh.data()},
                       Src{Q8RowType::BF16, wb.data()}}) {
    const Q8Matrix m = Q8Matrix::pack(s.p, s.type, out, in, "round trip");
    std::vector<float> row(static_cast<size_t>(in));
    for (int64_t o = 0; o < out; ++o) {
      m.dequantize_row(o, row.data());
      for (int64_t i = 0; i < in; ++i) {
        const size_t at = size_t(o * in + i);
        const float src = s.type == Q8RowType::F32   ? w[at]
                          : s.type == Q8RowType::F16 ? f16_to_f32(wh[at])
                                                     : bf16_to_f32(wb[at]);
        const double step = m.scale(o, i / 32);
        ASSERT_LE(std::fabs(double(row[size_t(i)]) - src), step * (0.5 + 1e-4) + 1e-30)
            << "type " << int(s.type) << " o=" << o << " i=" << i;
        ASSERT_GE(m.code(o, i), -127);
      }
    }
    EXPECT_EQ(m.scale(2, 1), 0.0f);
    EXPECT_EQ(m.code(5, 7), 127);
    EXPECT_EQ(m.bytes(), size_t(2 * ((17 * in + 63) / 64 * 64)));  // 2 tiles, 64-byte padded
  }
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(GemmQ8, BadInputIsAClearError) {
  std::vector<float> w(size_t(4 * 64), 0.01f);
  EXPECT_NE(error_of([&] {
              Q8Matrix::pack(w.data(), Q8RowType::F32, 4, 48, "lm_head.weight");
            }).find("'lm_head.weight' [4 x 48]: the input width must be a multiple of 32"),
            std::string::npos);
  w[size_t(3 * 64 + 5)] = std::nanf("");
  const std::string nan =
      error_of([&] { Q8Matrix::pack(w.data(), Q8RowType::F32, 4, 64, "head"); });
  EXPECT_NE(nan.find("'head' [4 x 64]: weight at row 3, column 5 is nan"), std::string::npos)
      << nan;
  w[size_t(3 * 64 + 5)] = 0.0f;
  w[size_t(1 * 64 + 40)] = -INFINITY;
  const std::string inf =
      error_of([&] { Q8Matrix::pack(w.data(), Q8RowType::F32, 4, 64, "head"); });
  EXPECT_NE(inf.find("row 1, column 40 is -inf"), std::string::npos) << inf;
  w[size_t(1 * 64 + 40)] = 1e30f;
  const std::string big =
      error_of([&] { Q8Matrix::pack(w.data(), Q8RowType::F32, 4, 64, "head"); });
  EXPECT_NE(big.find("row 1, columns 32..63"), std::string::npos) << big;
  EXPECT_NE(error_of([&] {
              Q8Matrix::pack(w.data(), Q8RowType::F32, 0, 64, "head");
            }).find("must be positive"),
            std::string::npos);
  const std::vector<float> ok(size_t(64), 0.5f);
  const Q8Matrix m = Q8Matrix::pack(ok.data(), Q8RowType::F32, 1, 64, "head");
  EXPECT_NE(error_of([&] { m.dequantize_row(1, w.data()); }).find("row 1 out of range"),
            std::string::npos);
}

}  // namespace
}  // namespace awq::kernels::test
