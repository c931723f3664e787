#include <gtest/gtest.h>

#include <cmath>

#include "awq/block_search.h"
#include "awq/fold.h"
#include "base/thread_pool.h"
#include "formats/checkpoint.h"
#include "model/block.h"
#include "quant/quantize.h"
#include "test_util.h"
#include "tiny_model.h"

namespace awq {
namespace {

struct Tiny {
  Checkpoint ck;
  ModelConfig cfg;
  const Architecture* arch;
};

Tiny open_tiny(const std::string& name, test::TinyModelOptions o = {}) {
  const std::string dir = (test::scratch_dir(name) / "model").string();
  test::write_tiny_model(dir, o);
  Tiny t{Checkpoint::open(dir), ModelConfig::load(dir), nullptr};
  t.arch = find_architecture(t.cfg.model_type);
  return t;
}

Mat random_input(int64_t rows, int64_t cols, uint64_t seed) {
  Mat x(rows, cols);
  uint64_t s = seed;
  for (auto& v : x.data) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    v = float(int64_t(s >> 40) % 2001 - 1000) / 500.0f;
  }
  return x;
}

// Block 0 of a tiny model and its capture of n_seq random sequences of T tokens: what the scale
// search reads.
struct CapturedBlock {
  Tiny t;
  BlockWeights w;
  BlockCapture cap;
};

CapturedBlock capture_block(const std::string& name, int64_t n_seq, int64_t T, uint64_t seed) {
  CapturedBlock b{open_tiny(name), {}, {}};
  const Mat x = random_input(n_seq * T, b.t.cfg.hidden_size, seed);
  b.w = load_block_f32(b.t.ck, b.t.cfg, *b.t.arch, 0);
  Mat y;
  block_forward(b.t.cfg, b.w, x, n_seq, T, y, &b.cap);
  return b;
}

double max_abs(const Mat& m) {
  double r = 0;
  for (float v : m.data) r = std::max(r, double(std::fabs(v)));
  return r;
}

double max_abs_diff(const Mat& a, const Mat& b) {
  EXPECT_EQ(a.size(), b.size());
  double r = 0;
  for (int64_t i = 0; i < a.size(); ++i)
    r = std::max(r, double(std::fabs(a.data[size_t(i)] - b.data[size_t(i)])));
  return r;
}

std::vector<float> random_scales(int64_t n, uint64_t seed) {
  std::vector<float> s(static_cast<size_t>(n));
  uint64_t st = seed;
  for (auto& v : s) {
    st = st * 6364136223846793005ull + 1442695040888963407ull;
    v = 0.3f + 2.7f * float(st >> 40) / float(1 << 24);
  }
  return s;
}

class FoldTest : public ::testing::TestWithParam<int> {};

// Folding arbitrary scales into norm → q,k,v, v → o, norm → gate,up and up → down leaves the
// full-precision block output unchanged, and the captured inputs become the old ones divided by s.
TEST_P(FoldTest, ScalesPreserveBlockOutputAndCaptures) {
  test::TinyModelOptions o;
  o.kv_heads = GetParam();
  Tiny t = open_tiny("fold" + std::to_string(o.kv_heads), o);
  const int64_t n_seq = 2, T = 12;
  const Mat x = random_input(n_seq * T, t.cfg.hidden_size, 7);
  BlockWeights w = load_block_f32(t.ck, t.cfg, *t.arch, 0);
  Mat ref;
  BlockCapture cap;
  block_forward(t.cfg, w, x, n_seq, T, ref, &cap);
  std::vector<GroupResult> groups;
  int applied = 0;
  for (const auto& g : t.arch->scaling_groups) {
    GroupResult r;
    r.name = g.name;
    r.layers = g.layers;
    r.applied = group_applies(g, w);
    if (r.applied) r.scales = random_scales(w[g.layers[0]].in, 11 + groups.size());
    applied += r.applied;
    groups.push_back(r);
  }
  EXPECT_EQ(applied, o.kv_heads == o.heads ? 4 : 3);  // v→o only without GQA
  apply_block_scales(*t.arch, 0, w, &cap, groups);
  Mat out;
  BlockCapture cap2;
  block_forward(t.cfg, w, x, n_seq, T, out, &cap2);
  EXPECT_LE(max_abs_diff(out, ref), 1e-5 * max_abs(ref));
  for (LinearRole r : {LinearRole::Q, LinearRole::O, LinearRole::Gate, LinearRole::Down}) {
    const Mat& a = capture_input(cap, r);
    const Mat& b = capture_input(cap2, r);
    EXPECT_LE(max_abs_diff(a, b), 1e-5 * max_abs(b)) << linear_role_name(r);
  }
  // The fold really changed the weights (the test would be vacuous otherwise).
  const BlockWeights w0 = load_block_f32(t.ck, t.cfg, *t.arch, 0);
  EXPECT_GT(max_abs_diff(w0[LinearRole::Q].w, w[LinearRole::Q].w), 1e-3);
  EXPECT_GT(max_abs_diff(w0[LinearRole::Up].w, w[LinearRole::Up].w), 1e-3);
}

INSTANTIATE_TEST_SUITE_P(KvHeads, FoldTest, ::testing::Values(4, 2));

TEST(ScaleSearch, ChosenLossNeverAboveIdentityWhichIsRtn) {
  const int64_t n_seq = 3, T = 16;
  const CapturedBlock blk = capture_block("search", n_seq, T, 3);
  const Tiny& t = blk.t;
  const BlockWeights& w = blk.w;
  const BlockCapture& cap = blk.cap;
  ScaleSearchOptions opt;
  opt.spec = QuantSpec{3, 16, true};
  opt.mode = ScaleMode::Both;
  const auto groups = search_block_scales(t.cfg, *t.arch, 0, w, cap, n_seq, T, opt);
  ASSERT_EQ(groups.size(), 4u);
  int improved = 0;
  for (const auto& g : groups) {
    ASSERT_TRUE(g.applied) << g.name;
    EXPECT_GT(g.rtn_loss, 0) << g.name;
    EXPECT_LE(g.loss, g.rtn_loss) << g.name;
    improved += g.loss < g.rtn_loss;
    for (float s : g.scales) EXPECT_TRUE(std::isfinite(s) && s > 0);
  }
  EXPECT_GE(improved, 2);  // the outlier channels make scaling pay off
  // The identity's loss is round-to-nearest of the group's linears, measured on the MLP's output.
  BlockWeights rtn = w;
  for (LinearRole r : {LinearRole::Gate, LinearRole::Up})
    fake_quantize(rtn[r].w.data.data(), rtn[r].out, rtn[r].in, opt.spec);
  Mat a, b;
  mlp_forward(t.cfg, w, cap.mlp_in, a);
  mlp_forward(t.cfg, rtn, cap.mlp_in, b);
  EXPECT_NEAR(groups[2].rtn_loss, mean_squared_error(a.data.data(), b.data.data(), a.size()),
              1e-9 * groups[2].rtn_loss);
  // Scoring candidates concurrently changes nothing.
  opt.parallel_candidates = true;
  const auto par = search_block_scales(t.cfg, *t.arch, 0, w, cap, n_seq, T, opt);
  for (size_t i = 0; i < groups.size(); ++i) {
    EXPECT_EQ(par[i].loss, groups[i].loss);
    EXPECT_EQ(par[i].scales, groups[i].scales);
  }
  // Clip-aware scoring: each candidate's linears (v, gate, up, down) are clipped as they will be;
  // still never above its own identity, and still independent of the execution order.
  ScaleSearchOptions ca = opt;
  ca.clip_aware = true;
  ca.parallel_candidates = false;
  const auto ca_seq = search_block_scales(t.cfg, *t.arch, 0, w, cap, n_seq, T, ca);
  ca.parallel_candidates = true;
  const auto ca_par = search_block_scales(t.cfg, *t.arch, 0, w, cap, n_seq, T, ca);
  for (size_t i = 0; i < groups.size(); ++i) {
    EXPECT_LE(ca_seq[i].loss, ca_seq[i].rtn_loss) << ca_seq[i].name;
    EXPECT_EQ(ca_seq[i].loss, ca_par[i].loss);
    EXPECT_EQ(ca_seq[i].scales, ca_par[i].scales);
  }
  // Clipping changes the MLP group's losses (gate and up are clipped; q and k never are).
  EXPECT_NE(ca_seq[2].rtn_loss, groups[2].rtn_loss);
  // x-only and duo alone are never better than both.
  for (ScaleMode m : {ScaleMode::X, ScaleMode::Duo}) {
    opt.mode = m;
    const auto one = search_block_scales(t.cfg, *t.arch, 0, w, cap, n_seq, T, opt);
    for (size_t i = 0; i < groups.size(); ++i) EXPECT_GE(one[i].loss, groups[i].loss);
  }
}

// Screening with halved finalists (9 sequences: halves of 4 and 5, so a wrong weighting shows):
// the losses the search reports are the full-data losses, as scoring every finalist on all the
// data (keep 0) computes them, up to the order of the double sums.
TEST(ScaleSearch, HalvedFinalistsReportFullDataLosses) {
  const int64_t n_seq = 9, T = 16;
  const CapturedBlock blk = capture_block("halves", n_seq, T, 5);
  ScaleSearchOptions opt;
  opt.spec = QuantSpec{3, 16, true};
  opt.screen_seqs = 4;
  opt.finalists = 4;
  opt.keep = 0;
  const auto all = search_block_scales(blk.t.cfg, *blk.t.arch, 0, blk.w, blk.cap, n_seq, T, opt);
  opt.keep = 2;
  const auto halved = search_block_scales(blk.t.cfg, *blk.t.arch, 0, blk.w, blk.cap, n_seq, T, opt);
  ASSERT_EQ(all.size(), halved.size());
  int direct = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    SCOPED_TRACE(all[i].name);
    ASSERT_TRUE(halved[i].applied);
    EXPECT_NEAR(halved[i].rtn_loss, all[i].rtn_loss, 1e-12 * all[i].rtn_loss);
    EXPECT_LE(halved[i].loss, halved[i].rtn_loss);
    if (halved[i].choice.label() == all[i].choice.label()) {
      EXPECT_NEAR(halved[i].loss, all[i].loss, 1e-12 * all[i].loss);
    }
    // Less arithmetic: 5 finalists on all the data -> 5 on 4/9 of it and 3 on the other 5/9.
    direct += halved[i].flops < all[i].flops;
  }
  EXPECT_GE(direct, 2);  // the attention and MLP groups (the others go through the Gram form)
}

TEST(PadIntermediate, PreservesBlockOutputExactly) {
  Tiny t = open_tiny("pad");
  const int64_t n_seq = 2, T = 8;
  const Mat x = random_input(n_seq * T, t.cfg.hidden_size, 5);
  BlockWeights w = load_block_f32(t.ck, t.cfg, *t.arch, 1);
  Mat ref;
  block_forward(t.cfg, w, x, n_seq, T, ref);
  pad_intermediate(w, 64);
  ModelConfig padded = t.cfg;
  padded.intermediate_size = 64;
  EXPECT_EQ(w[LinearRole::Gate].out, 64);
  EXPECT_EQ(w[LinearRole::Down].in, 64);
  Mat out;
  BlockCapture cap;
  block_forward(padded, w, x, n_seq, T, out, &cap);
  EXPECT_EQ(out.data, ref.data);
  // The zero channels of down's input: x̄ = 0 and w̄ = 0, yet every candidate is finite.
  ScaleSearchOptions opt;
  opt.spec = QuantSpec{4, 16, true};
  const auto groups = search_block_scales(padded, *t.arch, 1, w, cap, n_seq, T, opt);
  for (const auto& g : groups) {
    EXPECT_TRUE(std::isfinite(g.loss)) << g.name;
    for (float s : g.scales) EXPECT_TRUE(std::isfinite(s) && s > 0) << g.name;
  }
}

// The indices a block's clip search keeps replay to the bounds their definition gives on the
// weights (symmetric ±max|w|·f, asymmetric [min·f_lo, max·f_hi]), group by group.
TEST(Clip, IndicesReplayTheSearchedBounds) {
  Tiny t = open_tiny("clip");
  const int64_t n_seq = 2, T = 16;
  const Mat x = random_input(n_seq * T, t.cfg.hidden_size, 9);
  const BlockWeights w = load_block_f32(t.ck, t.cfg, *t.arch, 0);
  Mat y;
  BlockCapture cap;
  block_forward(t.cfg, w, x, n_seq, T, y, &cap);
  const QuantSpec spec{3, 16, true};
  for (const bool asymmetric : {false, true}) {
    SCOPED_TRACE(asymmetric ? "asymmetric" : "symmetric");
    ClipOptions copt;
    copt.asymmetric = asymmetric;
    auto clips = search_block_clips(*t.arch, 0, w, cap, spec, copt, 512);
    ASSERT_EQ(clips.size(), 5u);  // v, o, gate, up, down: q and k are never clipped
    BlockWeights w2 = w;
    apply_block_clips(w2, clips, spec, copt.n_grid);
    int64_t clipped = 0, lopsided = 0;
    for (const auto& c : clips) {
      EXPECT_TRUE(c.role != LinearRole::Q && c.role != LinearRole::K);
      ASSERT_EQ(c.choice.lo.size(), asymmetric ? c.choice.hi.size() : 0u);
      const Linear& before = w[c.role];
      const Linear& after = w2[c.role];
      for (int64_t o = 0; o < before.out; ++o) {
        for (int64_t k = 0; k < c.n_groups; ++k) {
          const size_t i = size_t(o * c.n_groups + k);
          const float* p = before.w.row(o) + k * 16;
          float mn = p[0], mx = p[0];
          for (int j = 1; j < 16; ++j) {
            mn = std::min(mn, p[j]);
            mx = std::max(mx, p[j]);
          }
          const float fh = float(1.0 - c.choice.hi[i] / 20.0);
          float lo = -std::max(mx, -mn) * fh, hi = std::max(mx, -mn) * fh;
          if (asymmetric) {
            lo = mn * float(1.0 - c.choice.lo[i] / 20.0);
            hi = mx * fh;
            lopsided += c.choice.lo[i] != c.choice.hi[i];
          }
          for (int j = 0; j < 16; ++j)
            ASSERT_EQ(after.w.row(o)[k * 16 + j], std::min(std::max(p[j], lo), hi))
                << linear_role_name(c.role) << " row " << o << " group " << k;
        }
      }
      EXPECT_LE(c.mean_shrink, 1.0);
      EXPECT_GE(c.mean_shrink, 0.55);
      clipped += c.frac_clipped > 0;
    }
    EXPECT_GT(clipped, 0);
    if (asymmetric) {
      EXPECT_GT(lopsided, 0);
    }
  }
}

}  // namespace
}  // namespace awq
