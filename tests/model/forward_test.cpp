// The block and model forward against an independent double-precision forward on random models
// written as real HF directories: Llama with GQA and tied embeddings, Qwen2 with q/k/v biases and
// an untied lm_head, f16 weights used in place; batched prefill vs KV-cache decode; capture.
#include <gtest/gtest.h>

#include <random>

#include "base/thread_pool.h"
#include "model/model.h"
#include "test_util.h"
#include "tiny_model.h"

namespace awq {
namespace {

std::vector<int32_t> random_tokens(int64_t n, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> d(0, int32_t(vocab - 1));
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = d(rng);
  return t;
}

void expect_matches_naive(const test::TinySpec& spec, const LoadOptions& opts, double tol) {
  const auto dir = test::scratch_dir("tiny_" + spec.model_type + std::to_string(int(spec.dtype)));
  const auto w = test::write_tiny_model(dir / "m", spec);
  const Model m = Model::load((dir / "m").string(), opts);
  const int64_t T = 21;
  const auto tokens = random_tokens(T, spec.vocab, 11);
  const Mat logits = m.forward(tokens.data(), 1, T);
  ASSERT_EQ(logits.rows, T);
  ASSERT_EQ(logits.cols, spec.vocab);
  const auto ref = test::naive_logits(spec, w, tokens);
  for (int64_t t = 0; t < T; ++t)
    EXPECT_LT(test::rel_err(logits.row(t), ref[size_t(t)]), tol) << "position " << t;
}

TEST(Forward, LlamaGqaTiedMatchesNaive) {
  test::TinySpec s;
  expect_matches_naive(s, {WeightForm::F32}, 1e-5);
  expect_matches_naive(s, {WeightForm::Native}, 1e-5);
}

TEST(Forward, Qwen2WithBiasAndUntiedHeadMatchesNaive) {
  test::TinySpec s;
  s.model_type = "qwen2";
  s.qkv_bias = true;
  s.tie = false;
  s.heads = 8;
  s.kv_heads = 2;
  s.hidden = 64;
  s.theta = 1000000.0f;
  s.eps = 1e-6f;
  s.seed = 5;
  expect_matches_naive(s, {WeightForm::F32}, 1e-5);
  // And the bias really is used: a model loaded without it would differ (checked by zeroing).
  const auto dir = test::scratch_dir("qwen_bias");
  test::write_tiny_model(dir / "m", s);
  Model m = Model::load((dir / "m").string(), {WeightForm::F32});
  EXPECT_FALSE(m.block(0)[LinearRole::Q].bias.empty());
  EXPECT_TRUE(m.block(0)[LinearRole::O].bias.empty());
}

TEST(Forward, F16WeightsInPlaceMatchNaive) {
  test::TinySpec s;
  s.dtype = DType::F16;
  s.seed = 9;
  expect_matches_naive(s, {WeightForm::Native}, 1e-5);
  expect_matches_naive(s, {WeightForm::F32}, 1e-5);
  s.dtype = DType::BF16;
  expect_matches_naive(s, {WeightForm::Native}, 1e-5);
}

TEST(Forward, NativeF16KeepsWeightsInTheMapping) {
  test::TinySpec s;
  s.dtype = DType::F16;
  const auto dir = test::scratch_dir("native_map");
  test::write_tiny_model(dir / "m", s);
  const Model m = Model::load((dir / "m").string(), {WeightForm::Native});
  for (const auto& l : m.block(1).lin) {
    EXPECT_NE(l.w16, nullptr);
    EXPECT_TRUE(l.w.empty());
  }
  EXPECT_NE(m.lm_head().w16, nullptr);
  const Model f = Model::load((dir / "m").string(), {WeightForm::F32});
  EXPECT_FALSE(f.block(1)[LinearRole::Down].w.empty());
}

TEST(Forward, BatchedSequencesAreIndependent) {
  test::TinySpec s;
  const auto dir = test::scratch_dir("batched");
  test::write_tiny_model(dir / "m", s);
  const Model m = Model::load((dir / "m").string());
  const int64_t T = 13, n_seq = 3;
  const auto tokens = random_tokens(n_seq * T, s.vocab, 3);
  const Mat all = m.forward(tokens.data(), n_seq, T);
  for (int64_t q = 0; q < n_seq; ++q) {
    const Mat one = m.forward(tokens.data() + q * T, 1, T);
    for (int64_t t = 0; t < T; ++t)
      EXPECT_LT(test::rel_err(all.row(q * T + t), one.row(t), s.vocab), 1e-6) << q << "," << t;
  }
}

TEST(Forward, LaterTokensNeverChangeEarlierLogits) {
  test::TinySpec s;
  const auto dir = test::scratch_dir("causal");
  test::write_tiny_model(dir / "m", s);
  const Model m = Model::load((dir / "m").string());
  auto tokens = random_tokens(24, s.vocab, 4);
  const Mat a = m.forward(tokens.data(), 1, 24);
  tokens[15] = (tokens[15] + 1) % int32_t(s.vocab);
  tokens[23] = (tokens[23] + 7) % int32_t(s.vocab);
  const Mat b = m.forward(tokens.data(), 1, 24);
  // Rows are computed with the same kernels on the same inputs: earlier rows identical.
  for (int64_t t = 0; t < 15; ++t)
    for (int64_t v = 0; v < s.vocab; ++v)
      ASSERT_NEAR(a.at(t, v), b.at(t, v), 1e-6f * (1 + std::abs(a.at(t, v))));
  EXPECT_GT(test::rel_err(a.row(15), b.row(15), s.vocab), 1e-3);
}

// Head width 8 with one key/value head (multi-query; decode through the per-head kernel), and 64
// with two query heads per key/value head (the grouped decode kernel over key tiles).
TEST(Forward, PrefillEqualsKvCacheDecode) {
  for (const bool wide : {false, true}) {
    SCOPED_TRACE(wide ? "head_dim 64" : "head_dim 8");
    test::TinySpec s;
    s.kv_heads = 1;  // multi-query attention
    if (wide) s.hidden = 256, s.heads = 4, s.kv_heads = 2;
    const auto dir = test::scratch_dir(wide ? "decode64" : "decode");
    test::write_tiny_model(dir / "m", s);
    const Model m = Model::load((dir / "m").string());
    const int64_t T = 30;
    const auto tokens = random_tokens(T, s.vocab, 5);
    const Mat pre = m.forward(tokens.data(), 1, T);
    auto sess = m.session(T);
    // Per layer: keys in whole tiles of 16 positions (32), values for 30, f32.
    EXPECT_EQ(sess.cache_bytes(), s.layers * (32 + 30) * s.kv_heads * s.head_dim() * 4);
    for (int64_t t = 0; t < T; ++t) {
      const auto lg = sess.feed(tokens[size_t(t)]);
      EXPECT_LT(test::rel_err(lg.data(), pre.row(t), s.vocab), 1e-5) << t;
    }
    EXPECT_EQ(sess.pos(), T);
    EXPECT_THROW(sess.feed(tokens[0]), Error);  // the cache is full
    // Chunked: a prompt of 9, then 21 more one at a time.
    auto s2 = m.session(T);
    auto lg = s2.feed(std::span<const int32_t>(tokens.data(), 9));
    EXPECT_LT(test::rel_err(lg.data(), pre.row(8), s.vocab), 1e-5);
    lg = s2.feed(std::span<const int32_t>(tokens.data() + 9, 21));
    EXPECT_LT(test::rel_err(lg.data(), pre.row(T - 1), s.vocab), 1e-5);
  }
}

TEST(Forward, SameResultForAnyThreadCount) {
  test::TinySpec s;
  s.hidden = 64;
  s.inter = 200;
  const auto dir = test::scratch_dir("threads");
  test::write_tiny_model(dir / "m", s);
  const Model m = Model::load((dir / "m").string());
  const auto tokens = random_tokens(2 * 40, s.vocab, 6);
  const int before = num_threads();
  set_num_threads(1);
  const Mat a = m.forward(tokens.data(), 2, 40);
  set_num_threads(3);
  const Mat b = m.forward(tokens.data(), 2, 40);
  set_num_threads(before);
  EXPECT_EQ(a.data, b.data);
}

// A tiny f32 model and the embeddings of n random tokens: the input of its first block.
struct EmbeddedInput {
  Model m;
  Mat x;
};

EmbeddedInput tiny_block_input(const std::string& name, int64_t n, uint32_t seed) {
  test::TinySpec s;
  const auto dir = test::scratch_dir(name);
  test::write_tiny_model(dir / "m", s);
  EmbeddedInput e{Model::load((dir / "m").string(), {WeightForm::F32}), {}};
  const auto tokens = random_tokens(n, s.vocab, seed);
  e.m.embed(tokens.data(), n, e.x);
  return e;
}

TEST(Forward, CaptureHoldsEveryLinearInput) {
  const EmbeddedInput in = tiny_block_input("capture", 2 * 9, 8);
  const Model& m = in.m;
  const Mat& x = in.x;
  const ModelConfig& c = m.config();
  Mat out_plain, out_cap;
  BlockCapture cap;
  block_forward(c, m.block(0), x, 2, 9, out_plain);
  block_forward(c, m.block(0), x, 2, 9, out_cap, &cap);
  EXPECT_EQ(out_plain.data, out_cap.data);
  ASSERT_EQ(cap.attn_in.rows, 18);
  ASSERT_EQ(cap.o_in.cols, c.q_dim());
  ASSERT_EQ(cap.mlp_in.cols, c.hidden_size);
  ASSERT_EQ(cap.down_in.cols, c.intermediate_size);
  // The pieces recompose the block: x + attention(attn_in) then + mlp(mlp_in).
  Mat a, o_in, mo, down_in;
  attention_forward(c, m.block(0), cap.attn_in, 2, 9, a, &o_in);
  EXPECT_EQ(o_in.data, cap.o_in.data);
  mlp_forward(c, m.block(0), cap.mlp_in, mo, &down_in);
  EXPECT_EQ(down_in.data, cap.down_in.data);
  // The captured module outputs are bit for bit what the modules compute on their inputs (the
  // scale search uses them as its reference outputs).
  EXPECT_EQ(cap.attn_out.data, a.data);
  EXPECT_EQ(cap.mlp_out.data, mo.data);
  for (int64_t i = 0; i < x.size(); ++i)
    EXPECT_NEAR(out_plain.data[size_t(i)],
                x.data[size_t(i)] + a.data[size_t(i)] + mo.data[size_t(i)], 1e-5);
  // o_proj applied to its captured input gives the attention output.
  Mat o2;
  m.block(0)[LinearRole::O].forward(cap.o_in, o2);
  EXPECT_EQ(o2.data, a.data);
}

// Long inputs run the MLP in chunks of rows (2048): the same bits as pieces that fit one chunk,
// for the output and the captured down_proj input.
TEST(Forward, ChunkedMlpEqualsUnchunked) {
  const int64_t n = 2 * 2048 + 37;
  const EmbeddedInput in = tiny_block_input("mlp_chunks", n, 12);
  const Model& m = in.m;
  const Mat& x = in.x;
  const ModelConfig& c = m.config();
  Mat out, down_in;
  mlp_forward(c, m.block(0), x, out, &down_in);
  ASSERT_EQ(out.rows, n);
  ASSERT_EQ(down_in.rows, n);
  for (int64_t r0 = 0; r0 < n; r0 += 1000) {  // pieces that straddle the chunk boundaries
    const int64_t rows = std::min<int64_t>(1000, n - r0);
    Mat piece(rows, x.cols), po, pd;
    std::copy(x.row(r0), x.row(r0 + rows), piece.row(0));
    mlp_forward(c, m.block(0), piece, po, &pd);
    for (int64_t i = 0; i < po.size(); ++i)
      ASSERT_EQ(po.data[size_t(i)], out.data[size_t(r0 * out.cols + i)]) << r0;
    for (int64_t i = 0; i < pd.size(); ++i)
      ASSERT_EQ(pd.data[size_t(i)], down_in.data[size_t(r0 * down_in.cols + i)]) << r0;
  }
}

TEST(Forward, WeightFormsParse) {
  EXPECT_EQ(parse_weight_form("f32").weights, WeightForm::F32);
  EXPECT_TRUE(parse_weight_form("w4a8").w4a8);
  try {
    parse_weight_form("int3");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("native"), std::string::npos);
  }
}

}  // namespace
}  // namespace awq
