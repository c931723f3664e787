// The MoE feed-forward (model/moe.h) beyond the goldens: the routing rule on chosen logits (order,
// ties, renormalization), that an expert nobody is routed to is never read, the per-expert
// calibration capture, bit-identical results for any thread count, and the weight forms (f32,
// native f16, AWQ-quantized experts dequantized or on the W4 kernels) agreeing.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>

#include "base/files.h"
#include "base/thread_pool.h"
#include "formats/checkpoint.h"
#include "formats/checkpoint_writer.h"
#include "model/block.h"
#include "model/model.h"
#include "model/moe.h"
#include "quant/awq_gemm_pack.h"
#include "quant/quantize.h"
#include "test_util.h"
#include "tools/synth.h"

namespace awq {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;

ModelConfig moe_config(int64_t hidden, int64_t experts, int64_t k, bool renormalize) {
  json j = {{"model_type", "qwen3_moe"},
            {"hidden_size", hidden},
            {"intermediate_size", 8},
            {"num_hidden_layers", 1},
            {"num_attention_heads", 1},
            {"num_key_value_heads", 1},
            {"head_dim", 2},
            {"vocab_size", 8},
            {"num_experts", experts},
            {"num_experts_per_tok", k},
            {"moe_intermediate_size", 3},
            {"norm_topk_prob", renormalize}};
  return ModelConfig::from_json(j, "test");
}

Linear dense(int64_t out, int64_t in, float base) {
  Linear l;
  l.out = out;
  l.in = in;
  l.w.resize(out, in);
  for (int64_t i = 0; i < l.w.size(); ++i) l.w.data[size_t(i)] = base + 0.01f * float(i % 7);
  return l;
}

// Router = identity (hidden = experts), so a token's logits are its input row.
MoeWeights identity_router_moe(int64_t E, int64_t I) {
  MoeWeights w;
  w.router.resize(E, E);
  for (int64_t e = 0; e < E; ++e) w.router.at(e, e) = 1.0f;
  for (int64_t e = 0; e < E; ++e)
    w.experts.push_back({dense(I, E, 0.1f * float(e + 1)), dense(I, E, -0.05f * float(e)),
                         dense(E, I, 0.2f - 0.03f * float(e))});
  return w;
}

TEST(Moe, RoutingTakesTheTopKProbabilitiesLowerIndexOnTies) {
  const MoeWeights w = identity_router_moe(4, 3);
  Mat x(2, 4);
  const float rows[2][4] = {{1, 3, 3, 0}, {0.5f, -1, 2, 1.5f}};
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 4; ++c) x.at(r, c) = rows[r][c];
  const MoeRouting plain = moe_route(moe_config(4, 4, 2, false), w, x);
  ASSERT_EQ(plain.expert.size(), 4u);
  EXPECT_EQ(plain.expert[0], 1);  // tie between experts 1 and 2: the lower index first
  EXPECT_EQ(plain.expert[1], 2);
  EXPECT_EQ(plain.expert[2], 2);  // largest first
  EXPECT_EQ(plain.expert[3], 3);
  const double z0 = std::exp(1.0) + 2 * std::exp(3.0) + 1;
  EXPECT_NEAR(plain.weight[0], std::exp(3.0) / z0, 1e-6);  // softmax over all experts
  EXPECT_NEAR(plain.weight[1], std::exp(3.0) / z0, 1e-6);
  const MoeRouting norm = moe_route(moe_config(4, 4, 2, true), w, x);
  EXPECT_EQ(norm.expert, plain.expert);
  EXPECT_NEAR(norm.weight[0], 0.5, 1e-6);  // renormalized over the k chosen
  EXPECT_NEAR(norm.weight[2], 1 / (1 + std::exp(-0.5)), 1e-6);
  EXPECT_NEAR(norm.weight[2] + norm.weight[3], 1.0, 1e-6);
}

// Token t is routed to experts 0 and 1 only; the others hold NaN, so reading any of them (decode
// must touch only the routed experts) would show in the output.
TEST(Moe, OnlyRoutedExpertsAreComputed) {
  const int64_t E = 6, I = 3;
  MoeWeights w = identity_router_moe(E, I);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (int64_t e = 2; e < E; ++e)
    for (Linear* l :
         {&w.experts[size_t(e)].gate, &w.experts[size_t(e)].up, &w.experts[size_t(e)].down})
      std::fill(l->w.data.begin(), l->w.data.end(), nan);
  const ModelConfig cfg = moe_config(E, E, 2, true);
  Mat x(1, E);
  const float row[E] = {2.0f, 1.5f, -3, -3, -4, -5};
  std::copy(row, row + E, x.row(0));
  Mat out;
  moe_forward(cfg, w, x, out);
  // Independently: softmax over the two chosen logits, each expert in double.
  const double w0 = 1 / (1 + std::exp(-0.5)), w1 = 1 - w0;
  for (int64_t h = 0; h < E; ++h) {
    double want = 0;
    for (int e = 0; e < 2; ++e) {
      const FfnWeights& f = w.experts[size_t(e)];
      double y = 0;
      for (int64_t i = 0; i < I; ++i) {
        double g = 0, u = 0;
        for (int64_t c = 0; c < E; ++c) {
          g += double(f.gate.w.at(i, c)) * row[c];
          u += double(f.up.w.at(i, c)) * row[c];
        }
        y += double(f.down.w.at(h, i)) * (g / (1 + std::exp(-g)) * u);
      }
      want += (e == 0 ? w0 : w1) * y;
    }
    EXPECT_NEAR(out.at(0, h), want, 1e-5 * std::max(1.0, std::fabs(want))) << h;
  }
}

fs::path synth_from(const std::string& name, const json& cfg, DType dtype) {
  const fs::path root = test::scratch_dir("moe_" + name);
  write_text_file_atomic((root / "config.json").string(), cfg.dump());
  SynthOptions o;
  o.shape.clear();
  o.config_path = (root / "config.json").string();
  o.out_dir = (root / "model").string();
  o.dtype = dtype;
  o.seed = 3;
  o.weight_std = 0.25f;
  o.norm_noise = 0.3f;
  write_synthetic_model(o);
  return root / "model";
}

json qwen2_moe_tiny() {
  return {{"model_type", "qwen2_moe"},
          {"hidden_size", 64},
          {"intermediate_size", 96},
          {"num_hidden_layers", 3},
          {"num_attention_heads", 4},
          {"num_key_value_heads", 2},
          {"vocab_size", 300},
          {"num_experts", 8},
          {"num_experts_per_tok", 3},
          {"moe_intermediate_size", 32},
          {"shared_expert_intermediate_size", 64},
          {"mlp_only_layers", {1}}};
}

Mat random_rows(int64_t n, int64_t d, uint64_t seed) {
  Mat x(n, d);
  uint64_t s = seed;
  for (float& v : x.data) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    v = float(int64_t(s >> 40) % 2001 - 1000) / 400.0f;
  }
  return x;
}

// The capture holds, per expert, its routed rows (ascending), their weights and its down input,
// the same as running that expert alone on those rows; every token is routed k times; the MoE
// output is what moe_forward gives on the captured input.
TEST(Moe, CaptureHoldsEachExpertsTokensAndDownInputs) {
  const fs::path dir = synth_from("capture", qwen2_moe_tiny(), DType::F32);
  const ModelConfig cfg = ModelConfig::load(dir.string());
  const Checkpoint ck = Checkpoint::open(dir.string());
  const BlockWeights b = load_block_f32(ck, cfg, cfg.arch(), 0);
  ASSERT_TRUE(b.is_moe());
  ASSERT_FALSE(load_block_f32(ck, cfg, cfg.arch(), 1).is_moe());  // mlp_only_layers
  const int64_t n_seq = 3, T = 20, n = n_seq * T;
  const Mat x = random_rows(n, cfg.hidden_size, 5);
  Mat out;
  BlockCapture cap;
  block_forward(cfg, b, x, n_seq, T, out, &cap);
  ASSERT_EQ(cap.moe.tokens.size(), 8u);
  EXPECT_TRUE(cap.down_in.empty());
  EXPECT_EQ(cap.moe.shared_down_in.rows, n);
  int64_t routed = 0;
  for (size_t e = 0; e < 8; ++e) {
    const auto& t = cap.moe.tokens[e];
    routed += int64_t(t.size());
    ASSERT_EQ(cap.moe.weights[e].size(), t.size());
    EXPECT_TRUE(std::is_sorted(t.begin(), t.end()));
    if (t.empty()) continue;
    Mat xe(int64_t(t.size()), cfg.hidden_size), ye, down_in;
    for (size_t i = 0; i < t.size(); ++i)
      std::copy_n(cap.mlp_in.row(t[i]), cfg.hidden_size, xe.row(int64_t(i)));
    const FfnWeights& f = b.moe.experts[e];
    ffn_forward(cfg, f.gate, f.up, f.down, xe, ye, &down_in);
    EXPECT_EQ(down_in.data, cap.moe.down_in[e].data) << "expert " << e;
  }
  EXPECT_EQ(routed, n * cfg.num_experts_per_tok);
  Mat again;
  moe_forward(cfg, b.moe, cap.mlp_in, again);
  EXPECT_EQ(again.data, cap.mlp_out.data);
}

TEST(Moe, SameBitsForAnyThreadCount) {
  const fs::path dir = synth_from("threads", qwen2_moe_tiny(), DType::F32);
  const Model m = Model::load(dir.string());
  std::vector<int32_t> ids(64);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t((i * 37 + 11) % 300);
  const int saved = num_threads();
  set_num_threads(1);
  const Mat one = m.forward(ids.data(), 2, 32);
  set_num_threads(std::max(2, saved));
  const Mat many = m.forward(ids.data(), 2, 32);
  set_num_threads(saved);
  EXPECT_EQ(one.data, many.data);
}

// An AWQ (AutoAWQ GEMM) copy of `src`: every expert's and the shared expert's linears quantized
// (W4, group 32), everything else as it is.
fs::path quantize_experts(const fs::path& src, const fs::path& dst) {
  const Checkpoint ck = Checkpoint::open(src.string());
  StagedDir out(dst.string());
  CheckpointWriter w(out);
  for (const std::string& name : ck.names()) {
    const TensorInfo& t = ck.get(name);
    const bool expert = name.find("experts.") != std::string::npos ||
                        name.find("shared_expert.") != std::string::npos;
    if (!expert) {
      w.add(name, t.dtype, t.shape, std::vector<uint8_t>(t.data, t.data + t.nbytes));
      continue;
    }
    const std::string base = name.substr(0, name.size() - std::string(".weight").size());
    const int64_t rows = t.shape[0], cols = t.shape[1];
    std::vector<float> v(size_t(rows * cols));
    convert_to_f32(t.dtype, t.data, rows * cols, v.data());
    const AwqGemmTensors g =
        pack_awq_gemm(quantize(v.data(), rows, cols, QuantSpec{4, 32, true}, name));
    auto bytes = [](const auto& vec) {
      const auto* p = reinterpret_cast<const uint8_t*>(vec.data());
      return std::vector<uint8_t>(p, p + vec.size() * sizeof(vec[0]));
    };
    w.add(base + ".qweight", DType::I32, {g.K, g.N / 8}, bytes(g.qweight));
    w.add(base + ".qzeros", DType::I32, {g.K / g.group, g.N / 8}, bytes(g.qzeros));
    w.add(base + ".scales", DType::F16, {g.K / g.group, g.N}, bytes(g.scales_f16));
  }
  w.finish();
  json cfg = json::parse(read_text_file((src / "config.json").string()));
  cfg["quantization_config"] = {{"quant_method", "awq"},
                                {"bits", 4},
                                {"group_size", 32},
                                {"zero_point", true},
                                {"version", "gemm"}};
  write_text_file_atomic(out.path("config.json").string(), cfg.dump());
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(src / f, out.path(f));
  out.commit();
  return dst;
}

double max_rel(const Mat& a, const Mat& b) {
  double m = 0, d = 0;
  for (int64_t i = 0; i < a.size(); ++i) {
    m = std::max(m, double(std::fabs(b.data[size_t(i)])));
    d = std::max(d, double(std::fabs(a.data[size_t(i)] - b.data[size_t(i)])));
  }
  return d / m;
}

TEST(Moe, WeightFormsAgree) {
  const fs::path dir = synth_from("forms", qwen2_moe_tiny(), DType::F16);
  std::vector<int32_t> ids(40);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t((i * 53 + 7) % 300);
  const Mat f32 = Model::load(dir.string(), parse_weight_form("f32")).forward(ids.data(), 1, 40);
  const Mat native =
      Model::load(dir.string(), parse_weight_form("native")).forward(ids.data(), 1, 40);
  EXPECT_LT(max_rel(native, f32), 1e-5);

  const fs::path q = quantize_experts(dir, dir.parent_path() / "awq");
  const Model deq = Model::load(q.string(), parse_weight_form("native"));
  const Model w4 = Model::load(q.string(), parse_weight_form("w4"));
  ASSERT_TRUE(w4.block(0).is_moe());
  ASSERT_TRUE(w4.block(0).moe.experts[0].down.w4 != nullptr);
  const Mat a = deq.forward(ids.data(), 1, 40);
  EXPECT_LT(max_rel(w4.forward(ids.data(), 1, 40), a), 1e-4);
  EXPECT_GT(max_rel(a, f32), 1e-4);  // the experts really are quantized
  // Decode through the KV cache on the W4 experts: the last logits of the prefill.
  auto s = w4.session(40);
  std::vector<float> last;
  for (int32_t id : ids) last = s.feed(id);
  const Mat full = w4.forward(ids.data(), 1, 40);
  double d = 0, mx = 0;
  for (int64_t v = 0; v < full.cols; ++v) {
    d = std::max(d, double(std::fabs(last[size_t(v)] - full.at(39, v))));
    mx = std::max(mx, double(std::fabs(full.at(39, v))));
  }
  EXPECT_LT(d / mx, 1e-4);
}

}  // namespace
}  // namespace awq
