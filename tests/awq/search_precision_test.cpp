// --search-precision: the option's parsing, the f32 fallback where bf16 products are not
// available (stated in the report, never silent), bit-identical bf16 results for 1 and 2
// threads, and what bf16 changes on a tiny outlier model: the chosen candidate per scaling group
// against f32's, and the quantized model's KL divergence.
#include <gtest/gtest.h>

#include <bit>
#include <filesystem>

#include "awq/pipeline.h"
#include "base/error.h"
#include "base/thread_pool.h"
#include "eval/perplexity.h"
#include "kernels/gemm.h"
#include "kernels/isa.h"
#include "model/config.h"
#include "model/model.h"
#include "test_util.h"
#include "tiny_model.h"

namespace awq {
namespace {
namespace fs = std::filesystem;

TEST(SearchPrecision, ParsesItsNames) {
  EXPECT_EQ(parse_search_precision("f32"), SearchPrecision::F32);
  EXPECT_EQ(parse_search_precision("bf16"), SearchPrecision::Bf16);
  EXPECT_STREQ(search_precision_name(SearchPrecision::Bf16), "bf16");
  try {
    parse_search_precision("fp16");
    FAIL() << "fp16 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--search-precision fp16"), std::string::npos) << e.what();
  }
}

// A tiny Llama (GQA: three groups per block, attn.o is skipped) with 4 activation-outlier
// channels of gain 20, 8 blocks: 24 searched groups.
class SearchPrecisionModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new fs::path(test::scratch_dir("search_precision"));
    test::FamilyModelOptions mo;
    mo.shape = test::FamilyShape{128, 256, 8, 320};
    mo.dtype = DType::F16;
    mo.seed = 5;
    mo.weight_std = 0.02f;
    mo.norm_noise = 0.1f;
    mo.outlier_channels = 4;
    mo.outlier_gain = 20.0f;
    test::write_family_model((*root_ / "fp").string(), "llama", mo);
    calib_ = new CalibBlocks(test::random_calib(8, 64, 320, 3));
  }
  static void TearDownTestSuite() {
    fs::remove_all(*root_);
    delete root_;
    delete calib_;
  }

  static QuantizeReport quantize(const std::string& name, SearchPrecision p) {
    QuantizeOptions o;
    o.model_dir = (*root_ / "fp").string();
    o.out_dir = (*root_ / name).string();
    o.spec = QuantSpec{4, 64, true};
    o.format = OutputFormat::FakeQuant;
    o.search_precision = p;
    o.calib_tokens = calib_;
    o.resume = false;
    o.progress = false;
    o.quiet = true;
    return quantize_model(o);
  }

  // Mean KL divergence of the quantized `name` against the full-precision model on 2 x 128
  // random tokens.
  static double kld(const std::string& name) {
    const Model base = Model::load((*root_ / "fp").string(), LoadOptions{WeightForm::F32});
    const Model m = Model::load((*root_ / name).string(), LoadOptions{WeightForm::F32});
    const CalibBlocks text = test::random_calib(2, 128, 320, 4);
    PerplexityOptions po;
    po.ctx = 128;
    po.progress = false;
    const PerplexityResult r = perplexity(m, text.tokens, 1, po, &base);
    return r.kld ? r.kld->mean : -1.0;
  }

  static fs::path* root_;
  static CalibBlocks* calib_;
};
fs::path* SearchPrecisionModel::root_ = nullptr;
CalibBlocks* SearchPrecisionModel::calib_ = nullptr;

std::vector<const GroupResult*> applied_groups(const QuantizeReport& r) {
  std::vector<const GroupResult*> g;
  for (const BlockResult& b : r.blocks)
    for (const GroupResult& x : b.groups)
      if (x.applied) g.push_back(&x);
  return g;
}

TEST_F(SearchPrecisionModel, Bf16MostlyChoosesF32sScales) {
  if (!kernels::bf16_products_available()) GTEST_SKIP() << "no AVX512-BF16 here";
  const QuantizeReport f32 = quantize("f32", SearchPrecision::F32);
  const QuantizeReport bf16 = quantize("bf16", SearchPrecision::Bf16);
  EXPECT_EQ(f32.search_precision, "f32");
  EXPECT_EQ(bf16.search_precision, "bf16");
  const auto a = applied_groups(f32), b = applied_groups(bf16);
  ASSERT_EQ(a.size(), b.size());
  ASSERT_GE(a.size(), 20u);
  int same = 0, same_loss = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    same += a[i]->choice.label() == b[i]->choice.label();
    same_loss += a[i]->loss == b[i]->loss;
  }
  // The products really ran in bf16: the losses are not f32's bits (the Gram-scored mlp.down
  // groups keep f32's, so not all of them differ).
  EXPECT_LT(same_loss, int(a.size()));
  // Rounding x and W to bf16 moves every candidate's loss by ~1%; where two candidates are closer
  // than that (often the x and duo grids at neighbouring α), the choice flips. Measured here: 21
  // of 24 groups keep f32's choice (stories260K: 14 of 15), short of the 95% the issue asks, so
  // f32 stays the default; this guards against anything worse.
  const double kl_f32 = kld("f32"), kl_bf16 = kld("bf16");
  std::printf("[ bf16 search ] %d of %zu groups chose f32's candidate; KLD f32 %.6f, bf16 %.6f\n",
              same, a.size(), kl_f32, kl_bf16);
  EXPECT_GE(double(same), 0.8 * double(a.size()));
  EXPECT_LE(kl_bf16, 1.1 * kl_f32);
}

TEST_F(SearchPrecisionModel, Bf16IsThreadCountInvariant) {
  if (!kernels::bf16_products_available()) GTEST_SKIP() << "no AVX512-BF16 here";
  const int saved = num_threads();
  set_num_threads(1);
  const QuantizeReport one = quantize("bf16_t1", SearchPrecision::Bf16);
  set_num_threads(2);
  const QuantizeReport two = quantize("bf16_t2", SearchPrecision::Bf16);
  set_num_threads(saved);
  const auto a = applied_groups(one), b = applied_groups(two);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(std::bit_cast<uint64_t>(a[i]->loss), std::bit_cast<uint64_t>(b[i]->loss)) << i;
    EXPECT_EQ(a[i]->scales, b[i]->scales) << i;
  }
  test::expect_same_dirs(*root_ / "bf16_t1", *root_ / "bf16_t2");
}

TEST_F(SearchPrecisionModel, FallsBackToF32WithAWarning) {
  // Capped below avx512, as AWQ_ISA=avx2 caps it (or a CPU without AVX512-BF16): the f32 search,
  // bit for bit, and the report says so.
  const kernels::Isa saved = kernels::active_isa();
  if (kernels::cpu_best_isa() >= kernels::Isa::Avx2) kernels::force_isa(kernels::Isa::Avx2);
  const QuantizeReport f32 = quantize("fallback_f32", SearchPrecision::F32);
  const QuantizeReport asked = quantize("fallback_bf16", SearchPrecision::Bf16);
  kernels::force_isa(saved);
  EXPECT_EQ(asked.search_precision, "f32");
  bool warned = false;
  for (const std::string& w : asked.warnings) warned |= w.find("--search-precision") == 0;
  EXPECT_TRUE(warned) << "no warning about the fallback";
  for (const std::string& w : f32.warnings) EXPECT_EQ(w.find("--search-precision"), w.npos) << w;
  test::expect_same_dirs(*root_ / "fallback_f32", *root_ / "fallback_bf16");
}

}  // namespace
}  // namespace awq
