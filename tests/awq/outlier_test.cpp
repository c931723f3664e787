// AWQ on the case it exists for: a model whose activations have a few large channels. A synthetic
// smollm-135m-shaped checkpoint (all 30 blocks, random weights) with K outlier channels per RMSNorm
// of gain G, quantized at W4 with RTN and with AWQ; AWQ's KL divergence to the full-precision model
// must be at most half of RTN's.
//
// Group size 64, not 128: smollm-135m's hidden width 576 is not a multiple of 128 (64 is the
// largest power of two dividing both 576 and 1536). Calibration and evaluation use random token
// ids: the outliers come from the norm gains, not from the text.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "awq/calib.h"
#include "awq/pipeline.h"
#include "eval/perplexity.h"
#include "model/model.h"
#include "test_util.h"
#include "tiny_model.h"
#include "tools/synth.h"

namespace awq {
namespace {

TEST(Outliers, SmolLmShapeAwqHalvesRtnKld) {
  const std::filesystem::path root = test::scratch_dir("outliers_smollm");
  SynthOptions so;
  so.shape = "smollm-135m";
  so.out_dir = (root / "fp").string();
  so.dtype = DType::F16;
  so.seed = 7;
  so.outlier_channels = 4;
  so.outlier_gain = 20.0f;
  write_synthetic_model(so);
  const ModelConfig cfg = synth_preset("smollm-135m");

  // 4 calibration blocks of 64 tokens (small, so that 30 blocks search in seconds); a different
  // draw of 2 windows of 128 to evaluate on.
  const CalibBlocks calib = test::random_calib(4, 64, cfg.vocab_size, 11);
  const CalibBlocks text = test::random_calib(2, 128, cfg.vocab_size, 12);

  auto quantize = [&](QuantMethod method, const std::string& name) {
    QuantizeOptions o;
    o.model_dir = so.out_dir;
    o.out_dir = (root / name).string();
    o.method = method;
    o.spec = QuantSpec{4, 64, true};
    o.scale_mode = ScaleMode::Duo;  // AutoAWQ's grid: half the candidates of the default
    o.calib_tokens = method == QuantMethod::Awq ? &calib : nullptr;
    o.progress = false;
    o.quiet = true;
    quantize_model(o);
    return o.out_dir;
  };
  const Model base = Model::load(so.out_dir, LoadOptions{WeightForm::F32});
  PerplexityOptions po;
  po.ctx = 128;
  po.progress = false;
  auto kld_of = [&](const std::string& dir) {
    const Model m = Model::load(dir, LoadOptions{WeightForm::F32});
    const PerplexityResult r = perplexity(m, text.tokens, 1, po, &base);
    EXPECT_TRUE(r.kld.has_value());
    return r.kld ? r.kld->mean : 0.0;
  };
  const double rtn = kld_of(quantize(QuantMethod::Rtn, "rtn"));
  const double awq = kld_of(quantize(QuantMethod::Awq, "awq"));
  std::printf(
      "[ outliers ] smollm-135m shape, 4 outlier channels x20, W4 g64: KLD RTN %.5f, "
      "AWQ %.5f (ratio %.3f)\n",
      rtn, awq, awq / rtn);
  EXPECT_GT(rtn, 0.0);
  EXPECT_LE(awq, 0.5 * rtn);
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace awq
