// Evaluation on the real stories260K model (converted from llama2.c): the known greedy
// continuation and perplexity, both perplexity conventions' windows, KL divergence, sampling.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <random>

#include "base/files.h"
#include "eval/generate.h"
#include "eval/perplexity.h"
#include "eval/tokenizer_loader.h"
#include "model/model.h"
#include "tools/stories_fixture.h"

namespace awq {
namespace {

const char* kRoxy = "text/tinystories-roxy-excerpt.txt";
const char* kValid = "text/tinystories-valid-a.txt";

TEST(Generate, GreedyStoriesContinuationIsTheKnownOne) {
  AWQ_REQUIRE_DATA(test::kStoriesBin);
  const Model m = Model::load(test::stories_hf_dir());
  const Tokenizer tok = load_model_tokenizer(test::stories_hf_dir());
  const auto prompt = tok.encode("Once upon a time");
  ASSERT_EQ(prompt.front(), tok.bos_id());
  GenerateOptions o;
  o.max_new_tokens = 40;
  o.eos_id = tok.eos_id();
  std::vector<int32_t> streamed;
  const auto r = generate(m, prompt, o, [&](int32_t id) { streamed.push_back(id); });
  EXPECT_EQ(streamed, r.tokens);
  const std::string text = tok.decode(r.tokens);
  const std::string known =
      ", there was a little girl named Lily. She loved to play outside in the park. One day, she "
      "saw a big, r";
  EXPECT_EQ(text.substr(0, known.size()), known) << text;
}

TEST(Perplexity, StoriesRoxyPaperConventionKnownValue) {
  AWQ_REQUIRE_DATA(test::kStoriesBin);
  AWQ_REQUIRE_DATA(kRoxy);
  const Model m = Model::load(test::stories_hf_dir());
  const Tokenizer tok = load_model_tokenizer(test::stories_hf_dir());
  const auto tokens = tok.encode(read_text_file(test::data_path(kRoxy)));
  ASSERT_EQ(tokens.size(), 620u);
  PerplexityOptions o;
  o.ctx = 512;
  o.progress = false;
  const auto r = perplexity(m, tokens, tok.bos_id(), o);
  EXPECT_EQ(r.n_windows, 1);
  EXPECT_EQ(r.n_scored, 511);
  EXPECT_NEAR(r.nll, 1.285260, 5e-6);
  EXPECT_NEAR(r.ppl / 3.61561, 1.0, 1e-5);
  std::printf("roxy: nll %.7f ppl %.6f\n", r.nll, r.ppl);
  // The same through the f32 working form.
  const Model f = Model::load(test::stories_hf_dir(), {WeightForm::F32});
  EXPECT_NEAR(perplexity(f, tokens, tok.bos_id(), o).nll, r.nll, 1e-6);
}

TEST(Perplexity, PaperWindowsScoreEveryPredictionAndDropTheTail) {
  std::vector<int32_t> t(1000);
  for (int i = 0; i < 1000; ++i) t[size_t(i)] = i + 10;
  const auto w = make_windows(t, 300, PplConvention::Paper, 1);
  ASSERT_EQ(w.size(), 3u);              // 1000 / 300, the 100-token tail dropped
  EXPECT_EQ(w[1].tokens.front(), 310);  // no BOS substitution
  EXPECT_EQ(w[2].tokens.back(), 909);
  EXPECT_EQ(w[0].first, 0);
  EXPECT_EQ(w[0].last, 298);  // positions 0..298 predict 1..299: 299 per window
  EXPECT_EQ(make_windows(t, 300, PplConvention::Paper, 1, 2).size(), 2u);
  try {
    make_windows(t, 2000, PplConvention::Paper, 1);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("1000 tokens"), std::string::npos) << e.what();
  }
}

TEST(Perplexity, LlamaCppWindowsScoreTheSecondHalfAfterBos) {
  std::vector<int32_t> t(1300);
  for (int i = 0; i < 1300; ++i) t[size_t(i)] = i + 10;
  const auto w = make_windows(t, 512, PplConvention::LlamaCpp, 1);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0].tokens[0], 1);  // first token of each chunk overwritten with BOS
  EXPECT_EQ(w[1].tokens[0], 1);
  EXPECT_EQ(w[1].tokens[1], 512 + 1 + 10);
  EXPECT_EQ(w[0].first, 256);
  EXPECT_EQ(w[0].last, 510);  // 256..510 predict 257..511: 255 per chunk
  EXPECT_EQ(make_windows(t, 512, PplConvention::LlamaCpp, -1)[1].tokens[0], 512 + 10);  // no BOS
  EXPECT_THROW(make_windows(t, 700, PplConvention::LlamaCpp, 1), Error);  // needs 2 x ctx tokens
}

// The llama.cpp convention against an independent computation through the KV-cache session.
TEST(Perplexity, LlamaCppConventionMatchesTokenByTokenDecode) {
  AWQ_REQUIRE_DATA(test::kStoriesBin);
  AWQ_REQUIRE_DATA(kValid);
  const Model m = Model::load(test::stories_hf_dir());
  const Tokenizer tok = load_model_tokenizer(test::stories_hf_dir());
  auto tokens = tok.encode(read_text_file(test::data_path(kValid)).substr(0, 6000));
  const int64_t ctx = 64;
  PerplexityOptions o;
  o.ctx = ctx;
  o.convention = PplConvention::LlamaCpp;
  o.max_windows = 5;
  o.batch_tokens = 128;  // two windows per forward
  o.progress = false;
  const auto r = perplexity(m, tokens, tok.bos_id(), o);
  ASSERT_EQ(r.n_windows, 5);
  ASSERT_EQ(r.n_scored, 5 * 31);
  double sum = 0, sum2 = 0;
  for (int64_t c = 0; c < 5; ++c) {
    auto s = m.session(ctx);
    std::vector<int32_t> chunk(tokens.begin() + c * ctx, tokens.begin() + (c + 1) * ctx);
    chunk[0] = tok.bos_id();
    for (int64_t p = 0; p < ctx - 1; ++p) {
      const auto lg = s.feed(chunk[size_t(p)]);
      if (p < ctx / 2) continue;
      const double nll = -log_softmax_at(lg.data(), m.vocab_size(), chunk[size_t(p + 1)]);
      EXPECT_NEAR(r.token_nll[size_t(c * 31 + p - ctx / 2)], nll, 1e-4);
      sum += nll;
      sum2 += nll * nll;
    }
  }
  const double n = 155, mean = sum / n;
  EXPECT_NEAR(r.nll, mean, 1e-5);
  EXPECT_NEAR(r.ppl_err, std::exp(mean) * std::sqrt((sum2 / n - mean * mean) / (n - 1)), 1e-4);
  EXPECT_GT(r.ppl_err, 0.0);
}

TEST(Perplexity, KlDivergenceOfAModelWithItselfIsZeroAndPositiveOtherwise) {
  AWQ_REQUIRE_DATA(test::kStoriesBin);
  AWQ_REQUIRE_DATA(kRoxy);
  const Model m = Model::load(test::stories_hf_dir());
  const Tokenizer tok = load_model_tokenizer(test::stories_hf_dir());
  const auto tokens = tok.encode(read_text_file(test::data_path(kRoxy)));
  PerplexityOptions o;
  o.ctx = 256;
  o.progress = false;
  const auto same = perplexity(m, tokens, tok.bos_id(), o, &m);
  ASSERT_TRUE(same.kld.has_value());
  EXPECT_NEAR(same.kld->mean, 0.0, 1e-12);
  EXPECT_EQ(same.kld->same_top, 1.0);
  EXPECT_EQ(same.kld->delta_ppl, 0.0);
  // A perturbed copy: every linear's weights with 5% noise.
  auto ck = std::make_shared<Checkpoint>(Checkpoint::open(test::stories_hf_dir()));
  std::vector<BlockWeights> blocks;
  std::mt19937 rng(1);
  std::normal_distribution<float> noise(0.0f, 0.05f);
  for (int64_t l = 0; l < m.n_layers(); ++l) {
    blocks.push_back(load_block_f32(*ck, m.config(), m.arch(), l));
    for (auto& lin : blocks.back().lin)
      for (auto& v : lin.w.data) v *= 1.0f + noise(rng);
  }
  const Model noisy = Model::from_blocks(ck, m.config(), std::move(blocks));
  const auto r = perplexity(noisy, tokens, tok.bos_id(), o, &m);
  EXPECT_GT(r.kld->mean, 1e-4);
  EXPECT_LT(r.kld->same_top, 1.0);
  EXPECT_NEAR(r.kld->base_ppl, same.ppl, 1e-9);
  EXPECT_NEAR(r.kld->delta_ppl, r.ppl - same.ppl, 1e-12);
  // KL(base || model) by hand over both windows' 255 predictions each.
  double kl = 0;
  for (int64_t w = 0; w < 2; ++w) {
    const Mat a = m.forward(tokens.data() + w * 256, 1, 256),
              b = noisy.forward(tokens.data() + w * 256, 1, 256);
    for (int64_t t = 0; t < 255; ++t) {
      double za = 0, zb = 0;
      for (int64_t v = 0; v < a.cols; ++v)
        za += std::exp(double(a.at(t, v))), zb += std::exp(double(b.at(t, v)));
      for (int64_t v = 0; v < a.cols; ++v) {
        const double pa = std::exp(double(a.at(t, v))) / za, pb = std::exp(double(b.at(t, v))) / zb;
        kl += pa * (std::log(pa) - std::log(pb));
      }
    }
  }
  EXPECT_NEAR(r.kld->mean, kl / 510, 1e-6 + 1e-4 * kl / 510);
}

TEST(Sampling, GreedySeededAndNucleus) {
  const std::vector<float> logits = {0.1f, 2.0f, 1.9f, -1.0f, 0.5f};
  Sampler greedy({0.0f, 1.0f, 0});
  EXPECT_EQ(greedy.sample(logits), 1);
  // The same seed gives the same draws.
  Sampler a({1.0f, 1.0f, 42}), b({1.0f, 1.0f, 42});
  std::vector<int32_t> da, db;
  for (int i = 0; i < 50; ++i) da.push_back(a.sample(logits)), db.push_back(b.sample(logits));
  EXPECT_EQ(da, db);
  // Frequencies follow softmax at temperature 1.
  Sampler c({1.0f, 1.0f, 7});
  std::map<int32_t, int> counts;
  const int N = 20000;
  for (int i = 0; i < N; ++i) counts[c.sample(logits)]++;
  double z = 0;
  for (float l : logits) z += std::exp(double(l));
  for (int32_t id = 0; id < 5; ++id)
    EXPECT_NEAR(double(counts[id]) / N, std::exp(double(logits[size_t(id)])) / z, 0.015) << id;
  // top-p small enough keeps only the most likely token; 0.6 keeps the top two.
  Sampler d({1.0f, 0.1f, 3});
  for (int i = 0; i < 100; ++i) EXPECT_EQ(d.sample(logits), 1);
  Sampler e({1.0f, 0.6f, 3});
  for (int i = 0; i < 200; ++i) {
    const int32_t s = e.sample(logits);
    EXPECT_TRUE(s == 1 || s == 2) << s;
  }
  EXPECT_THROW(Sampler({-1.0f, 1.0f, 0}), Error);
  EXPECT_THROW(Sampler({1.0f, 0.0f, 0}), Error);
}

TEST(Eval, MissingTokenizerIsAClearError) {
  const auto dir = test::scratch_dir("no_tokenizer");
  try {
    load_model_tokenizer(dir.string());
    FAIL();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(dir.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find("tokenizer.json"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace awq
