#include "quant/clip_search.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
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
};

// The chosen clip of every (row, group) is one of the candidates, is optimal on the objective
// (computed directly in double) up to rounding, and is never worse than not clipping.
void check_against_brute_force(const Case& c, uint32_t seed) {
  SCOPED_TRACE(testing::Message() << "out " << c.out << " in " << c.in << " t " << c.t << " group "
                                  << c.group << " bits " << c.bits);
  const std::vector<float> w = random_weights(c.out, c.in, seed);
  const std::vector<float> x = random_inputs(c.t, c.in, seed + 1);
  const QuantSpec spec{c.bits, c.group, c.zero_point};
  const std::vector<float> mv = search_clip(w.data(), c.out, c.in, x.data(), c.t, spec);
  const int g = spec.group_for(c.in);
  const int64_t ng = c.in / g;
  ASSERT_EQ(mv.size(), size_t(c.out * ng));
  int exact_argmin = 0, clipped = 0;
  for (int64_t o = 0; o < c.out; ++o) {
    for (int64_t k = 0; k < ng; ++k) {
      const float* wg = w.data() + o * c.in + k * g;
      float m0 = 0;
      for (int j = 0; j < g; ++j) m0 = std::max(m0, std::fabs(wg[j]));
      std::vector<double> err;
      int chosen = -1, best = 0;
      for (int i = 0; i < 10; ++i) {
        const float m = m0 * shrink_factor(i, 20);
        err.push_back(
            ref_clip_objective(wg, g, x.data() + k * g, c.t, c.in, m, c.bits, c.zero_point));
        if (m == mv[size_t(o * ng + k)] && chosen < 0) chosen = i;
        if (err.back() < err[size_t(best)]) best = i;
      }
      ASSERT_GE(chosen, 0) << "max_val " << mv[size_t(o * ng + k)] << " is not a candidate";
      EXPECT_LE(err[size_t(chosen)], err[0] * (1 + 1e-6) + 1e-30);  // never worse than no clip
      EXPECT_LE(err[size_t(chosen)], err[size_t(best)] * (1 + 1e-5) + 1e-30);
      exact_argmin += chosen == best;
      clipped += chosen > 0;
    }
  }
  // Near-ties may resolve either way under rounding, but not often.
  EXPECT_GE(exact_argmin, int(c.out * ng * 9 / 10));
  EXPECT_GT(clipped, 0);  // these weights have outliers: clipping must pay somewhere
}

TEST(ClipSearch, OptimalOnItsObjectiveGramPath) {
  check_against_brute_force({20, 128, 96, 32, 4, true}, 11);  // group < 2t: factored Gram
  check_against_brute_force({17, 96, 64, 48, 3, true}, 12);   // rows not a multiple of lanes
  check_against_brute_force({16, 64, 40, 16, 4, false}, 13);  // symmetric
  check_against_brute_force({12, 64, 601, 64, 4, true}, 14);  // Gram summed over 3 row chunks
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
    const std::vector<float> a = search_clip(ws.data(), out, in, direct, spec);
    const std::vector<float> b = search_clip(ws.data(), out, in, rescaled, spec);
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
  const std::vector<float> mv = search_clip(w.data(), out, in, x.data(), t, QuantSpec{4, 32, true});
  int clipped = 0;
  for (int64_t o = 0; o < out; ++o) {
    float m0 = 0;
    for (int j = 0; j < 32; ++j) m0 = std::max(m0, std::fabs(w[size_t(o * in + j)]));
    EXPECT_EQ(mv[size_t(o * 2)], m0) << "row " << o;
    clipped += mv[size_t(o * 2 + 1)] < m0;
  }
  EXPECT_GT(clipped, 0);
  // No tokens at all: likewise.
  const std::vector<float> none =
      search_clip(w.data(), out, in, nullptr, 0, QuantSpec{4, 32, true});
  for (int64_t o = 0; o < out; ++o) {
    for (int k = 0; k < 2; ++k) {
      float m0 = 0;
      for (int j = 0; j < 32; ++j) m0 = std::max(m0, std::fabs(w[size_t(o * in + k * 32 + j)]));
      EXPECT_EQ(none[size_t(o * 2 + k)], m0);
    }
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
  const std::vector<float> mv =
      search_clip(w.data(), out, in, x.data(), t, QuantSpec{4, 128, true});
  for (int64_t o = 0; o < out; ++o) {
    EXPECT_LT(mv[size_t(o)], 3.0f * 0.9f) << "row " << o;
    const double before =
        ref_clip_objective(w.data() + o * in, 128, x.data(), t, in, 3.0f, 4, true);
    const double after =
        ref_clip_objective(w.data() + o * in, 128, x.data(), t, in, mv[size_t(o)], 4, true);
    EXPECT_LT(after, 0.6 * before) << "row " << o;
  }
}

TEST(ClipSearch, IdenticalForAnyThreadCount) {
  const int64_t out = 70, in = 256, t = 100;
  const std::vector<float> w = random_weights(out, in, 31);
  const std::vector<float> x = random_inputs(t, in, 32);
  const int before = num_threads();
  std::vector<std::vector<float>> results;
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    results.push_back(search_clip(w.data(), out, in, x.data(), t, QuantSpec{4, 64, true}));
    results.push_back(search_clip(w.data(), out, in, x.data(), 20, QuantSpec{4, 64, true}));
  }
  set_num_threads(before);
  for (size_t i = 2; i < results.size(); ++i)
    EXPECT_EQ(std::memcmp(results[i].data(), results[i % 2].data(), results[i].size() * 4), 0);
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
  std::vector<std::vector<float>> results;
  std::vector<std::string> names;
  for (const qk::KernelTable* k : qk::usable_kernels()) {
    qk::override_kernels(k);
    results.push_back(search_clip(w.data(), out, in, x.data(), t, QuantSpec{4, 64, true}));
    names.push_back(k->name);
  }
  qk::override_kernels(nullptr);
  for (size_t i = 1; i < results.size(); ++i) {
    size_t differ = 0;
    for (size_t j = 0; j < results[0].size(); ++j) differ += results[i][j] != results[0][j];
    EXPECT_LE(differ, results[0].size() / 50) << names[i] << " vs " << names[0];
    if (names[i] == "avx512" && names[i - 1] == "avx2") {
      EXPECT_EQ(results[i], results[i - 1]);
    }
  }
}

TEST(ClipSearch, ApplyClipClampsEachGroup) {
  std::vector<float> w = {-3, 1, 2, -0.5f, 4, -4, 0.1f, 9};
  apply_clip(w.data(), 2, 4, {1.5f, 0.25f, 10.0f, 0.05f}, 2);
  EXPECT_EQ(w, (std::vector<float>{-1.5f, 1, 0.25f, -0.25f, 4, -4, 0.05f, 0.05f}));
  apply_clip(w.data(), 2, 4, {1.0f, 0.0f}, -1);
  EXPECT_EQ(w, (std::vector<float>{-1, 1, 0.25f, -0.25f, 0, 0, 0, 0}));
  EXPECT_THROW(apply_clip(w.data(), 2, 4, {1.0f}, 2), Error);
}

// After apply_clip, quantizing uses the clamped range: what the search evaluated.
TEST(ClipSearch, SearchThenApplyThenQuantizeUsesTheSearchedQuantizer) {
  const int64_t out = 8, in = 64, t = 48;
  std::vector<float> w = random_weights(out, in, 51);
  const std::vector<float> x = random_inputs(t, in, 52);
  const QuantSpec spec{4, 32, true};
  const std::vector<float> mv = search_clip(w.data(), out, in, x.data(), t, spec);
  const std::vector<float> orig = w;
  apply_clip(w.data(), out, in, mv, 32);
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
      const double ref = ref_clip_objective(orig.data() + o * in + k * 32, 32, x.data() + k * 32, t,
                                            in, mv[size_t(o * 2 + k)], 4, true);
      EXPECT_NEAR(err, ref, 1e-9 * ref + 1e-30);
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
