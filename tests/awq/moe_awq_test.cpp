// AWQ on sparse (mixture-of-experts) layers (awq/moe_search.h), end to end:
//
//   Folding     moe.gate_up (norm, every expert's gate/up, router and shared gate) and each
//               expert's moe.down leave the MoE output, the block output, the routing and the
//               calibration capture unchanged, for Mixtral, Qwen2-MoE and Qwen3-MoE.
//   Fallback    an expert no calibration token reaches is calibrated on every token under
//               moe_min_tokens, and left to plain rounding with moe_min_tokens 0; the report counts
//               each expert's tokens.
//   Outliers    with activation outliers AWQ at least halves RTN's KL divergence, one MoE family
//               each (W4 g128).
//   Round trip  the AutoAWQ expert tensors dequantize to exactly the fake-quant weights.
//   Layout      the tensor names, shapes and dtypes vLLM's AWQ MoE loader reads; routers and the
//               shared gate in float and in modules_to_not_convert, by names that match no
//               quantized linear.
//   Replay      --save-search / --load-search is byte-identical on an MoE model (the "expert"
//               fields of the search file).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "awq/moe_search.h"
#include "awq/pipeline.h"
#include "base/files.h"
#include "base/half.h"
#include "base/interrupt.h"
#include "eval/perplexity.h"
#include "formats/checkpoint.h"
#include "model/block.h"
#include "model/config.h"
#include "model/model.h"
#include "model/moe.h"
#include "test_util.h"
#include "tiny_model.h"
#include "tools/synth.h"

namespace awq {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;

const LinearRole kExpertRoles[] = {LinearRole::Gate, LinearRole::Up, LinearRole::Down};

json golden_config(const std::string& family) {
  return json::parse(read_text_file(
      (fs::path(AWQ_SOURCE_DIR) / "tests" / "goldens" / family / "config.json").string()));
}

// A synthetic checkpoint of `cfg` under root/model (random weights, awq synth --config).
std::string synth(const fs::path& root, const json& cfg, SynthOptions so) {
  write_text_file_atomic((root / "config.json").string(), cfg.dump());
  so.shape.clear();
  so.config_path = (root / "config.json").string();
  so.out_dir = (root / "model").string();
  write_synthetic_model(so);
  return so.out_dir;
}

// Tiny MoE configs whose expert widths split into groups of 32 (and into 8-column AutoAWQ packs).
json tiny_moe(const std::string& family) {
  json j = {
      {"hidden_size", 64},           {"num_hidden_layers", 2}, {"num_attention_heads", 4},
      {"num_key_value_heads", 2},    {"vocab_size", 300},      {"bos_token_id", 1},
      {"eos_token_id", 2},           {"rms_norm_eps", 1e-6},   {"max_position_embeddings", 512},
      {"tie_word_embeddings", false}};
  if (family == "mixtral") {
    j["model_type"] = "mixtral";
    j["intermediate_size"] = 32;  // the experts' width
    j["num_local_experts"] = 4;
    j["num_experts_per_tok"] = 2;
  } else if (family == "qwen2_moe") {
    j["model_type"] = "qwen2_moe";
    j["intermediate_size"] = 96;  // the dense layer's
    j["num_experts"] = 4;
    j["num_experts_per_tok"] = 2;
    j["moe_intermediate_size"] = 32;
    j["shared_expert_intermediate_size"] = 64;
    j["norm_topk_prob"] = false;
    j["num_hidden_layers"] = 3;
    j["mlp_only_layers"] = {
        1};  // a dense layer between sparse ones: its mlp.gate_proj is quantized
  } else {
    j["model_type"] = "qwen3_moe";
    j["head_dim"] = 16;
    j["intermediate_size"] = 96;
    j["num_experts"] = 4;
    j["num_experts_per_tok"] = 2;
    j["moe_intermediate_size"] = 32;
    j["norm_topk_prob"] = true;
  }
  return j;
}

QuantizeOptions quant_options(const std::string& model, const fs::path& out,
                              const CalibBlocks* calib, int group) {
  QuantizeOptions o;
  o.model_dir = model;
  o.out_dir = out.string();
  o.method = calib ? QuantMethod::Awq : QuantMethod::Rtn;
  o.spec = QuantSpec{4, group, true};
  o.scale_mode = ScaleMode::Duo;  // half the candidates of the default: shorter tests
  o.calib_tokens = calib;
  o.progress = false;
  o.quiet = true;
  return o;
}

// max |a - b| / max |b|.
double max_rel(const float* a, const float* b, size_t n) {
  double m = 0, d = 0;
  for (size_t i = 0; i < n; ++i) {
    m = std::max(m, double(std::fabs(b[i])));
    d = std::max(d, double(std::fabs(a[i] - b[i])));
  }
  return m > 0 ? d / m : d;
}
double max_rel(const Mat& a, const Mat& b) {
  EXPECT_EQ(a.rows, b.rows);
  EXPECT_EQ(a.cols, b.cols);
  return max_rel(a.data.data(), b.data.data(), std::min(a.data.size(), b.data.size()));
}

Mat gaussian_rows(int64_t n, int64_t d, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  Mat x(n, d);
  for (float& v : x.data) v = nd(rng);
  return x;
}

// exp(N(0, 0.5)): positive scales spread over about a factor 7 either way.
std::vector<float> random_scales(int64_t n, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 0.5f);
  std::vector<float> s(static_cast<size_t>(n));
  for (float& v : s) v = std::exp(nd(rng));
  return s;
}

std::string file_bytes(const fs::path& p) {
  return read_text_file(p.string());
}

// --- 1. Folding ------------------------------------------------------------------------------

class MoeFolding : public ::testing::TestWithParam<std::string> {};

// Random positive scales for every MoE group, folded: the block computes the same function. The
// router's and the shared gate's columns take moe.gate_up's s, so the top-k choice of every token
// is the same (not just close) and its weights agree to rounding; the capture divided by the
// scales is what the folded block captures.
TEST_P(MoeFolding, RandomScalesKeepOutputAndRouting) {
  const std::string family = GetParam();
  const fs::path root = test::scratch_dir("moe_fold_" + family);
  SynthOptions so;
  so.dtype = DType::F32;
  so.seed = 5;
  so.weight_std = 0.25f;  // large enough that every expert's contribution shows
  so.norm_noise = 0.3f;
  const std::string dir = synth(root, golden_config(family), so);
  const ModelConfig cfg = ModelConfig::load(dir);
  const Architecture& arch = cfg.arch();
  const Checkpoint ck = Checkpoint::open(dir);
  int64_t layer = 0;
  while (!cfg.is_moe_layer(layer)) ++layer;
  const BlockWeights w = load_block_f32(ck, cfg, arch, layer);
  BlockWeights f = load_block_f32(ck, cfg, arch, layer);
  ASSERT_TRUE(w.is_moe());
  EXPECT_EQ(w.moe.shared.present(), family == "qwen2-moe");

  std::mt19937 rng(17);
  std::vector<GroupResult> groups(1);
  groups[0].name = "moe.gate_up";
  groups[0].layers = {LinearRole::Gate, LinearRole::Up};
  groups[0].applied = true;
  groups[0].scales = random_scales(cfg.hidden_size, rng);
  std::vector<int> ffns;
  for (int e = 0; e < int(cfg.num_experts); ++e) ffns.push_back(e);
  if (w.moe.shared.present()) ffns.push_back(kSharedExpert);
  for (int e : ffns) {
    GroupResult g;
    g.name = "moe.down";
    g.expert = e;
    g.layers = {LinearRole::Down};
    g.applied = true;
    g.scales = random_scales(moe_linear(w, e, LinearRole::Down).in, rng);
    groups.push_back(std::move(g));
  }

  const int64_t n_seq = 2, T = 48, n = n_seq * T;
  const Mat x = gaussian_rows(n, cfg.hidden_size, rng);
  Mat out;
  BlockCapture cap;
  block_forward(cfg, w, x, n_seq, T, out, &cap);
  const Mat xn0 = cap.mlp_in;  // the MoE's normed input
  apply_moe_scales(layer, f, &cap, groups);

  // The fold really changed the weights it should change.
  EXPECT_GT(max_rel(f.moe.router, w.moe.router), 0.1);
  EXPECT_GT(max_rel(f.moe.experts[0].gate.w, w.moe.experts[0].gate.w), 0.1);
  EXPECT_GT(max_rel(f.moe.experts[0].down.w, w.moe.experts[0].down.w), 0.1);

  // The MoE on the normed input, and on it divided by s (what the folded norm gives).
  const Mat& xn = cap.mlp_in;  // divided by s in place by apply_moe_scales
  Mat y0, y1;
  moe_forward(cfg, w.moe, xn0, y0);
  moe_forward(cfg, f.moe, xn, y1);
  EXPECT_LT(max_rel(y1, y0), 1e-5);

  const MoeRouting r0 = moe_route(cfg, w.moe, xn0), r1 = moe_route(cfg, f.moe, xn);
  EXPECT_EQ(r1.expert, r0.expert);
  ASSERT_EQ(r1.weight.size(), r0.weight.size());
  double dw = 0;
  for (size_t i = 0; i < r0.weight.size(); ++i)
    dw = std::max(dw, double(std::fabs(r1.weight[i] - r0.weight[i])));
  EXPECT_LT(dw, 1e-6);

  // The whole block (norm included), and the capture the clip search then reads.
  Mat out1;
  BlockCapture cap1;
  block_forward(cfg, f, x, n_seq, T, out1, &cap1);
  EXPECT_LT(max_rel(out1, out), 1e-5);
  EXPECT_LT(max_rel(cap1.mlp_in, cap.mlp_in), 1e-5);
  ASSERT_EQ(cap1.moe.tokens, cap.moe.tokens);
  for (size_t e = 0; e < cap.moe.down_in.size(); ++e) {
    if (cap.moe.down_in[e].rows > 0) {
      EXPECT_LT(max_rel(cap1.moe.down_in[e], cap.moe.down_in[e]), 1e-5) << "expert " << e;
    }
  }
  if (w.moe.shared.present()) {
    EXPECT_LT(max_rel(cap1.moe.shared_down_in, cap.moe.shared_down_in), 1e-5);
    EXPECT_GT(max_rel(f.moe.shared.up.w, w.moe.shared.up.w), 0.1);
  }
  fs::remove_all(root);
}

INSTANTIATE_TEST_SUITE_P(Families, MoeFolding,
                         ::testing::Values("mixtral", "qwen2-moe", "qwen3-moe"),
                         [](const ::testing::TestParamInfo<std::string>& i) {
                           std::string n = i.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

// --- 2. Fallback for experts without calibration tokens ----------------------------------------

// 32 experts, top-2 and 16 calibration tokens: some experts receive none. With moe_min_tokens 16
// every expert is under it, so each is calibrated on all tokens through its gate/up: its moe.down
// group is searched and applied, and it is clipped. With 0, an expert without a token keeps the
// original down_proj and plain rounding: its down_proj tensors are the RTN run's, byte for byte.
TEST(MoeAwq, ExpertsWithoutTokensFallBackToAllTokens) {
  const fs::path root = test::scratch_dir("moe_fallback");
  json cj = tiny_moe("qwen3_moe");
  cj["num_experts"] = 32;
  SynthOptions so;
  so.dtype = DType::F16;
  so.seed = 9;
  so.weight_std = 0.1f;
  so.norm_noise = 0.2f;
  const std::string model = synth(root, cj, so);
  const ModelConfig cfg = ModelConfig::load(model);
  const Architecture& arch = cfg.arch();
  const CalibBlocks calib = test::random_calib(2, 8, cfg.vocab_size, 21);

  QuantizeOptions o = quant_options(model, root / "min16", &calib, 32);
  o.moe_min_tokens = 16;
  o.report_path = (root / "report16.json").string();
  const QuantizeReport rep16 = quantize_model(o);
  o.out_dir = (root / "min0").string();
  o.moe_min_tokens = 0;
  o.report_path.clear();
  const QuantizeReport rep0 = quantize_model(o);
  const QuantizeOptions rtn = quant_options(model, root / "rtn", nullptr, 32);
  quantize_model(rtn);

  ASSERT_EQ(rep16.blocks.size(), 2u);
  const auto report = json::parse(read_text_file((root / "report16.json").string()));
  const Checkpoint c16 = Checkpoint::open((root / "min16").string());
  const Checkpoint c0 = Checkpoint::open((root / "min0").string());
  const Checkpoint cr = Checkpoint::open((root / "rtn").string());
  int64_t checked = 0;
  for (size_t l = 0; l < 2; ++l) {
    const BlockResult& b16 = rep16.blocks[l];
    const BlockResult& b0 = rep0.blocks[l];
    ASSERT_EQ(b16.expert_tokens.size(), 32u);
    EXPECT_EQ(b0.expert_tokens, b16.expert_tokens);  // the same calibration, the same routing
    int64_t routed = 0;
    for (int64_t t : b16.expert_tokens) routed += t;
    EXPECT_EQ(routed, 16 * cfg.num_experts_per_tok);
    // The report's JSON holds the counts per layer.
    EXPECT_EQ(report["layers"][l]["expert_tokens"].get<std::vector<int64_t>>(), b16.expert_tokens);
    auto down_group = [](const BlockResult& b, int e) -> const GroupResult* {
      for (const GroupResult& g : b.moe_groups)
        if (g.name == "moe.down" && g.expert == e) return &g;
      return nullptr;
    };
    auto clipped = [](const BlockResult& b, int e) {
      for (const ClipResult& c : b.moe_clips)
        if (c.expert == e) return true;
      return false;
    };
    for (int e = 0; e < 32; ++e) {
      const GroupResult* g16 = down_group(b16, e);
      const GroupResult* g0 = down_group(b0, e);
      ASSERT_TRUE(g16 && g0) << "layer " << l << " expert " << e;
      EXPECT_TRUE(g16->applied) << "layer " << l << " expert " << e;      // all under 16 tokens
      EXPECT_GT(g16->rtn_loss, 0.0) << "layer " << l << " expert " << e;  // scored on real rows
      EXPECT_TRUE(clipped(b16, e)) << "layer " << l << " expert " << e;
      if (b16.expert_tokens[size_t(e)] > 0) {
        EXPECT_TRUE(g0->applied) << "layer " << l << " expert " << e;
        continue;
      }
      ++checked;
      EXPECT_FALSE(g0->applied) << "layer " << l << " expert " << e;
      EXPECT_FALSE(clipped(b0, e)) << "layer " << l << " expert " << e;
      const std::string down = arch.expert_linear_name(int64_t(l), e, LinearRole::Down);
      for (const char* part : {".qweight", ".qzeros", ".scales"}) {
        const TensorInfo& t0 = c0.get(down + part);
        const TensorInfo& tr = cr.get(down + part);
        ASSERT_EQ(t0.nbytes, tr.nbytes);
        EXPECT_EQ(std::memcmp(t0.data, tr.data, t0.nbytes), 0) << down << part << ": not RTN";
      }
      // Calibrated on all tokens, the same expert's down_proj is no longer plain rounding.
      const TensorInfo& q16 = c16.get(down + ".qweight");
      const TensorInfo& s16 = c16.get(down + ".scales");
      EXPECT_TRUE(std::memcmp(q16.data, cr.get(down + ".qweight").data, q16.nbytes) != 0 ||
                  std::memcmp(s16.data, cr.get(down + ".scales").data, s16.nbytes) != 0)
          << down;
    }
  }
  EXPECT_GT(checked, 0) << "no expert without calibration tokens: change the seed";
  fs::remove_all(root);
}

// --- 3. AWQ helps with activation outliers -----------------------------------------------------

struct OutlierCase {
  std::string family;
  int mlp_outliers = 0;    // also this many outlier rows in every up projection (down_proj inputs)
  double max_ratio = 0.5;  // AWQ's KL divergence / RTN's
};

void PrintTo(const OutlierCase& c, std::ostream* os) {
  *os << c.family << (c.mlp_outliers ? " + mlp outliers" : "");
}

// Per sparse layer, each expert's routed tokens when `dir` runs the evaluation text.
std::vector<std::vector<std::vector<int32_t>>> routes(const std::string& dir,
                                                      const CalibBlocks& text) {
  const Model m = Model::load(dir, LoadOptions{WeightForm::F32});
  Mat x;
  m.embed(text.tokens.data(), text.n_blocks * text.seqlen, x);
  std::vector<std::vector<std::vector<int32_t>>> r;
  for (int64_t l = 0; l < m.n_layers(); ++l) {
    BlockCapture cap;
    Mat y;
    block_forward(m.config(), m.block(l), x, text.n_blocks, text.seqlen, y, &cap);
    r.push_back(std::move(cap.moe.tokens));
    x = std::move(y);
  }
  return r;
}

// The fraction of (token, expert) choices of `a` that `b` does not make.
double flip_rate(const std::vector<std::vector<std::vector<int32_t>>>& a,
                 const std::vector<std::vector<std::vector<int32_t>>>& b) {
  int64_t moved = 0, n = 0;
  for (size_t l = 0; l < a.size(); ++l)
    for (size_t e = 0; e < a[l].size(); ++e) {
      std::vector<int32_t> d;
      std::set_difference(a[l][e].begin(), a[l][e].end(), b[l][e].begin(), b[l][e].end(),
                          std::back_inserter(d));
      moved += int64_t(d.size());
      n += int64_t(a[l][e].size());
    }
  return n > 0 ? double(moved) / double(n) : 0.0;
}

class MoeOutliers : public ::testing::TestWithParam<OutlierCase> {};

// outlier_test.cpp's experiment on a sparse model: 4 norm channels ×20 (every norm, so the router,
// all experts' gate/up and the shared expert see them), W4 g128, 3 blocks, 8 × 64 calibration
// tokens; AWQ's KL divergence to the full-precision model must be at most half of RTN's.
//
// Measured (see the printed lines; asymmetric clipping, the default): KL ratio 0.381 (mixtral),
// 0.337 (qwen2_moe), 0.470 (qwen3_moe), 0.504 (qwen3_moe with up-projection outliers). The MoE
// groups do their part as in dense models (moe.gate_up loss 0.34-0.38 of RTN's, experts' moe.down
// 0.79-0.82 without and 0.38 with up-projection outliers), but W4 noise flips 13-18% of this
// random model's top-2 choices (8-11% with AWQ), and the KL a flip causes falls with the noise's
// amplitude, not with its square (with symmetric clipping, one expert or top-8 of 8 — no flip
// possible — brought the same models from 0.47-0.61 to 0.45). So the issue's
// bound, 0.5, holds for the norm outliers; the extra up-projection case, where down_proj's
// outliers add to the routing noise, is held to 0.55.
TEST_P(MoeOutliers, AwqHalvesRtnKld) {
  const OutlierCase& c = GetParam();
  const fs::path root =
      test::scratch_dir("moe_outliers_" + c.family + (c.mlp_outliers ? "_mlp" : ""));
  json cj = {{"hidden_size", 256},
             {"num_hidden_layers", 3},
             {"num_attention_heads", 4},
             {"num_key_value_heads", 2},
             {"vocab_size", 320},
             {"bos_token_id", 1},
             {"eos_token_id", 2},
             {"rms_norm_eps", 1e-6},
             {"max_position_embeddings", 512},
             {"tie_word_embeddings", false},
             {"model_type", c.family},
             {"num_experts_per_tok", 2}};
  if (c.family == "mixtral") {
    cj["intermediate_size"] = 128;  // the experts' width
    cj["num_local_experts"] = 8;
  } else {
    cj["intermediate_size"] = 256;
    cj["num_experts"] = 8;
    cj["moe_intermediate_size"] = 128;
    cj["norm_topk_prob"] = c.family == "qwen3_moe";
    if (c.family == "qwen2_moe") cj["shared_expert_intermediate_size"] = 256;
    if (c.family == "qwen3_moe") cj["head_dim"] = 64;
  }
  SynthOptions so;
  so.dtype = DType::F16;
  so.seed = 7;
  so.weight_std = 0.02f;
  so.norm_noise = 0.1f;
  so.outlier_channels = 4;
  so.outlier_gain = 20.0f;
  so.mlp_outlier_channels = c.mlp_outliers;
  so.mlp_outlier_gain = c.mlp_outliers ? 20.0f : 1.0f;
  const std::string fp = synth(root, cj, so);
  const ModelConfig cfg = ModelConfig::load(fp);
  const CalibBlocks calib = test::random_calib(8, 64, cfg.vocab_size, 11);
  const CalibBlocks text = test::random_calib(2, 128, cfg.vocab_size, 12);

  const Model base = Model::load(fp, LoadOptions{WeightForm::F32});
  PerplexityOptions po;
  po.ctx = text.seqlen;
  po.progress = false;
  auto kld_of = [&](const QuantizeOptions& o) {
    const QuantizeReport rep = quantize_model(o);
    const Model m = Model::load(o.out_dir, LoadOptions{WeightForm::F32});
    const PerplexityResult r = perplexity(m, text.tokens, 1, po, &base);
    EXPECT_TRUE(r.kld.has_value());
    return std::make_pair(r.kld ? r.kld->mean : 0.0, rep);
  };
  const double rtn = kld_of(quant_options(fp, root / "rtn", nullptr, 128)).first;
  const auto [awq, rep] = kld_of(quant_options(fp, root / "awq", &calib, 128));
  // What the MoE groups achieved on their own objective (mean over layers and experts).
  double gate_up = 0, down = 0;
  int64_t n_gate_up = 0, n_down = 0;
  for (const BlockResult& b : rep.blocks)
    for (const GroupResult& g : b.moe_groups) {
      if (!g.applied || g.rtn_loss <= 0) continue;
      const bool gu = g.name == "moe.gate_up";
      (gu ? gate_up : down) += g.loss / g.rtn_loss;
      ++(gu ? n_gate_up : n_down);
    }
  ASSERT_EQ(n_gate_up, cfg.num_hidden_layers);
  const auto r0 = routes(fp, text);
  const double flips_rtn = flip_rate(r0, routes((root / "rtn").string(), text));
  const double flips_awq = flip_rate(r0, routes((root / "awq").string(), text));
  std::printf(
      "[ moe outliers ] %s, 4 norm outlier channels x20%s, W4 g128: KLD RTN %.5f, AWQ %.5f "
      "(ratio %.3f); loss/RTN moe.gate_up %.3f, moe.down %.3f; top-k choices moved: RTN %.3f, "
      "AWQ %.3f\n",
      c.family.c_str(), c.mlp_outliers ? ", 4 up-projection outlier rows x20" : "", rtn, awq,
      awq / rtn, gate_up / double(n_gate_up), down / double(n_down), flips_rtn, flips_awq);
  EXPECT_LT(gate_up / double(n_gate_up), 0.5);  // the outliers are where moe.gate_up acts
  EXPECT_LT(flips_awq, flips_rtn);              // routing moves less with AWQ
  EXPECT_GT(rtn, 0.0);
  EXPECT_LE(awq, c.max_ratio * rtn);
  fs::remove_all(root);
}

INSTANTIATE_TEST_SUITE_P(Families, MoeOutliers,
                         ::testing::Values(OutlierCase{"mixtral"}, OutlierCase{"qwen2_moe"},
                                           OutlierCase{"qwen3_moe"},
                                           OutlierCase{"qwen3_moe", 4, 0.55}),
                         [](const ::testing::TestParamInfo<OutlierCase>& i) {
                           return i.param.family + (i.param.mlp_outliers ? "_mlp" : "");
                         });

// --- 4. Round trip -----------------------------------------------------------------------------

// The AutoAWQ output dequantizes to exactly the fake-quant output's weights: every expert linear
// (and the shared expert's), the dense linears, and the float router and shared gate. The same
// search is replayed for the fake-quant run. Fake-quant stores the dequantized weights in the
// output's float dtype (f16), so the AutoAWQ weights are compared after the same rounding.
TEST(MoeAwq, AutoAwqDequantizesToTheFakeQuantWeights) {
  const fs::path root = test::scratch_dir("moe_roundtrip");
  SynthOptions so;
  so.dtype = DType::F32;
  so.seed = 4;
  so.weight_std = 0.1f;
  so.norm_noise = 0.2f;
  so.outlier_channels = 2;
  so.outlier_gain = 8.0f;
  const std::string model = synth(root, tiny_moe("qwen2_moe"), so);
  const ModelConfig cfg = ModelConfig::load(model);
  const Architecture& arch = cfg.arch();
  const CalibBlocks calib = test::random_calib(4, 16, cfg.vocab_size, 3);
  for (const QuantMethod method :
       {QuantMethod::Awq, QuantMethod::Rtn, QuantMethod::Gptq, QuantMethod::AwqGptq}) {
    const std::string tag = method_name(method);
    const bool awq = method == QuantMethod::Awq;
    QuantizeOptions o = quant_options(model, root / (tag + "_autoawq"), &calib, 32);
    o.method = method;
    if (method == QuantMethod::Rtn) o.calib_tokens = nullptr;
    if (awq) o.save_search = (root / "search.json").string();
    const QuantizeReport rep = quantize_model(o);
    if (uses_gptq(method)) {
      // GPTQ rounded every linear, experts and shared expert included, and beat plain rounding
      // on its objective everywhere.
      int64_t experts = 0;
      for (const auto& b : rep.blocks)
        for (const auto& g : b.gptq) {
          EXPECT_LT(g.loss, g.rtn_loss) << tag << " layer " << b.layer << " expert " << g.expert
                                        << " " << linear_role_name(g.role);
          experts += g.expert != kNoExpert;
        }
      EXPECT_EQ(experts, 2 * 3 * 5) << tag;  // 2 sparse layers, (4 experts + shared) x 3
      EXPECT_TRUE(file_bytes(root / (tag + "_autoawq") / "model.safetensors") !=
                  file_bytes(root / "rtn_autoawq" / "model.safetensors"));
    }
    o.out_dir = (root / (tag + "_fake")).string();
    o.format = OutputFormat::FakeQuant;
    if (awq) {  // GPTQ is deterministic: the same options again; AWQ replays its search
      o.save_search.clear();
      o.load_search = (root / "search.json").string();
      o.calib_tokens = nullptr;
    }
    quantize_model(o);
    const Checkpoint ca = Checkpoint::open((root / (tag + "_autoawq")).string());
    const Checkpoint cf = Checkpoint::open((root / (tag + "_fake")).string());
    const ModelConfig cfg_a = ModelConfig::load((root / (tag + "_autoawq")).string());
    const ModelConfig cfg_f = ModelConfig::load((root / (tag + "_fake")).string());
    ASSERT_TRUE(cfg_a.quant.has_value());
    ASSERT_TRUE(ca.has(arch.expert_linear_name(0, 0, LinearRole::Down) + ".qweight"));
    ASSERT_TRUE(cf.has(arch.expert_linear_name(0, 0, LinearRole::Down) + ".weight"));
    int64_t compared = 0;
    for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
      const BlockWeights a = load_block_f32(ca, cfg_a, arch, l);
      const BlockWeights f = load_block_f32(cf, cfg_f, arch, l);
      ASSERT_EQ(a.is_moe(), cfg.is_moe_layer(l));
      auto same = [&](const Mat& x, const Mat& y, const std::string& what) {
        ASSERT_EQ(x.data.size(), y.data.size()) << what;
        int64_t mismatches = 0;
        for (size_t i = 0; i < x.data.size(); ++i)
          mismatches += f16_to_f32(f32_to_f16(x.data[i])) != y.data[i];
        EXPECT_EQ(mismatches, 0) << tag << " " << what;
        ++compared;
      };
      for (LinearRole r : kAllLinearRoles)
        if (a[r].out > 0) same(a[r].w, f[r].w, arch.linear_name(l, r));
      if (!a.is_moe()) continue;
      for (int e = 0; e < int(cfg.num_experts); ++e)
        for (LinearRole r : kExpertRoles)
          same(moe_linear(a, e, r).w, moe_linear(f, e, r).w, arch.expert_linear_name(l, e, r));
      for (LinearRole r : kExpertRoles)
        same(moe_linear(a, kSharedExpert, r).w, moe_linear(f, kSharedExpert, r).w,
             arch.shared_expert_linear_name(l, r));
      same(a.moe.router, f.moe.router, arch.router_name(l));
      EXPECT_EQ(a.moe.shared_gate, f.moe.shared_gate) << arch.shared_gate_name(l);
    }
    // Two sparse layers (attention 4, experts 4 × 3, shared expert 3, router) and a dense one.
    EXPECT_EQ(compared, 2 * (4 + 3 * 4 + 3 + 1) + 7);
  }
  fs::remove_all(root);
}

// An interrupted AWQ-GPTQ run of a model with sparse and dense layers resumes from its stage,
// whose kept linears include the experts' (and a sparse layer's empty dense slots), to the bytes
// of an uninterrupted run.
TEST(MoeAwq, GptqRunResumesByteIdentical) {
  const fs::path root = test::scratch_dir("moe_gptq_resume");
  SynthOptions so;
  so.dtype = DType::F32;
  so.seed = 6;
  so.weight_std = 0.1f;
  so.outlier_channels = 2;
  so.outlier_gain = 8.0f;
  const std::string model = synth(root, tiny_moe("qwen2_moe"), so);
  const CalibBlocks calib = test::random_calib(4, 16, 300, 3);
  QuantizeOptions full = quant_options(model, root / "full", &calib, 32);
  full.method = QuantMethod::AwqGptq;
  quantize_model(full);
  QuantizeOptions o = full;
  o.out_dir = (root / "q").string();
  {
    const InterruptScope scope;
    ::setenv("AWQ_TEST_KILL_AT", "kept:1", 1);
    ::setenv("AWQ_TEST_KILL_SIGNAL", "2", 1);
    EXPECT_THROW(quantize_model(o), Interrupted);
    ::unsetenv("AWQ_TEST_KILL_AT");
    ::unsetenv("AWQ_TEST_KILL_SIGNAL");
  }
  ASSERT_TRUE(fs::exists(root / "q.resume" / "block-0001.q"));
  const QuantizeReport r = quantize_model(o);
  EXPECT_EQ(r.resumed_blocks, 2);
  test::expect_same_dirs(root / "full", root / "q");
  fs::remove_all(root);
}

// --- 5. Layout ---------------------------------------------------------------------------------

class MoeLayout : public ::testing::TestWithParam<std::string> {};

// What vLLM's AWQ MoE loaders (and AutoAWQ's) read: per expert gate/up/down (Mixtral w1/w3/w2) as
// qweight [in, out/8] i32, qzeros [in/g, out/8] i32, scales [in/g, out] f16, no .weight; the router
// (and Qwen2-MoE's shared_expert_gate [1, hidden]) in the model's float dtype; the shared expert
// quantized; every router and shared gate in modules_to_not_convert, and no entry a substring of a
// quantized module's name (the loaders skip a module when one is).
TEST_P(MoeLayout, AutoAwqExpertTensorsAsVllmReadsThem) {
  const std::string family = GetParam();
  const fs::path root = test::scratch_dir("moe_layout_" + family);
  SynthOptions so;
  so.dtype = DType::BF16;
  so.seed = 2;
  const std::string model = synth(root, tiny_moe(family), so);
  const int G = 32;
  quantize_model(quant_options(model, root / "awq", nullptr, G));
  const std::string out = (root / "awq").string();
  const Checkpoint ck = Checkpoint::open(out);
  const ModelConfig in_cfg = ModelConfig::load(model);
  const int64_t H = in_cfg.hidden_size, I = in_cfg.moe_intermediate_size;
  const std::string L = family == "mixtral" ? "block_sparse_moe" : "mlp";
  const std::string names[3] = {family == "mixtral" ? "w1" : "gate_proj",
                                family == "mixtral" ? "w3" : "up_proj",
                                family == "mixtral" ? "w2" : "down_proj"};

  // The quantized modules, from the tensors themselves.
  std::vector<std::string> quantized;
  for (const std::string& n : ck.names())
    if (n.ends_with(".qweight")) quantized.push_back(n.substr(0, n.size() - 8));

  auto expect_awq = [&](const std::string& m, int64_t out_f, int64_t in_f) {
    SCOPED_TRACE(m);
    ASSERT_TRUE(ck.has(m + ".qweight"));
    EXPECT_FALSE(ck.has(m + ".weight"));
    const TensorInfo& qw = ck.get(m + ".qweight");
    const TensorInfo& qz = ck.get(m + ".qzeros");
    const TensorInfo& sc = ck.get(m + ".scales");
    EXPECT_EQ(qw.dtype, DType::I32);
    EXPECT_EQ(qw.shape, (std::vector<int64_t>{in_f, out_f / 8}));
    EXPECT_EQ(qz.dtype, DType::I32);
    EXPECT_EQ(qz.shape, (std::vector<int64_t>{in_f / G, out_f / 8}));
    EXPECT_EQ(sc.dtype, DType::F16);
    EXPECT_EQ(sc.shape, (std::vector<int64_t>{in_f / G, out_f}));
  };
  std::vector<std::string> float_modules;
  int64_t experts_seen = 0;
  for (int64_t l = 0; l < in_cfg.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    if (!in_cfg.is_moe_layer(l)) {  // Qwen2-MoE's mlp_only_layers: the dense MLP, quantized
      expect_awq(p + "mlp.gate_proj", in_cfg.intermediate_size, H);
      expect_awq(p + "mlp.down_proj", H, in_cfg.intermediate_size);
      EXPECT_FALSE(ck.has(p + "mlp.gate.weight"));
      continue;
    }
    for (int64_t e = 0; e < in_cfg.num_experts; ++e, ++experts_seen) {
      const std::string x = p + L + ".experts." + std::to_string(e) + ".";
      expect_awq(x + names[0], I, H);
      expect_awq(x + names[1], I, H);
      expect_awq(x + names[2], H, I);
    }
    EXPECT_FALSE(ck.has(p + L + ".experts." + std::to_string(in_cfg.num_experts) + "." + names[0] +
                        ".qweight"));
    const TensorInfo& router = ck.get(p + L + ".gate.weight");
    EXPECT_EQ(router.dtype, DType::BF16);  // the model's float dtype, unquantized
    EXPECT_EQ(router.shape, (std::vector<int64_t>{in_cfg.num_experts, H}));
    EXPECT_FALSE(ck.has(p + L + ".gate.qweight"));
    float_modules.push_back(p + L + ".gate");
    if (family == "qwen2_moe") {
      const int64_t S = in_cfg.shared_expert_intermediate_size;
      expect_awq(p + "mlp.shared_expert.gate_proj", S, H);
      expect_awq(p + "mlp.shared_expert.up_proj", S, H);
      expect_awq(p + "mlp.shared_expert.down_proj", H, S);
      const TensorInfo& sg = ck.get(p + "mlp.shared_expert_gate.weight");
      EXPECT_EQ(sg.dtype, DType::BF16);
      EXPECT_EQ(sg.shape, (std::vector<int64_t>{1, H}));
      float_modules.push_back(p + "mlp.shared_expert_gate");
    }
    expect_awq(p + "self_attn.q_proj", in_cfg.num_attention_heads * in_cfg.head_dim, H);
  }
  EXPECT_EQ(experts_seen, 2 * in_cfg.num_experts);  // two sparse layers each

  const json cfg = json::parse(read_text_file((root / "awq" / "config.json").string()));
  const json& qc = cfg.at("quantization_config");
  EXPECT_EQ(qc.at("quant_method"), "awq");
  EXPECT_EQ(qc.at("version"), "gemm");
  EXPECT_EQ(qc.at("group_size"), G);
  const auto skip = qc.at("modules_to_not_convert").get<std::vector<std::string>>();
  for (const std::string& m : float_modules)
    EXPECT_NE(std::find(skip.begin(), skip.end(), m), skip.end())
        << m << " not in " << json(skip).dump();
  for (const std::string& s : skip)
    for (const std::string& q : quantized)
      EXPECT_EQ(q.find(s), std::string::npos) << "'" << s << "' would skip " << q;
  EXPECT_GT(quantized.size(), size_t(3 * experts_seen));
  fs::remove_all(root);
}

INSTANTIATE_TEST_SUITE_P(Families, MoeLayout,
                         ::testing::Values("mixtral", "qwen2_moe", "qwen3_moe"));

// --- 6. Search replay --------------------------------------------------------------------------

// Saving the search and replaying it (no calibration) gives the same files byte for byte; the
// search file names the experts (indices and "shared") of the MoE groups and clips.
TEST(MoeAwq, LoadSearchReproducesTheSavedRunByteForByte) {
  const fs::path root = test::scratch_dir("moe_replay");
  SynthOptions so;
  so.dtype = DType::F16;
  so.seed = 6;
  so.weight_std = 0.1f;
  so.norm_noise = 0.2f;
  so.outlier_channels = 2;
  so.outlier_gain = 8.0f;
  json cj = tiny_moe("qwen2_moe");
  cj["num_experts"] = 8;  // with 32 tokens top-2, some experts under moe_min_tokens fall back
  const std::string model = synth(root, cj, so);
  const ModelConfig cfg = ModelConfig::load(model);
  const CalibBlocks calib = test::random_calib(2, 16, cfg.vocab_size, 8);
  QuantizeOptions o = quant_options(model, root / "searched", &calib, 32);
  o.save_search = (root / "search.json").string();
  const QuantizeReport rep = quantize_model(o);
  QuantizeOptions r = quant_options(model, root / "replayed", nullptr, 32);
  r.method = QuantMethod::Awq;
  r.load_search = o.save_search;
  quantize_model(r);

  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(root / "searched"))
    files.push_back(e.path().filename().string());
  std::sort(files.begin(), files.end());
  std::vector<std::string> again;
  for (const auto& e : fs::directory_iterator(root / "replayed"))
    again.push_back(e.path().filename().string());
  std::sort(again.begin(), again.end());
  ASSERT_EQ(again, files);
  int64_t safetensors = 0;
  for (const std::string& f : files) {
    safetensors += f.ends_with(".safetensors");
    EXPECT_TRUE(file_bytes(root / "searched" / f) == file_bytes(root / "replayed" / f))
        << f << " differs";
  }
  EXPECT_GT(safetensors, 0);

  // The file holds every expert's down group and clips, and the shared expert's.
  const json s = json::parse(read_text_file(o.save_search));
  int64_t gate_up = 0, downs = 0, shared = 0, clips = 0;
  for (const json& l : s.at("layers")) {
    for (const json& g : l.at("scales")) {
      if (g.at("group") == "moe.gate_up") ++gate_up;
      if (g.at("group") != "moe.down") continue;
      ++downs;
      shared += g.at("expert") == "shared";
    }
    for (const json& c : l.at("clips")) clips += c.contains("expert");
  }
  EXPECT_EQ(gate_up, 2);          // layers 0 and 2 (1 is dense)
  EXPECT_EQ(downs, 2 * (8 + 1));  // every expert (the fallback) and the shared one
  EXPECT_EQ(shared, 2);
  EXPECT_EQ(clips, 2 * (8 + 1) * 3);
  int64_t applied = 0;
  for (const BlockResult& b : rep.blocks)
    for (const GroupResult& g : b.moe_groups) applied += g.applied;
  EXPECT_EQ(applied, gate_up + downs);
  fs::remove_all(root);
}

// A group size the experts cannot take is refused before any work, naming a real expert tensor
// of the first sparse layer (qwen2_moe: the shared expert's width too).
TEST(MoeAwq, GroupSizeTheExpertsCannotTakeNamesTheirTensor) {
  const fs::path root = test::scratch_dir("moe_bad_group");
  json cj = tiny_moe("qwen2_moe");
  cj["mlp_only_layers"] = {0};  // the first sparse layer is layer 1
  const std::string model = synth(root, cj, SynthOptions{});
  auto expect_refused = [&](int group, const std::string& tensor) {
    QuantizeOptions o = quant_options(model, root / "out", nullptr, group);
    try {
      quantize_model(o);
      ADD_FAILURE() << "group " << group << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(tensor), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(root / "out"));
  };
  expect_refused(64, "model.layers.1.mlp.experts.0.down_proj [64 x 32]");  // 32-wide input
  cj["moe_intermediate_size"] = 64;
  cj["shared_expert_intermediate_size"] = 48;
  fs::remove_all(root / "model");
  synth(root, cj, SynthOptions{});
  expect_refused(32, "model.layers.1.mlp.shared_expert.down_proj [64 x 48]");
  fs::remove_all(root);
}

}  // namespace
}  // namespace awq
