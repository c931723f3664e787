#include <gtest/gtest.h>

#include <cmath>

#include "awq/scales.h"
#include "base/error.h"

namespace awq {
namespace {

TEST(Scales, GridOrderAndIdentity) {
  const auto x = scale_grid(ScaleMode::X);
  ASSERT_EQ(x.size(), 20u);
  EXPECT_TRUE(x[0].identity);
  EXPECT_FLOAT_EQ(x[19].alpha, 0.95f);
  const auto d = scale_grid(ScaleMode::Duo);
  ASSERT_EQ(d.size(), 21u);
  EXPECT_TRUE(d[0].identity);
  EXPECT_TRUE(d[1].duo);
  EXPECT_FLOAT_EQ(d[1].alpha, 0.0f);
  const auto b = scale_grid(ScaleMode::Both);
  ASSERT_EQ(b.size(), 40u);
  int ids = 0;
  for (const auto& c : b) ids += c.identity;
  EXPECT_EQ(ids, 1);
}

TEST(Scales, XOnlyFormulaAndNormalization) {
  const std::vector<float> xm{4.0f, 1.0f, 0.25f};
  const auto s = candidate_scales(xm, {}, {false, false, 0.5f});
  // x^0.5 = 2, 1, 0.5; sqrt(max*min) = 1
  EXPECT_FLOAT_EQ(s[0], 2.0f);
  EXPECT_FLOAT_EQ(s[1], 1.0f);
  EXPECT_FLOAT_EQ(s[2], 0.5f);
  const auto s2 = candidate_scales(std::vector<float>{9.0f, 1.0f}, {}, {false, false, 1.0f});
  EXPECT_FLOAT_EQ(s2[0], 3.0f);  // 9 / sqrt(9)
  EXPECT_FLOAT_EQ(s2[1], 1.0f / 3.0f);
}

TEST(Scales, DuoFormulaWithGuards) {
  const std::vector<float> xm{2.0f, 0.5f}, wm{0.5f, 0.25f};
  const float a = 0.3f;
  const auto s = candidate_scales(xm, wm, {false, true, a});
  float r0 = std::pow(2.0f, a) / (std::pow(0.5f, 1 - a) + 1e-4f);
  float r1 = std::pow(0.5f, a) / (std::pow(0.25f, 1 - a) + 1e-4f);
  const float n = std::sqrt(std::max(r0, r1) * std::min(r0, r1));
  EXPECT_NEAR(s[0], r0 / n, 1e-6);
  EXPECT_NEAR(s[1], r1 / n, 1e-6);
}

TEST(Scales, ZeroChannelsGiveNoNan) {
  // Zero-padded channels: x̄ = 0 and w̄ = 0 (the +1e-4 guard and the 1e-4 clamp matter).
  const std::vector<float> xm{1.0f, 0.0f, 2.0f}, wm{0.3f, 0.0f, 0.5f};
  for (const auto& c : scale_grid(ScaleMode::Both)) {
    const auto s = candidate_scales(xm, wm, c);
    for (float v : s) {
      EXPECT_TRUE(std::isfinite(v)) << c.label();
      EXPECT_GT(v, 0.0f) << c.label();
    }
  }
}

TEST(Scales, NanInputsBecomeIdentity) {
  const std::vector<float> xm{1.0f, std::nanf(""), 2.0f};
  const auto s = candidate_scales(xm, {}, {false, false, 0.5f});
  for (float v : s) EXPECT_EQ(v, 1.0f);
}

TEST(Scales, MeanAbsColumns) {
  Mat x(3, 2);
  x.data = {1, -2, -3, 4, 5, 0};
  const auto m = mean_abs_columns(x);
  EXPECT_FLOAT_EQ(m[0], 3.0f);
  EXPECT_FLOAT_EQ(m[1], 2.0f);
}

TEST(Scales, WeightMeanNormalizedPerGroup) {
  Mat a(1, 4), b(1, 4);
  a.data = {1, -2, 4, 0};
  b.data = {0, 0, -1, 1};
  const Mat* ws[] = {&a, &b};
  const auto m = weight_mean_normalized(ws, 2);
  // groups of 2: a: [1,-2]/2 -> .5,1 ; [4,0]/4 -> 1,0 ; b: [0,0] -> 0,0 ; [-1,1] -> 1,1
  EXPECT_NEAR(m[0], 0.25, 1e-6);
  EXPECT_NEAR(m[1], 0.5, 1e-6);
  EXPECT_NEAR(m[2], 1.0, 1e-6);
  EXPECT_NEAR(m[3], 0.5, 1e-6);
  const auto row = weight_mean_normalized(ws, -1);  // whole row: a / 4, b / 1
  EXPECT_NEAR(row[1], (0.5 + 0.0) / 2, 1e-6);
  EXPECT_THROW(weight_mean_normalized(ws, 3), Error);
}

TEST(Scales, SearchKeepsFirstStrictMinimumAndNeverWorseThanIdentity) {
  const std::vector<float> xm{1.0f, 3.0f, 0.5f}, wm{0.5f, 0.5f, 0.5f};
  // Loss: distance of s to a target; identity loss is known.
  const std::vector<float> target = candidate_scales(xm, wm, {false, true, 0.4f});
  auto loss = [&](const std::vector<float>& s) {
    double d = 0;
    for (size_t i = 0; i < s.size(); ++i) d += (s[i] - target[i]) * (s[i] - target[i]);
    return d;
  };
  for (bool par : {false, true}) {
    const auto r = search_scales(xm, wm, ScaleMode::Both, loss, par, "t");
    EXPECT_TRUE(r.best.duo);
    EXPECT_FLOAT_EQ(r.best.alpha, 0.4f);
    EXPECT_LE(r.loss, r.identity_loss);
    EXPECT_EQ(r.losses.size(), 40u);
  }
  // A loss where every non-identity candidate is worse: the identity wins.
  auto id_best = [&](const std::vector<float>& s) {
    double d = 0;
    for (float v : s) d += (v - 1.0f) * (v - 1.0f);
    return d;
  };
  const auto r = search_scales(xm, wm, ScaleMode::Duo, id_best, false, "t");
  EXPECT_TRUE(r.best.identity);
  for (float v : r.scales) EXPECT_EQ(v, 1.0f);
  // No finite loss at all: a clear error.
  EXPECT_THROW(search_scales(
                   xm, wm, ScaleMode::X, [](const std::vector<float>&) { return NAN; }, false, "t"),
               Error);
}

// Screening: the finalists are the best few on the screening loss plus the identity, the winner is
// the best finalist on the full loss, and every other candidate is never scored on the full loss.
TEST(Scales, ScreenedSearchScoresOnlyFinalistsOnTheFullLoss) {
  const std::vector<float> xm{1.0f, 3.0f, 0.5f, 2.0f}, wm{0.5f, 0.25f, 0.5f, 1.0f};
  const std::vector<ScaleCandidate> grid = scale_grid(ScaleMode::Both);
  auto dist = [&](const std::vector<float>& s, const std::vector<float>& t) {
    double d = 0;
    for (size_t i = 0; i < s.size(); ++i) d += (s[i] - t[i]) * (s[i] - t[i]);
    return d;
  };
  // The screening loss prefers x a=0.30; the full loss prefers duo a=0.60, which the screening
  // ranks far down: with 3 finalists it is never seen, so x a=0.30's neighbourhood wins.
  const auto screen_t = candidate_scales(xm, wm, {false, false, 0.30f});
  const auto full_t = candidate_scales(xm, wm, {false, true, 0.60f});
  int full_calls = 0;
  const ScaleLoss screen = [&](const std::vector<float>& s) { return dist(s, screen_t); };
  const ScaleLoss full = [&](const std::vector<float>& s) {
    ++full_calls;
    return dist(s, full_t);
  };
  const auto r = search_scales_screened(xm, wm, ScaleMode::Both, full, &screen, 3, false, "t");
  EXPECT_EQ(full_calls, 4);  // 3 finalists + the identity
  EXPECT_EQ(r.n_full, 4);
  ASSERT_EQ(r.screen_losses.size(), grid.size());
  int finite = 0;
  for (size_t i = 0; i < grid.size(); ++i) {
    EXPECT_TRUE(std::isfinite(r.screen_losses[i]));
    if (std::isfinite(r.losses[i])) {
      ++finite;
      // A finalist: the identity or among the three best screening losses.
      int better = 0;
      for (size_t k = 0; k < grid.size(); ++k)
        better += !grid[k].identity && r.screen_losses[k] < r.screen_losses[i];
      EXPECT_TRUE(grid[i].identity || better < 3) << grid[i].label();
    }
  }
  EXPECT_EQ(finite, 4);
  EXPECT_FALSE(r.best.duo && r.best.alpha == 0.60f);  // screened out
  EXPECT_LE(r.loss, r.identity_loss);
  // With the finalists covering the grid (or no screening loss) it is the exhaustive search.
  const auto all = search_scales(xm, wm, ScaleMode::Both, full, false, "t");
  EXPECT_TRUE(all.best.duo);
  EXPECT_FLOAT_EQ(all.best.alpha, 0.60f);
  const auto wide =
      search_scales_screened(xm, wm, ScaleMode::Both, full, &screen, int(grid.size()), true, "t");
  EXPECT_TRUE(wide.screen_losses.empty());
  EXPECT_EQ(wide.best.label(), all.best.label());
  EXPECT_EQ(wide.loss, all.loss);
  // A screening loss that is NaN everywhere still leaves the identity as a finalist.
  const ScaleLoss nan_screen = [](const std::vector<float>&) { return double(NAN); };
  const auto r2 = search_scales_screened(xm, wm, ScaleMode::Both, full, &nan_screen, 2, true, "t");
  EXPECT_TRUE(std::isfinite(r2.identity_loss));
  EXPECT_LE(r2.loss, r2.identity_loss);
}

// Halved finalists: all finalists on the first part, the `keep` best of them by that part and the
// identity on the second, the winner compared on the weighted mean of the parts. Here the first
// part ranks duo a=0.60 (the second part's favourite) third among the four finalists (x a=0.30,
// 0.25, then it at 5.5e-3, x a=0.35 at 5.6e-3): with keep 2 it is dropped, with keep 3 it wins.
TEST(Scales, HalvedFinalistsKeepTheBestOfTheFirstPart) {
  const std::vector<float> xm{1.0f, 3.0f, 0.5f, 2.0f}, wm{0.5f, 0.25f, 0.5f, 1.0f};
  const std::vector<ScaleCandidate> grid = scale_grid(ScaleMode::Both);
  auto dist = [&](const std::vector<float>& s, const ScaleCandidate& c) {
    const auto t = candidate_scales(xm, wm, c);
    double d = 0;
    for (size_t i = 0; i < s.size(); ++i) d += (s[i] - t[i]) * (s[i] - t[i]);
    return d;
  };
  const ScaleCandidate screen_fav{false, false, 0.30f}, full_fav{false, true, 0.60f};
  // Screening: near x a=0.30, with duo a=0.60 pulled into the top four.
  const ScaleLoss screen = [&](const std::vector<float>& s) {
    return std::min(dist(s, screen_fav), 1e-3 + dist(s, full_fav));
  };
  int first_calls = 0, second_calls = 0;
  SplitLoss split;
  split.first = [&](const std::vector<float>& s) {  // still prefers the screening's region
    ++first_calls;
    return std::min(dist(s, screen_fav), 5.5e-3 + dist(s, full_fav));
  };
  split.second = [&](const std::vector<float>& s) {  // strongly prefers duo a=0.60
    ++second_calls;
    return dist(s, full_fav) - 1.0;
  };
  split.first_weight = 0.25;
  const ScaleLoss full = [](const std::vector<float>&) -> double {
    ADD_FAILURE() << "the split replaces the full loss";
    return 0;
  };
  split.keep = 2;
  const auto r2 =
      search_scales_screened(xm, wm, ScaleMode::Both, full, &screen, 4, false, "t", 20, &split);
  EXPECT_EQ(first_calls, 5);   // 4 finalists + the identity
  EXPECT_EQ(second_calls, 3);  // the 2 kept + the identity
  EXPECT_EQ(r2.n_full, 3);
  EXPECT_DOUBLE_EQ(r2.full_evals, 5 * 0.25 + 3 * 0.75);
  EXPECT_FALSE(r2.best.duo && r2.best.alpha == 0.60f);
  int scored = 0;
  for (size_t i = 0; i < grid.size(); ++i) scored += std::isfinite(r2.losses[i]);
  EXPECT_EQ(scored, 3);
  // The reported losses are the weighted means of the parts, the identity's included.
  const auto ones = std::vector<float>(4, 1.0f);
  EXPECT_DOUBLE_EQ(r2.identity_loss,
                   0.25 * std::min(dist(ones, screen_fav), 5.5e-3 + dist(ones, full_fav)) +
                       0.75 * (dist(ones, full_fav) - 1.0));
  first_calls = second_calls = 0;
  split.keep = 3;
  const auto r3 =
      search_scales_screened(xm, wm, ScaleMode::Both, full, &screen, 4, false, "t", 20, &split);
  EXPECT_EQ(second_calls, 4);
  EXPECT_TRUE(r3.best.duo);
  EXPECT_FLOAT_EQ(r3.best.alpha, 0.60f);
  EXPECT_LE(r3.loss, r3.identity_loss);
}

TEST(Scales, MeanSquaredError) {
  std::vector<float> a(100000), b(100000);
  for (size_t i = 0; i < a.size(); ++i) {
    a[i] = float(i % 7);
    b[i] = a[i] + ((i % 2) ? 1.0f : -2.0f);
  }
  EXPECT_NEAR(mean_squared_error(a.data(), b.data(), int64_t(a.size())), 2.5, 1e-12);
}

}  // namespace
}  // namespace awq
