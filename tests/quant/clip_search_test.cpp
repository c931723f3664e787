#include "quant/clip_search.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"
#include "base/thread_pool.h"
#include "quant/group_kernels.h"
#include "quant/quantize.h"
#include "quant_reference.h"

namespace awq {
namespace {

using test::random_inputs;
using test::random_weights;
using test::ref_clip_objective;
using test::shrink_factor;

struct Case {
  int64_t out, in, t;
  int group, bits;
  bool zero_point;
  bool asymmetric = false;
};

// The clamp interval of candidate (lo, hi) (shrink indices; lo < 0: symmetric) for group wg,
// computed here from the definition: ±max|w|·f_hi, or [min·f_lo, max·f_hi].
std::pair<float, float> bounds_of(const float* wg, int g, int lo, int hi) {
  float mn = wg[0], mx = wg[0];
  for (int j = 1; j < g; ++j) {
    mn = std::min(mn, wg[j]);
    mx = std::max(mx, wg[j]);
  }
  if (lo < 0) {
    const float m = std::max(mx, -mn) * shrink_factor(hi, 20);
    return {-m, m};
  }
  return {mn * shrink_factor(lo, 20), mx * shrink_factor(hi, 20)};
}

// The chosen clip of every (row, group) is one of the candidates, is optimal on the objective
// (computed directly in double) up to rounding, and is never worse than not clipping.
void check_against_brute_force(const Case& c, uint32_t seed) {
  SCOPED_TRACE(testing::Message() << "out " << c.out << " in " << c.in << " t " << c.t << " group "
                                  << c.group << " bits " << c.bits << " asymmetric "
                                  << c.asymmetric);
  const std::vector<float> w = random_weights(c.out, c.in, seed);
  const std::vector<float> x = random_inputs(c.t, c.in, seed + 1);
  const QuantSpec spec{c.bits, c.group, c.zero_point};
  ClipOptions opts;
  opts.asymmetric = c.asymmetric;
  const ClipChoice ch = search_clip(w.data(), c.out, c.in, x.data(), c.t, spec, opts);
  const int g = spec.group_for(c.in);
  const int64_t ng = c.in / g;
  ASSERT_EQ(ch.hi.size(), size_t(c.out * ng));
  ASSERT_EQ(ch.lo.size(), c.asymmetric ? ch.hi.size() : 0u);
  const int n_lo = c.asymmetric ? 10 : 1;
  int exact_argmin = 0, clipped = 0, lopsided = 0;
  for (int64_t o = 0; o < c.out; ++o) {
    for (int64_t k = 0; k < ng; ++k) {
      const size_t i = size_t(o * ng + k);
      ASSERT_LT(ch.hi[i], 10);
      if (c.asymmetric) {
        ASSERT_LT(ch.lo[i], 10);
      }
      const float* wg = w.data() + o * c.in + k * g;
      std::vector<double> err;
      int chosen = -1, best = 0;
      for (int lo = 0; lo < n_lo; ++lo) {
        for (int hi = 0; hi < 10; ++hi) {
          const auto [a, b] = bounds_of(wg, g, c.asymmetric ? lo : -1, hi);
          err.push_back(
              ref_clip_objective(wg, g, x.data() + k * g, c.t, c.in, a, b, c.bits, c.zero_point));
          if (hi == ch.hi[i] && (!c.asymmetric || lo == ch.lo[i])) chosen = int(err.size()) - 1;
          if (err.back() < err[size_t(best)]) best = int(err.size()) - 1;
        }
      }
      ASSERT_GE(chosen, 0);
      EXPECT_LE(err[size_t(chosen)], err[0] * (1 + 1e-6) + 1e-30);  // never worse than no clip
      EXPECT_LE(err[size_t(chosen)], err[size_t(best)] * (1 + 1e-5) + 1e-30);
      exact_argmin += chosen == best;
      clipped += chosen > 0;
      lopsided += c.asymmetric && ch.lo[i] != ch.hi[i];
    }
  }
  // Near-ties may resolve either way under rounding, but not often.
  EXPECT_GE(exact_argmin, int(c.out * ng * 9 / 10));
  EXPECT_GT(clipped, 0);  // these weights have outliers: clipping must pay somewhere
  if (c.asymmetric) {
    EXPECT_GT(lopsided, 0);  // and the two sides do not always shrink alike
  }
}

TEST(ClipSearch, OptimalOnItsObjectiveGramPath) {
  check_against_brute_force({20, 128, 96, 32, 4, true}, 11);  // group < 2t: factored Gram
  check_against_brute_force({17, 96, 64, 48, 3, true}, 12);   // rows not a multiple of lanes
  check_against_brute_force({16, 64, 40, 16, 4, false}, 13);  // symmetric
  check_against_brute_force({12, 64, 601, 64, 4, true}, 14);  // Gram summed over 3 row chunks
}

TEST(ClipSearch, AsymmetricOptimalOnItsObjective) {
  check_against_brute_force({20, 128, 96, 32, 4, true, true}, 15);  // factored Gram
  check_against_brute_force({17, 96, 64, 48, 3, true, true}, 16);   // ragged rows
  check_against_brute_force({18, 128, 12, 32, 4, true, true}, 17);  // X itself
}

// Asymmetric bounds need a zero point: without one the quantizer's range is symmetric anyway, so
// the search falls back to symmetric candidates (no lower indices).
TEST(ClipSearch, AsymmetricWithoutZeroPointIsSymmetric) {
  const std::vector<float> w = random_weights(8, 64, 18), x = random_inputs(32, 64, 19);
  ClipOptions asym;
  asym.asymmetric = true;
  const QuantSpec spec{4, 32, false};
  const ClipChoice a = search_clip(w.data(), 8, 64, x.data(), 32, spec, asym);
  const ClipChoice s = search_clip(w.data(), 8, 64, x.data(), 32, spec);
  EXPECT_TRUE(a.lo.empty());
  EXPECT_EQ(a.hi, s.hi);
}

// Inputs divided by s: the triangular form's rescaled factor U·diag(1/s) is the Cholesky factor
// of the scaled Gram matrix, so it equals the factor built from x/s up to rounding (the factor
// is unique); the direct form is x/s itself. And the clip search chooses the same values from
// either (near-ties aside).
TEST(ClipSearch, ScaledInputsAreTheInputsOfScaledX) {
  for (const auto& [t, group] : {std::pair<int64_t, int>{600, 64}, {20, 64}}) {
    SCOPED_TRACE(testing::Message() << "t " << t << " group " << group);
    const int64_t out = 24, in = 128;
    const QuantSpec spec{4, group, true};
    const std::vector<float> w = random_weights(out, in, 51);
    std::vector<float> x = random_inputs(t, in, 52), s(static_cast<size_t>(in));
    std::mt19937 rng(53);
    std::uniform_real_distribution<float> u(0.25f, 4.0f);
    for (float& v : s) v = u(rng);
    std::vector<float> xs = x;
    for (int64_t r = 0; r < t; ++r)
      for (int64_t j = 0; j < in; ++j) xs[size_t(r * in + j)] /= s[size_t(j)];
    const ClipInputs direct = prepare_clip_inputs(xs.data(), t, in, spec);
    const ClipInputs rescaled = prepare_clip_inputs(x.data(), t, in, spec).scaled(s);
    ASSERT_EQ(direct.triangular, rescaled.triangular);
    EXPECT_EQ(direct.triangular, t > 2 * group);
    if (direct.triangular) {
      ASSERT_EQ(direct.u.size(), rescaled.u.size());
      for (size_t i = 0; i < direct.u.size(); ++i)
        EXPECT_NEAR(rescaled.u[i], direct.u[i], 1e-4 * std::fabs(direct.u[i]) + 1e-6) << i;
    } else {
      EXPECT_EQ(std::memcmp(rescaled.x, xs.data(), xs.size() * 4), 0);
    }
    std::vector<float> ws = w;  // W·s: the weights that read x/s
    for (int64_t o = 0; o < out; ++o)
      for (int64_t j = 0; j < in; ++j) ws[size_t(o * in + j)] *= s[size_t(j)];
    const std::vector<uint8_t> a = search_clip(ws.data(), out, in, direct, spec).hi;
    const std::vector<uint8_t> b = search_clip(ws.data(), out, in, rescaled, spec).hi;
    size_t differ = 0;
    for (size_t i = 0; i < a.size(); ++i) differ += a[i] != b[i];
    EXPECT_LE(differ, a.size() / 20);
  }
  // Inputs prepared for another width or group size are refused, naming the tensor.
  const std::vector<float> x = random_inputs(8, 64, 54), w = random_weights(2, 64, 55);
  const ClipInputs in32 = prepare_clip_inputs(x.data(), 8, 64, QuantSpec{4, 32, true});
  try {
    search_clip(w.data(), 2, 64, in32, QuantSpec{4, 64, true}, {}, "layers.0.mlp.up_proj");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layers.0.mlp.up_proj"), std::string::npos) << e.what();
  }
}

TEST(ClipSearch, OptimalOnItsObjectiveDirectPath) {
  check_against_brute_force({18, 128, 12, 32, 4, true}, 21);  // group >= 2t: X itself
  check_against_brute_force({9, 160, 30, -1, 4, true}, 22);   // whole-row group
}

TEST(ClipSearch, NoSignalKeepsTheLargestClip) {
  const int64_t out = 8, in = 64, t = 32;
  const std::vector<float> w = random_weights(out, in, 5);
  std::vector<float> x = random_inputs(t, in, 6);
  // Group 0's channels never fire: every candidate has objective 0, a tie, so m0 is kept.
  for (int64_t i = 0; i < t; ++i)
    for (int j = 0; j < 32; ++j) x[size_t(i * in + j)] = 0.0f;
  for (const bool asymmetric : {false, true}) {
    ClipOptions opts;
    opts.asymmetric = asymmetric;
    const ClipChoice c = search_clip(w.data(), out, in, x.data(), t, QuantSpec{4, 32, true}, opts);
    int clipped = 0;
    for (int64_t o = 0; o < out; ++o) {
      EXPECT_EQ(c.hi[size_t(o * 2)], 0) << "row " << o;
      if (asymmetric) {
        EXPECT_EQ(c.lo[size_t(o * 2)], 0) << "row " << o;
      }
      clipped += c.hi[size_t(o * 2 + 1)] > 0 || (asymmetric && c.lo[size_t(o * 2 + 1)] > 0);
    }
    EXPECT_GT(clipped, 0);
    // No tokens at all: likewise.
    const ClipChoice none =
        search_clip(w.data(), out, in, nullptr, 0, QuantSpec{4, 32, true}, opts);
    for (uint8_t i : none.hi) EXPECT_EQ(i, 0);
    for (uint8_t i : none.lo) EXPECT_EQ(i, 0);
  }
}

TEST(ClipSearch, ClippingAnUnusedOutlierPays) {
  // Each row: small weights and one outlier (3.0) on a channel whose input is always 0. Clamping
  // the outlier costs nothing there and refines the grid for everything else, so the search must
  // shrink (the smallest candidate, 0.55 * m0, is best: the step falls by ~40%).
  const int64_t out = 4, in = 128, t = 64;
  std::mt19937 rng(8);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> w(static_cast<size_t>(out * in)), x(static_cast<size_t>(t * in));
  for (float& v : w) v = 0.1f * normal(rng);
  for (float& v : x) v = normal(rng);
  for (int64_t o = 0; o < out; ++o) w[size_t(o * in + 5)] = 3.0f;
  for (int64_t i = 0; i < t; ++i) x[size_t(i * in + 5)] = 0.0f;
  const ClipChoice c = search_clip(w.data(), out, in, x.data(), t, QuantSpec{4, 128, true});
  for (int64_t o = 0; o < out; ++o) {
    const float m = 3.0f * shrink_factor(c.hi[size_t(o)], 20);
    EXPECT_LT(m, 3.0f * 0.9f) << "row " << o;
    const double before =
        ref_clip_objective(w.data() + o * in, 128, x.data(), t, in, 3.0f, 4, true);
    const double after = ref_clip_objective(w.data() + o * in, 128, x.data(), t, in, m, 4, true);
    EXPECT_LT(after, 0.6 * before) << "row " << o;
  }
}

// A group whose only outlier is on one side, on a channel that never fires: symmetric bounds
// clip it at no cost to the other side anyway, but when the other side is an outlier too on a
// channel that does fire, only asymmetric bounds can shrink the first without the second.
TEST(ClipSearch, AsymmetricClipsTheOutlyingSideAlone) {
  const int64_t out = 4, in = 128, t = 64;
  std::mt19937 rng(9);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> w(static_cast<size_t>(out * in)), x(static_cast<size_t>(t * in));
  for (float& v : w) v = 0.1f * normal(rng);
  for (float& v : x) v = normal(rng);
  for (int64_t o = 0; o < out; ++o) {
    w[size_t(o * in + 5)] = 3.0f;   // idle channel: clipping it is free
    w[size_t(o * in + 9)] = -2.9f;  // busy channel: clipping it costs
  }
  for (int64_t i = 0; i < t; ++i) {
    x[size_t(i * in + 5)] = 0.0f;
    x[size_t(i * in + 9)] *= 20.0f;
  }
  const QuantSpec spec{4, 128, true};
  ClipOptions asym;
  asym.asymmetric = true;
  const ClipChoice a = search_clip(w.data(), out, in, x.data(), t, spec, asym);
  const ClipChoice s = search_clip(w.data(), out, in, x.data(), t, spec);
  for (int64_t o = 0; o < out; ++o) {
    EXPECT_GT(a.hi[size_t(o)], 0) << "row " << o;  // the idle +3 side shrinks
    EXPECT_EQ(a.lo[size_t(o)], 0) << "row " << o;  // the busy -2.9 side does not
    const float* wo = w.data() + o * in;
    const auto [alo, ahi] = bounds_of(wo, 128, a.lo[size_t(o)], a.hi[size_t(o)]);
    const auto [slo, shi] = bounds_of(wo, 128, -1, s.hi[size_t(o)]);
    EXPECT_LT(ref_clip_objective(wo, 128, x.data(), t, in, alo, ahi, 4, true),
              0.8 * ref_clip_objective(wo, 128, x.data(), t, in, slo, shi, 4, true))
        << "row " << o;
  }
}

TEST(ClipSearch, IdenticalForAnyThreadCount) {
  const int64_t out = 70, in = 256, t = 100;
  const std::vector<float> w = random_weights(out, in, 31);
  const std::vector<float> x = random_inputs(t, in, 32);
  const int before = num_threads();
  ClipOptions asym;
  asym.asymmetric = true;
  std::vector<ClipChoice> results;
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    results.push_back(search_clip(w.data(), out, in, x.data(), t, QuantSpec{4, 64, true}));
    results.push_back(search_clip(w.data(), out, in, x.data(), 20, QuantSpec{4, 64, true}));
    results.push_back(search_clip(w.data(), out, in, x.data(), t, QuantSpec{4, 64, true}, asym));
  }
  set_num_threads(before);
  for (size_t i = 3; i < results.size(); ++i) {
    EXPECT_EQ(results[i].hi, results[i % 3].hi) << i;
    EXPECT_EQ(results[i].lo, results[i % 3].lo) << i;
  }
}

// The factored objective's Gram matrices are built one group per task when there are many
// groups, and one chunk of tokens per task when there are few (1 thread: 8 groups >= 4 per
// thread; 4 threads: 8 < 16). Both must give the same factors, bit for bit (a chunk missed, read
// twice or misplaced shows; a reordering of the double sums would hide in the f32 factors, which
// is why the code keeps the order anyway). The token count spans two windows of chunk sums (64
// chunks of 256 tokens for groups of 32) and a partial chunk.
TEST(ClipSearch, GramSplitByGroupsOrByTokensIsBitIdentical) {
  const int64_t in = 256, t = 64 * 256 + 300;
  const std::vector<float> x = random_inputs(t, in, 41);
  const QuantSpec spec{4, 32, true};
  const int before = num_threads();
  set_num_threads(1);
  const ClipInputs by_groups = prepare_clip_inputs(x.data(), t, in, spec);
  set_num_threads(4);
  const ClipInputs by_tokens = prepare_clip_inputs(x.data(), t, in, spec);
  set_num_threads(before);
  ASSERT_TRUE(by_groups.triangular);
  ASSERT_EQ(by_groups.u.size(), size_t(8 * 32 * 32));
  ASSERT_EQ(by_tokens.u.size(), by_groups.u.size());
  EXPECT_EQ(std::memcmp(by_tokens.u.data(), by_groups.u.data(), by_groups.u.size() * 4), 0);
}

// The AVX2 and AVX-512 variants fuse the same products in the same order: identical. The
// baseline one rounds products separately, so only near-ties may differ.
TEST(ClipSearch, KernelVariantsAgree) {
  const int64_t out = 40, in = 256, t = 96;
  const std::vector<float> w = random_weights(out, in, 41);
  const std::vector<float> x = random_inputs(t, in, 42);
  for (const bool asymmetric : {false, true}) {
    ClipOptions opts;
    opts.asymmetric = asymmetric;
    std::vector<ClipChoice> results;
    std::vector<std::string> names;
    for (const qk::KernelTable* k : qk::usable_kernels()) {
      qk::override_kernels(k);
      results.push_back(search_clip(w.data(), out, in, x.data(), t, QuantSpec{4, 64, true}, opts));
      names.push_back(k->name);
    }
    qk::override_kernels(nullptr);
    for (size_t i = 1; i < results.size(); ++i) {
      size_t differ = 0;
      for (size_t j = 0; j < results[0].hi.size(); ++j)
        differ += results[i].hi[j] != results[0].hi[j] ||
                  (asymmetric && results[i].lo[j] != results[0].lo[j]);
      EXPECT_LE(differ, results[0].hi.size() / 50) << names[i] << " vs " << names[0];
      if (names[i] == "avx512" && names[i - 1] == "avx2") {
        EXPECT_EQ(results[i].hi, results[i - 1].hi);
        EXPECT_EQ(results[i].lo, results[i - 1].lo);
      }
    }
  }
}

TEST(ClipSearch, ApplyClipClampsEachGroup) {
  // Groups of 2, grid 4 (f = 1, 0.75, 0.5, 0.25). Symmetric: ±max|w|·f_hi.
  std::vector<float> w = {-4, 1, 2, -0.5f, 4, -4, 0.1f, 8};
  apply_clip(w.data(), 2, 4, ClipChoice{{2, 0, 1, 3}, {}}, 2, 4);
  EXPECT_EQ(w, (std::vector<float>{-2, 1, 2, -0.5f, 3, -3, 0.1f, 2}));
  // Asymmetric: [min·f_lo, max·f_hi] per group (whole rows here).
  w = {-4, 1, 2, -0.5f, 4, -4, 0.1f, 8};
  apply_clip(w.data(), 2, 4, ClipChoice{{3, 0}, {2, 1}}, -1, 4);
  EXPECT_EQ(w, (std::vector<float>{-2, 0.5f, 0.5f, -0.5f, 4, -3, 0.1f, 8}));
  EXPECT_THROW(apply_clip(w.data(), 2, 4, ClipChoice{{1}, {}}, 2, 4), Error);       // too few
  EXPECT_THROW(apply_clip(w.data(), 2, 4, ClipChoice{{1, 4}, {}}, -1, 4), Error);   // off grid
  EXPECT_THROW(apply_clip(w.data(), 2, 4, ClipChoice{{1, 1}, {0}}, -1, 4), Error);  // lo size
}

// After apply_clip, quantizing uses the clamped range: what the search evaluated.
TEST(ClipSearch, SearchThenApplyThenQuantizeUsesTheSearchedQuantizer) {
  const int64_t out = 8, in = 64, t = 48;
  const std::vector<float> orig = random_weights(out, in, 51);
  const std::vector<float> x = random_inputs(t, in, 52);
  const QuantSpec spec{4, 32, true};
  for (const bool asymmetric : {false, true}) {
    ClipOptions opts;
    opts.asymmetric = asymmetric;
    const ClipChoice c = search_clip(orig.data(), out, in, x.data(), t, spec, opts);
    std::vector<float> w = orig;
    apply_clip(w.data(), out, in, c, 32, opts.n_grid);
    std::vector<float> fq = w;
    fake_quantize(fq.data(), out, in, spec);
    for (int64_t o = 0; o < out; ++o) {
      for (int k = 0; k < 2; ++k) {
        double err = 0;
        for (int64_t i = 0; i < t; ++i) {
          double dot = 0;
          for (int j = 0; j < 32; ++j) {
            const size_t wi = size_t(o * in + k * 32 + j);
            dot += double(x[size_t(i * in + k * 32 + j)]) * (double(fq[wi]) - double(orig[wi]));
          }
          err += dot * dot;
        }
        const size_t i = size_t(o * 2 + k);
        const float* wg = orig.data() + o * in + k * 32;
        const auto [lo, hi] = bounds_of(wg, 32, asymmetric ? c.lo[i] : -1, c.hi[i]);
        const double ref = ref_clip_objective(wg, 32, x.data() + k * 32, t, in, lo, hi, 4, true);
        EXPECT_NEAR(err, ref, 1e-9 * ref + 1e-30);
      }
    }
  }
}

TEST(ClipSearch, ErrorsNameTheTensor) {
  std::vector<float> w(96, 0.1f), x(96 * 4, 1.0f);
  try {
    search_clip(w.data(), 1, 96, x.data(), 4, QuantSpec{4, 64, true}, {}, "layers.2.mlp.gate_proj");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layers.2.mlp.gate_proj"), std::string::npos) << e.what();
  }
  x[5] = std::numeric_limits<float>::quiet_NaN();
  try {
    search_clip(w.data(), 1, 96, x.data(), 4, QuantSpec{4, 32, true}, {}, "v_proj");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("token 0, channel 5"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace awq
