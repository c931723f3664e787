#include "quant/gptq.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

#include "base/error.h"
#include "base/half.h"
#include "base/thread_pool.h"
#include "kernels/linalg.h"
#include "quant/quantize.h"
#include "quant_reference.h"

namespace awq {
namespace {

using test::random_inputs;
using test::random_weights;

// ---------------------------------------------------------------------------------------------
// GPTQ as the paper writes it (Algorithm 1), in double, written for this test: H^-1 by
// Gauss-Jordan elimination, its upper Cholesky factor by the textbook loop, then one column at a
// time with the update applied to the whole rest of the row at once (no lazy batches). The
// quantizer is the one quantize() uses (test::ref_quantize_group's formulas).

std::vector<double> gram_of(const std::vector<float>& x, int64_t t, int64_t in) {
  std::vector<double> g(static_cast<size_t>(in * in), 0.0);
  for (int64_t r = 0; r < t; ++r)
    for (int64_t i = 0; i < in; ++i)
      for (int64_t j = 0; j < in; ++j)
        g[size_t(i * in + j)] += double(x[size_t(r * in + i)]) * double(x[size_t(r * in + j)]);
  return g;
}

std::vector<double> invert(std::vector<double> a, int64_t n) {
  std::vector<double> inv(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) inv[size_t(i * n + i)] = 1.0;
  for (int64_t c = 0; c < n; ++c) {
    int64_t p = c;
    for (int64_t r = c + 1; r < n; ++r)
      if (std::fabs(a[size_t(r * n + c)]) > std::fabs(a[size_t(p * n + c)])) p = r;
    for (int64_t j = 0; j < n; ++j) {
      std::swap(a[size_t(c * n + j)], a[size_t(p * n + j)]);
      std::swap(inv[size_t(c * n + j)], inv[size_t(p * n + j)]);
    }
    const double d = a[size_t(c * n + c)];
    for (int64_t j = 0; j < n; ++j) {
      a[size_t(c * n + j)] /= d;
      inv[size_t(c * n + j)] /= d;
    }
    for (int64_t r = 0; r < n; ++r) {
      if (r == c) continue;
      const double f = a[size_t(r * n + c)];
      for (int64_t j = 0; j < n; ++j) {
        a[size_t(r * n + j)] -= f * a[size_t(c * n + j)];
        inv[size_t(r * n + j)] -= f * inv[size_t(c * n + j)];
      }
    }
  }
  return inv;
}

// U upper with U^T U = a (a symmetric positive definite).
std::vector<double> cholesky_upper(const std::vector<double>& a, int64_t n) {
  std::vector<double> u(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    double s = a[size_t(i * n + i)];
    for (int64_t k = 0; k < i; ++k) s -= u[size_t(k * n + i)] * u[size_t(k * n + i)];
    u[size_t(i * n + i)] = std::sqrt(s);
    for (int64_t j = i + 1; j < n; ++j) {
      double t = a[size_t(i * n + j)];
      for (int64_t k = 0; k < i; ++k) t -= u[size_t(k * n + i)] * u[size_t(k * n + j)];
      u[size_t(i * n + j)] = t / u[size_t(i * n + i)];
    }
  }
  return u;
}

// Scale and zero of a group with range [mn, mx] (quantize.h's formulas).
std::pair<float, float> ref_params(float mn, float mx, const QuantSpec& spec) {
  auto rounded = [&](float v) { return spec.f16_scales ? round_to_f16(v) : v; };
  if (!spec.zero_point) {
    const int half = 1 << (spec.bits - 1);
    return {rounded(std::max(std::max(mx, -mn), 1e-5f) / float(half - 1)), float(half)};
  }
  const int maxq = (1 << spec.bits) - 1;
  const float scale = rounded(std::max(mx - mn, 1e-5f) / float(maxq));
  return {scale, std::clamp(-std::nearbyint(mn / scale), 0.0f, float(maxq))};
}

float ref_code(float w, float s, float z, int bits) {
  const float y = std::clamp(w / s, -1048576.0f, 1048576.0f);
  return std::clamp(std::nearbyint(y) + z, 0.0f, float((1 << bits) - 1));
}

// With `clip` (indices into the 20-point shrink grid per (row, group), lo empty: symmetric), a
// group's range is the clamp interval of its choice on the group's values when entered.
QuantizedMatrix reference_gptq(const std::vector<float>& w, int64_t out, int64_t in,
                               const std::vector<double>& gram, const QuantSpec& spec, double damp,
                               bool act_order, const ClipChoice* clip = nullptr) {
  const int g = spec.group_for(in);
  const int64_t ng = in / g;
  std::vector<int64_t> perm(static_cast<size_t>(in));
  std::iota(perm.begin(), perm.end(), int64_t(0));
  if (act_order)
    std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) {
      return gram[size_t(a * in + a)] > gram[size_t(b * in + b)];
    });
  std::vector<double> h(static_cast<size_t>(in * in));
  std::vector<bool> dead(static_cast<size_t>(in));
  double mean = 0;
  for (int64_t i = 0; i < in; ++i) {
    for (int64_t j = 0; j < in; ++j)
      h[size_t(i * in + j)] = gram[size_t(perm[size_t(i)] * in + perm[size_t(j)])];
    dead[size_t(perm[size_t(i)])] = h[size_t(i * in + i)] == 0.0;
    if (h[size_t(i * in + i)] == 0.0) h[size_t(i * in + i)] = 1.0;
    mean += h[size_t(i * in + i)] / double(in);
  }
  for (int64_t i = 0; i < in; ++i) h[size_t(i * in + i)] += damp * mean;
  const std::vector<double> u = cholesky_upper(invert(h, in), in);

  QuantizedMatrix q;
  q.out = out;
  q.in = in;
  q.spec = spec;
  q.group = g;
  q.codes.resize(size_t(out * in));
  q.scales.resize(size_t(out * ng));
  q.zeros.resize(size_t(out * ng));
  auto params = [&](const std::vector<double>& vals, size_t gi) {
    float mn = float(vals[0]), mx = float(vals[0]);
    for (double v : vals) {
      mn = std::min(mn, float(v));
      mx = std::max(mx, float(v));
    }
    if (clip) {
      const float fh = float(1.0 - clip->hi[gi] / 20.0);
      float lo = -std::max(mx, -mn) * fh, hi = std::max(mx, -mn) * fh;
      if (!clip->lo.empty()) {
        lo = mn * float(1.0 - clip->lo[gi] / 20.0);
        hi = mx * fh;
      }
      const float cmn = std::min(std::max(mn, lo), hi), cmx = std::min(std::max(mx, lo), hi);
      mn = cmn;
      mx = cmx;
    }
    return ref_params(mn, mx, spec);
  };
  for (int64_t r = 0; r < out; ++r) {
    std::vector<double> row(static_cast<size_t>(in));
    for (int64_t i = 0; i < in; ++i) {
      const int64_t col = perm[size_t(i)];
      row[size_t(i)] = dead[size_t(col)] ? 0.0 : double(w[size_t(r * in + col)]);
    }
    std::vector<std::pair<float, float>> gp(static_cast<size_t>(ng));
    if (act_order)
      for (int64_t k = 0; k < ng; ++k) {
        std::vector<double> vals;
        for (int64_t j = 0; j < g; ++j)
          vals.push_back(dead[size_t(k * g + j)] ? 0.0 : double(w[size_t(r * in + k * g + j)]));
        gp[size_t(k)] = params(vals, size_t(r * ng + k));
      }
    for (int64_t i = 0; i < in; ++i) {
      const int64_t col = perm[size_t(i)], k = col / g;
      if (!act_order && i % g == 0)
        gp[size_t(k)] =
            params(std::vector<double>(row.begin() + i, row.begin() + i + g), size_t(r * ng + k));
      const auto [s, z] = gp[size_t(k)];
      const float c = ref_code(float(row[size_t(i)]), s, z, spec.bits);
      q.codes[size_t(r * in + col)] = uint8_t(c);
      q.scales[size_t(r * ng + k)] = s;
      q.zeros[size_t(r * ng + k)] = uint8_t(z);
      const double e = (row[size_t(i)] - double((c - z) * s)) / u[size_t(i * in + i)];
      for (int64_t j = i + 1; j < in; ++j) row[size_t(j)] -= e * u[size_t(i * in + j)];
    }
  }
  return q;
}

// (w - q) G (w - q)^T summed over rows.
double output_error(const std::vector<float>& w, const QuantizedMatrix& q,
                    const std::vector<double>& gram) {
  double total = 0;
  std::vector<double> d(static_cast<size_t>(q.in));
  for (int64_t r = 0; r < q.out; ++r) {
    for (int64_t j = 0; j < q.in; ++j)
      d[size_t(j)] = double(w[size_t(r * q.in + j)]) - double(q.dequant(r, j));
    for (int64_t i = 0; i < q.in; ++i)
      for (int64_t j = 0; j < q.in; ++j)
        total += d[size_t(i)] * gram[size_t(i * q.in + j)] * d[size_t(j)];
  }
  return total;
}

struct Case {
  const char* name;
  int64_t out, in, t;
  QuantSpec spec;
  bool act_order = false;
  int dead = 0;            // input channels that never fire
  bool collinear = false;  // pairs of nearly equal channels and scales over 1e-3 .. 1e3
};

std::vector<float> case_inputs(const Case& c, uint32_t seed) {
  std::vector<float> x = random_inputs(c.t, c.in, seed);
  for (int64_t r = 0; r < c.t; ++r) {
    for (int j = 0; j < c.dead; ++j) x[size_t(r * c.in + 3 + 5 * j)] = 0.0f;
    if (c.collinear)
      for (int64_t j = 1; j < c.in; j += 7) {
        x[size_t(r * c.in + j)] = x[size_t(r * c.in + j - 1)] * (1.0f + 1e-4f * float(j % 3));
        x[size_t(r * c.in + j + 1 < c.in ? j + 1 : j)] *= float(std::pow(10.0, double(j % 7) - 3));
      }
  }
  return x;
}

// Codes, scales and zeros equal the paper's algorithm in double. The two sum the same products
// in a different order (lazy batches and BLAS against one update per column), so a weight that
// falls within rounding of a code boundary may go either way; such a near-tie changes that code
// by one and, through its error, nudges later weights of the same row. The bound allows 0.2% of
// codes, each off by at most one (none differ on this machine's OpenBLAS), and 1% of the groups'
// parameters.
void check_against_reference(const Case& c, uint32_t seed) {
  SCOPED_TRACE(c.name);
  const std::vector<float> w = random_weights(c.out, c.in, seed);
  const std::vector<double> gram = gram_of(case_inputs(c, seed + 1), c.t, c.in);
  GptqOptions opts;
  opts.act_order = c.act_order;
  GptqStats st;
  const QuantizedMatrix q = gptq_quantize(w.data(), c.out, c.in, gram, c.spec, opts, c.name, &st);
  const QuantizedMatrix ref = reference_gptq(w, c.out, c.in, gram, c.spec, 0.01, c.act_order);
  ASSERT_EQ(q.codes.size(), ref.codes.size());
  int64_t differ = 0;
  for (size_t i = 0; i < q.codes.size(); ++i) {
    differ += q.codes[i] != ref.codes[i];
    ASSERT_LE(std::abs(int(q.codes[i]) - int(ref.codes[i])), 1) << "code " << i;
  }
  EXPECT_LE(differ, int64_t(q.codes.size()) / 500) << differ << " of " << q.codes.size();
  int64_t params_differ = 0;
  for (size_t i = 0; i < q.scales.size(); ++i)
    params_differ += q.scales[i] != ref.scales[i] || q.zeros[i] != ref.zeros[i];
  EXPECT_LE(params_differ, int64_t(q.scales.size()) / 100);
  EXPECT_EQ(st.dead, c.dead);
  // Better than rounding each weight to its nearest level, on the objective GPTQ minimizes.
  const QuantizedMatrix rtn = quantize(w.data(), c.out, c.in, c.spec, "rtn");
  const double e_gptq = output_error(w, q, gram), e_rtn = output_error(w, rtn, gram);
  EXPECT_LT(e_gptq, 0.9 * e_rtn) << "gptq " << e_gptq << " rtn " << e_rtn;
  EXPECT_LT(st.loss, st.rtn_loss);
}

TEST(Gptq, MatchesThePapersAlgorithmInDouble) {
  check_against_reference({"g32", 40, 128, 300, QuantSpec{4, 32, true}}, 1);
  check_against_reference({"g64 w3 ragged rows", 37, 192, 200, QuantSpec{3, 64, true}}, 2);
  check_against_reference({"g128 blocks of 128", 20, 384, 500, QuantSpec{4, 128, true}}, 3);
  check_against_reference({"whole rows (group 96)", 24, 96, 150, QuantSpec{4, -1, true}}, 4);
  check_against_reference({"symmetric", 24, 128, 300, QuantSpec{4, 32, false}}, 5);
  check_against_reference({"f32 scales", 24, 128, 300, QuantSpec{4, 64, true, false}}, 6);
}

TEST(Gptq, IllConditionedAndDeadChannels) {
  // Fewer tokens than channels: G is singular and only the damping makes H invertible.
  check_against_reference({"rank-deficient", 24, 128, 60, QuantSpec{4, 32, true}}, 11);
  check_against_reference({"dead channels", 24, 128, 300, QuantSpec{4, 32, true}, false, 5}, 12);
  check_against_reference({"near-collinear", 24, 128, 300, QuantSpec{4, 64, true}, false, 0, true},
                          13);
}

TEST(Gptq, ActOrderWithStaticGroups) {
  check_against_reference({"act-order g32", 32, 128, 300, QuantSpec{4, 32, true}, true}, 21);
  check_against_reference({"act-order g64 dead", 24, 192, 300, QuantSpec{3, 64, true}, true, 4},
                          22);
  // The processing order is by decreasing G_jj, ties by index.
  const std::vector<double> g = {1, 0, 0, 0, 3, 0, 0, 0, 3};
  EXPECT_EQ(gptq_order(g, 3, true), (std::vector<int64_t>{1, 2, 0}));
  EXPECT_EQ(gptq_order(g, 3, false), (std::vector<int64_t>{0, 1, 2}));
}

// awq-gptq's clipping: every group quantized over the range its clip choice gives when the group
// is entered (symmetric and asymmetric choices, dynamic and static groups), as the reference
// computes it; and on the objective, better than clipping then rounding (what AWQ writes).
TEST(Gptq, ClipChoicesAreTheGroupsRanges) {
  const int64_t out = 24, in = 128, t = 300;
  const QuantSpec spec{4, 32, true};
  const std::vector<float> w = random_weights(out, in, 61);
  const std::vector<double> gram = gram_of(random_inputs(t, in, 62), t, in);
  std::mt19937 rng(63);
  std::uniform_int_distribution<int> idx(0, 9);
  for (const bool asymmetric : {false, true})
    for (const bool act_order : {false, true}) {
      SCOPED_TRACE(testing::Message() << "asymmetric " << asymmetric << " act_order " << act_order);
      ClipChoice c;
      for (int64_t i = 0; i < out * (in / 32); ++i) {
        c.hi.push_back(uint8_t(idx(rng)));
        if (asymmetric) c.lo.push_back(uint8_t(idx(rng)));
      }
      GptqOptions opts;
      opts.act_order = act_order;
      GptqStats st;
      const QuantizedMatrix q =
          gptq_quantize(w.data(), out, in, gram, spec, opts, "w", &st, GptqClip{&c, 20});
      const QuantizedMatrix ref = reference_gptq(w, out, in, gram, spec, 0.01, act_order, &c);
      int64_t differ = 0;
      for (size_t i = 0; i < q.codes.size(); ++i) differ += q.codes[i] != ref.codes[i];
      EXPECT_LE(differ, int64_t(q.codes.size()) / 500);
      EXPECT_EQ(q.scales, ref.scales);
      EXPECT_EQ(q.zeros, ref.zeros);
      EXPECT_LT(st.loss, st.rtn_loss);
      // The ranges are not those of plain GPTQ: the clips took effect.
      const QuantizedMatrix plain = gptq_quantize(w.data(), out, in, gram, spec, opts, "w");
      EXPECT_NE(q.scales, plain.scales);
    }
  // A clip table of the wrong size is refused.
  ClipChoice small{{1, 2}, {}};
  EXPECT_THROW(gptq_quantize(w.data(), out, in, gram, spec, {}, "w", nullptr, GptqClip{&small, 20}),
               Error);
}

TEST(Gptq, BlockWidthFitsTheGroups) {
  EXPECT_EQ(gptq_block(128, 32), 128);
  EXPECT_EQ(gptq_block(128, 48), 96);
  EXPECT_EQ(gptq_block(128, 128), 128);
  EXPECT_EQ(gptq_block(128, 256), 128);
  EXPECT_EQ(gptq_block(128, 288), 288);
}

TEST(Gptq, IdenticalForAnyThreadCount) {
  const int64_t out = 100, in = 256, t = 400;
  const std::vector<float> w = random_weights(out, in, 31);
  const std::vector<double> gram = gram_of(random_inputs(t, in, 32), t, in);
  const int before = num_threads();
  std::vector<QuantizedMatrix> r;
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    r.push_back(gptq_quantize(w.data(), out, in, gram, QuantSpec{4, 64, true}, {}, "w"));
  }
  set_num_threads(before);
  for (size_t i = 1; i < r.size(); ++i) {
    EXPECT_EQ(r[i].codes, r[0].codes);
    EXPECT_EQ(r[i].scales, r[0].scales);
    EXPECT_EQ(r[i].zeros, r[0].zeros);
  }
}

TEST(Gptq, InverseCholeskyFactor) {
  const int64_t n = 70;
  std::vector<double> h = gram_of(random_inputs(200, n, 41), 200, n);
  for (int64_t i = 0; i < n; ++i) h[size_t(i * n + i)] += 1.0;
  std::vector<double> u = h;
  ASSERT_TRUE(kernels::inverse_cholesky_upper(u, n));
  // U is upper triangular with a positive diagonal and U^T U H = I.
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_GT(u[size_t(i * n + i)], 0.0);
    for (int64_t j = 0; j < i; ++j) EXPECT_EQ(u[size_t(i * n + j)], 0.0);
  }
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t k = 0; k < n; ++k) {
        double utu = 0;
        for (int64_t m = 0; m <= std::min(i, k); ++m)
          utu += u[size_t(m * n + i)] * u[size_t(m * n + k)];
        s += utu * h[size_t(k * n + j)];
      }
      EXPECT_NEAR(s, i == j ? 1.0 : 0.0, 1e-9) << i << ", " << j;
    }
  // Not positive definite: refused.
  std::vector<double> bad = {1, 2, 2, 1};
  EXPECT_FALSE(kernels::inverse_cholesky_upper(bad, 2));
}

TEST(Gptq, BadInputIsNamed) {
  std::vector<float> w = random_weights(4, 64, 51);
  std::vector<double> gram = gram_of(random_inputs(80, 64, 52), 80, 64);
  const QuantSpec spec{4, 32, true};
  auto message = [&](const std::vector<float>& ww, const std::vector<double>& gg) {
    try {
      gptq_quantize(ww.data(), 4, 64, gg, spec, {}, "layers.1.mlp.down_proj");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  std::vector<float> wn = w;
  wn[70] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_NE(message(wn, gram).find("layers.1.mlp.down_proj': weight at (row 1, col 6)"),
            std::string::npos)
      << message(wn, gram);
  EXPECT_NE(message(w, std::vector<double>(10)).find("[64, 64] Gram matrix"), std::string::npos);
  std::vector<double> gi = gram;
  gi[5] = std::numeric_limits<double>::infinity();
  EXPECT_NE(message(w, gi).find("Gram matrix of the calibration inputs at (0, 5)"),
            std::string::npos);
}

}  // namespace
}  // namespace awq
