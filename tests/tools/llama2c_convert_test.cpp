// The llama2.c converter: the HF directory it writes, and the Hugging Face-layout forward on it
// against the scalar reference forward on llama2.c's own layout.
#include "tools/llama2c_convert.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "base/files.h"
#include "formats/checkpoint.h"
#include "formats/llama2c.h"
#include "model/model.h"
#include "model/reference_forward.h"
#include "stories_fixture.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace awq {
namespace {
namespace fs = std::filesystem;

TEST(Llama2cConvert, PermutationMovesPairsToHalves) {
  // 2 heads of head_dim 4, in = 1: rows hold their own index.
  std::vector<float> w = {0, 1, 2, 3, 4, 5, 6, 7};
  const auto p = permute_rows_for_rotate_half(w, 2, 4, 1);
  EXPECT_EQ(p, (std::vector<float>{0, 2, 1, 3, 4, 6, 5, 7}));
  EXPECT_THROW(permute_rows_for_rotate_half(w, 3, 4, 1), Error);
}

TEST(Llama2cConvert, WritesAHuggingFaceLlamaDirectory) {
  AWQ_REQUIRE_DATA(test::kStoriesBin);
  const std::string dir = test::stories_hf_dir();
  const auto cfg = nlohmann::json::parse(read_text_file(dir + "/config.json"));
  EXPECT_EQ(cfg["model_type"], "llama");
  EXPECT_EQ(cfg["architectures"][0], "LlamaForCausalLM");
  EXPECT_EQ(cfg["hidden_size"], 64);
  EXPECT_EQ(cfg["intermediate_size"], 172);
  EXPECT_EQ(cfg["num_key_value_heads"], 4);
  EXPECT_EQ(cfg["max_position_embeddings"], 512);
  EXPECT_EQ(cfg["tie_word_embeddings"], true);
  EXPECT_EQ(cfg["bos_token_id"], 1);
  EXPECT_EQ(cfg["eos_token_id"], 2);
  EXPECT_EQ(cfg["torch_dtype"], "float32");
  EXPECT_DOUBLE_EQ(cfg["rms_norm_eps"].get<double>(), 1e-5);
  const Checkpoint ck = Checkpoint::open(dir);
  EXPECT_FALSE(ck.has("lm_head.weight"));  // tied
  EXPECT_EQ(ck.get("model.layers.4.self_attn.k_proj.weight").shape, (std::vector<int64_t>{32, 64}));
  EXPECT_EQ(ck.get("model.layers.0.mlp.down_proj.weight").shape, (std::vector<int64_t>{64, 172}));
  EXPECT_EQ(ck.names().size(), size_t(1 + 5 * 9 + 1));
  // v is not permuted, q is.
  const Llama2cModel m = read_llama2c(test::data_path(test::kStoriesBin));
  const Mat v = ck.read_mat("model.layers.2.self_attn.v_proj.weight", 32, 64);
  EXPECT_TRUE(std::equal(v.data.begin(), v.data.end(), m.wv.begin() + 2 * 32 * 64));
  const Mat q = ck.read_mat("model.layers.0.self_attn.q_proj.weight", 64, 64);
  EXPECT_TRUE(std::equal(q.row(1), q.row(1) + 64, m.wq.begin() + 2 * 64));  // new row 1 = old row 2
  // The tokenizer reads back with BOS.
  const Tokenizer tok = Tokenizer::from_dir(dir);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.encode("Once upon a time").front(), 1);
}

TEST(Llama2cConvert, HfForwardMatchesLlama2cReference) {
  AWQ_REQUIRE_DATA(test::kStoriesBin);
  AWQ_REQUIRE_DATA("text/tinystories-roxy-excerpt.txt");
  const Model model = Model::load(test::stories_hf_dir(), {WeightForm::F32});
  const Llama2cModel l2c = read_llama2c(test::data_path(test::kStoriesBin));
  const Tokenizer tok = Tokenizer::from_dir(test::stories_hf_dir());
  auto tokens = tok.encode(read_text_file(test::data_path("text/tinystories-roxy-excerpt.txt")));
  tokens.resize(300);
  const Mat logits = model.forward(tokens.data(), 1, 300);
  ReferenceForward ref(l2c);
  double worst = 0;
  for (int64_t t = 0; t < 300; ++t) {
    const auto& r = ref.step(tokens[size_t(t)]);
    double num = 0, den = 0;
    for (int64_t v = 0; v < l2c.vocab_size; ++v) {
      num = std::max(num, double(std::abs(logits.at(t, v) - r[size_t(v)])));
      den = std::max(den, double(std::abs(r[size_t(v)])));
    }
    worst = std::max(worst, num / den);
  }
  EXPECT_LT(worst, 1e-5);
  std::printf(
      "HF forward vs llama2.c reference: max relative logit error %.3g over 300 positions\n",
      worst);
  // A model without the q/k permutation disagrees: the check is sensitive to the RoPE layout.
  Llama2cModel unpermuted = l2c;
  const auto& wq = l2c.wq;
  for (int64_t l = 0; l < l2c.n_layers; ++l) {
    const std::vector<float> one(wq.begin() + l * 64 * 64, wq.begin() + (l + 1) * 64 * 64);
    const auto p = permute_rows_for_rotate_half(one, 8, 8, 64);
    std::copy(p.begin(), p.end(), unpermuted.wq.begin() + l * 64 * 64);
  }
  ReferenceForward bad(unpermuted);
  double diff = 0;
  for (int64_t t = 0; t < 20; ++t) {
    const auto& r = bad.step(tokens[size_t(t)]);
    for (int64_t v = 0; v < l2c.vocab_size; ++v)
      diff = std::max(diff, double(std::abs(logits.at(t, v) - r[size_t(v)])));
  }
  EXPECT_GT(diff, 1e-2);
}

TEST(Llama2cConvert, StoriesPrefillEqualsKvCacheDecode) {
  AWQ_REQUIRE_DATA(test::kStoriesBin);
  AWQ_REQUIRE_DATA("text/tinystories-roxy-excerpt.txt");
  const Model model = Model::load(test::stories_hf_dir());
  const Tokenizer tok = Tokenizer::from_dir(test::stories_hf_dir());
  auto tokens = tok.encode(read_text_file(test::data_path("text/tinystories-roxy-excerpt.txt")));
  tokens.resize(200);
  const Mat pre = model.forward(tokens.data(), 1, 200);
  auto s = model.session(200);
  double worst = 0;
  for (int64_t t = 0; t < 200; ++t) {
    const auto lg = s.feed(tokens[size_t(t)]);
    double num = 0, den = 0;
    for (int64_t v = 0; v < pre.cols; ++v) {
      num = std::max(num, double(std::abs(lg[size_t(v)] - pre.at(t, v))));
      den = std::max(den, double(std::abs(pre.at(t, v))));
    }
    worst = std::max(worst, num / den);
  }
  EXPECT_LT(worst, 1e-5);
}

TEST(Llama2cConvert, WrongSizeModelIsAClearErrorAndWritesNothing) {
  AWQ_REQUIRE_DATA(test::kStoriesBin);
  const auto dir = test::scratch_dir("l2c_bad");
  const std::string cut = (dir / "cut.bin").string();
  fs::copy_file(test::data_path(test::kStoriesBin), cut);
  fs::resize_file(cut, fs::file_size(cut) - 4);
  const std::string out = (dir / "out").string();
  try {
    convert_llama2c(cut, test::data_path(test::kStoriesTok), out);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(cut), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(out));
}

TEST(Llama2cConvert, MissingTokenizerIsAClearErrorAndWritesNothing) {
  AWQ_REQUIRE_DATA(test::kStoriesBin);
  const auto dir = test::scratch_dir("l2c_notok");
  const std::string out = (dir / "out").string(), tok = (dir / "nope.bin").string();
  try {
    convert_llama2c(test::data_path(test::kStoriesBin), tok, out);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(tok), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
}  // namespace awq
