#include "awq/gram_loss.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "awq/block_search.h"
#include "awq/fold.h"
#include "awq/scales.h"
#include "formats/checkpoint.h"
#include "model/block.h"
#include "quant/quantize.h"
#include "test_util.h"
#include "tiny_model.h"

namespace awq {
namespace {

Mat random_mat(int64_t rows, int64_t cols, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  Mat m(rows, cols);
  for (float& v : m.data) v = nd(rng);
  return m;
}

// mean over rows of x and rows of d of (x_t · d_o)^2, in double.
double direct_loss(const Mat& x, const Mat& d) {
  double sum = 0;
  for (int64_t t = 0; t < x.rows; ++t)
    for (int64_t o = 0; o < d.rows; ++o) {
      double dot = 0;
      for (int64_t j = 0; j < x.cols; ++j) dot += double(x.at(t, j)) * double(d.at(o, j));
      sum += dot * dot;
    }
  return sum / (double(x.rows) * double(d.rows));
}

// Token counts across the 2048-token chunks (and ragged), widths off the 16/32 tiles; a few
// channels 20x larger, as activations have.
TEST(GramLoss, MatchesTheForwardsLoss) {
  for (auto [tokens, in, out] : {std::tuple{100, 24, 5}, {3000, 72, 40}, {4100, 130, 33}}) {
    Mat x = random_mat(tokens, in, 1 + uint32_t(in));
    for (int64_t t = 0; t < tokens; ++t) x.at(t, 3) *= 20.0f;
    const Mat d = random_mat(out, in, 2 + uint32_t(in), 0.01f);
    const InputGram g = input_gram(x);
    ASSERT_EQ(g.in, in);
    ASSERT_EQ(g.tokens, tokens);
    // G itself against X^T X in double (relative to the largest entry: f32 chunk products).
    double gmax = 0, gerr = 0;
    for (int64_t a = 0; a < in; ++a)
      for (int64_t b = 0; b < in; ++b) {
        double e = 0;
        for (int64_t t = 0; t < tokens; ++t) e += double(x.at(t, a)) * double(x.at(t, b));
        gmax = std::max(gmax, std::fabs(e));
        gerr = std::max(gerr, std::fabs(e - double(g.g[size_t(a * in + b)])));
      }
    EXPECT_LE(gerr, 1e-5 * gmax) << tokens << "x" << in;
    const double want = direct_loss(x, d);
    EXPECT_NEAR(gram_loss(g, d), want, 1e-5 * want) << tokens << "x" << in;
  }
}

TEST(GramLoss, CostsFavourItOnlyWhenInputsAreNarrowerThanTheTokens) {
  // stories260K's down_proj: 48,128 tokens, [64 x 192], 41 candidates against ~11 forwards.
  EXPECT_LT(gram_search_cost(48128, 192, 64, 41), direct_search_cost(48128, 192, 64, 11.1));
  // TinyLlama's down_proj on 16,384 tokens: [2048 x 5632] is cheaper through the forwards.
  EXPECT_GT(gram_search_cost(16384, 5632, 2048, 41), direct_search_cost(16384, 5632, 2048, 11.1));
}

// With enough tokens the up -> down group is scored through the Gram matrix, every candidate on
// all the data: its losses are the forwards' losses, and its choice is their argmin.
TEST(GramLoss, ScaleSearchChoosesAsTheForwardsWould) {
  const std::string dir = (test::scratch_dir("gram_search") / "model").string();
  test::write_tiny_model(dir, {});
  const Checkpoint ck = Checkpoint::open(dir);
  const ModelConfig cfg = ModelConfig::load(dir);
  const Architecture& arch = *find_architecture(cfg.model_type);
  const int64_t n_seq = 8, T = 64;
  Mat x = random_mat(n_seq * T, cfg.hidden_size, 5);
  const BlockWeights w = load_block_f32(ck, cfg, arch, 0);
  Mat y;
  BlockCapture cap;
  block_forward(cfg, w, x, n_seq, T, y, &cap);
  ScaleSearchOptions opt;
  opt.spec = QuantSpec{3, 16, true};
  opt.screen_seqs = 2;  // the forwards would screen; the Gram path scores everything
  const auto groups = search_block_scales(cfg, arch, 0, w, cap, n_seq, T, opt);
  const GroupResult* down = nullptr;
  for (const auto& g : groups)
    if (g.applied && g.layers == std::vector<LinearRole>{LinearRole::Down}) down = &g;
  ASSERT_NE(down, nullptr);
  const Linear& lin = w[LinearRole::Down];
  ASSERT_LT(gram_search_cost(x.rows, lin.in, lin.out, 41),
            direct_search_cost(x.rows, lin.in, lin.out, 5 + 41.0 * 2 / 8));
  const Mat& xin = cap.down_in;
  auto forward_loss = [&](const std::vector<float>& s) {
    Linear q = lin;
    scale_columns(q.w, s);
    fake_quantize(q.w.data.data(), q.out, q.in, opt.spec);
    divide_columns(q.w, s);
    Mat a, b;
    lin.forward(xin, a);
    q.forward(xin, b);
    return mean_squared_error(a.data.data(), b.data.data(), a.size());
  };
  const Mat* wm[] = {&lin.w};
  const auto x_mean = mean_abs_columns(xin);
  const auto w_mean = weight_mean_normalized(wm, opt.spec.group_size);
  double best = INFINITY;
  for (const auto& c : scale_grid(opt.mode)) {
    const double l = forward_loss(candidate_scales(x_mean, w_mean, c));
    best = std::min(best, l);
    if (c.identity) {
      EXPECT_NEAR(down->rtn_loss, l, 1e-5 * l);
    }
  }
  EXPECT_NEAR(forward_loss(down->scales), down->loss, 1e-5 * down->loss);
  EXPECT_LE(forward_loss(down->scales), best * (1 + 1e-5));
  EXPECT_LT(down->loss, down->rtn_loss);
}

}  // namespace
}  // namespace awq
