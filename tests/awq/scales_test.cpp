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
