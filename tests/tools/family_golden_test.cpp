// Every supported family's forward against Hugging Face transformers' own numbers. Each directory
// of tests/goldens/ holds a tiny config.json (one family or RoPE variant, sized so that its
// features matter) and golden.json: per-position log-probabilities of 4 windows computed by
// transformers' modeling code (scripts/goldens/make_goldens.sh, run once, offline). The test
// synthesizes the same weights (awq synth: counter-based random numbers, so the same bits on any
// machine), runs awq.cpp's prefill, chunked prefill and KV-cache decode, and compares. A third
// test switches each family feature off and checks that the NLL then moves by more than 1e-3:
// otherwise the golden would not prove that feature.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "base/files.h"
#include "formats/checkpoint.h"
#include "model/model.h"
#include "test_util.h"
#include "tools/synth.h"

namespace awq {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;

// The settings the goldens were made with (scripts/goldens/make_goldens.sh passes the same).
constexpr uint64_t kSeed = 7;
constexpr float kWeightStd = 0.25f;
constexpr float kNormNoise = 0.3f;
constexpr double kTolerance = 1e-4;  // relative, per position and on the mean NLL

fs::path golden_root() {
  return fs::path(AWQ_SOURCE_DIR) / "tests" / "goldens";
}

std::vector<std::string> golden_names() {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(golden_root()))
    if (fs::exists(e.path() / "golden.json")) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

struct Golden {
  std::string name;
  fs::path model_dir;
  std::vector<std::vector<int32_t>> windows;
  std::vector<std::vector<double>> logprobs;  // [window][i]: log p(ids[i+1] | ids[..i])
  std::vector<double> decode_logprobs;        // HF's own KV-cache decode of window 0, if made
  double nll = 0;
};

Golden load_golden(const std::string& name) {
  Golden g;
  g.name = name;
  const json j = json::parse(read_text_file((golden_root() / name / "golden.json").string()));
  for (const auto& w : j.at("windows")) g.windows.push_back(w.get<std::vector<int32_t>>());
  for (const auto& w : j.at("logprobs")) g.logprobs.push_back(w.get<std::vector<double>>());
  if (j.contains("decode_logprobs"))
    g.decode_logprobs = j["decode_logprobs"].get<std::vector<double>>();
  g.nll = j.at("nll").get<double>();
  SynthOptions o;
  o.shape.clear();
  o.config_path = (golden_root() / name / "config.json").string();
  o.out_dir = test::scratch_dir("golden_" + name).string() + "/model";
  o.dtype = DType::F32;
  o.seed = kSeed;
  o.weight_std = kWeightStd;
  o.norm_noise = kNormNoise;
  write_synthetic_model(o);
  g.model_dir = o.out_dir;
  return g;
}

double log_softmax_at(const float* logits, int64_t n, int32_t target) {
  double mx = logits[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, double(logits[i]));
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(double(logits[i]) - mx);
  return double(logits[target]) - mx - std::log(s);
}

std::vector<double> prefill_logprobs(const Model& m, const std::vector<int32_t>& ids) {
  const int64_t T = int64_t(ids.size());
  const Mat logits = m.forward(ids.data(), 1, T);
  std::vector<double> lp;
  for (int64_t i = 0; i + 1 < T; ++i)
    lp.push_back(log_softmax_at(logits.row(i), logits.cols, ids[size_t(i + 1)]));
  return lp;
}

double mean_nll(const Model& m, const Golden& g) {
  double s = 0;
  int64_t n = 0;
  for (const auto& w : g.windows)
    for (double lp : prefill_logprobs(m, w)) {
      s -= lp;
      ++n;
    }
  return s / double(n);
}

void expect_close(const std::vector<double>& ours, const std::vector<double>& hf,
                  const std::string& what) {
  ASSERT_EQ(ours.size(), hf.size()) << what;
  for (size_t i = 0; i < hf.size(); ++i)
    ASSERT_NEAR(ours[i], hf[i], kTolerance * std::max(1.0, std::fabs(hf[i])))
        << what << " position " << i;
}

// Every config has its golden (a missing one would silently drop that family's tests).
TEST(FamilyGoldens, EveryConfigHasItsGolden) {
  int configs = 0;
  for (const auto& e : fs::directory_iterator(golden_root())) {
    if (!fs::exists(e.path() / "config.json")) continue;
    ++configs;
    EXPECT_TRUE(fs::exists(e.path() / "golden.json")) << e.path() << " has no golden.json";
  }
  EXPECT_GE(configs, 16);
}

class FamilyGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(FamilyGolden, PrefillMatchesTransformers) {
  const Golden g = load_golden(GetParam());
  const Model m = Model::load(g.model_dir.string());
  ASSERT_GE(g.windows.size(), 4u);
  for (size_t w = 0; w < g.windows.size(); ++w)
    expect_close(prefill_logprobs(m, g.windows[w]), g.logprobs[w],
                 g.name + " window " + std::to_string(w));
  EXPECT_NEAR(mean_nll(m, g), g.nll, kTolerance * g.nll);
}

// The KV cache: one token at a time, and chunks of 5 (chunked prefill: each chunk attends to the
// cached positions and to itself), against transformers' prefill — or against its own
// incremental decode where the two differ by design (dynamic and longrope recompute their
// frequencies as the sequence grows, so earlier keys keep the old rotation).
TEST_P(FamilyGolden, KvCacheDecodeAndChunkedPrefillMatchTransformers) {
  const Golden g = load_golden(GetParam());
  const Model m = Model::load(g.model_dir.string());
  const std::vector<int32_t>& ids = g.windows[0];
  const int64_t T = int64_t(ids.size());
  const std::vector<double>& want = g.decode_logprobs.empty() ? g.logprobs[0] : g.decode_logprobs;
  std::vector<double> decode;
  auto s = m.session(T);
  for (int64_t i = 0; i + 1 < T; ++i) {
    const std::vector<float> lg = s.feed(ids[size_t(i)]);
    decode.push_back(log_softmax_at(lg.data(), int64_t(lg.size()), ids[size_t(i + 1)]));
  }
  expect_close(decode, want, g.name + " decode");
  if (!g.decode_logprobs.empty()) return;  // chunks see other frequencies than either
  auto c = m.session(T);
  for (int64_t p = 0; p + 1 < T; p += 5) {
    const int64_t n = std::min<int64_t>(5, T - 1 - p);
    const std::vector<float> lg = c.feed(std::span<const int32_t>(ids.data() + p, size_t(n)));
    const double lp = log_softmax_at(lg.data(), int64_t(lg.size()), ids[size_t(p + n)]);
    ASSERT_NEAR(lp, want[size_t(p + n - 1)], kTolerance * std::max(1.0, std::fabs(lp)))
        << g.name << " chunk ending at " << p + n;
  }
}

// A model with one feature switched off: the config and the loaded blocks edited in memory.
Model edited(const Golden& g, const std::function<void(ModelConfig&)>& cfg_edit,
             const std::function<void(BlockWeights&)>& block_edit) {
  ModelConfig cfg = ModelConfig::load(g.model_dir.string());
  auto ck = std::make_shared<Checkpoint>(Checkpoint::open(g.model_dir.string()));
  std::vector<BlockWeights> blocks;
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    blocks.push_back(load_block(*ck, cfg, cfg.arch(), l, {}));
    if (block_edit) block_edit(blocks.back());
  }
  if (cfg_edit) cfg_edit(cfg);
  return Model::from_blocks(ck, cfg, std::move(blocks));
}

TEST_P(FamilyGolden, EveryFeatureMovesTheNll) {
  const Golden g = load_golden(GetParam());
  const ModelConfig cfg = ModelConfig::load(g.model_dir.string());
  const Architecture& a = cfg.arch();
  // Against our own NLL, which equals the golden's within 1e-4 (the tests above).
  const double base = mean_nll(Model::load(g.model_dir.string()), g);
  struct Toggle {
    const char* name;
    bool applies;
    std::function<void(ModelConfig&)> cfg_edit;
    std::function<void(BlockWeights&)> block_edit;
  };
  const bool sliding =
      std::any_of(cfg.layer_sliding.begin(), cfg.layer_sliding.end(), [](uint8_t s) { return s; });
  const Toggle toggles[] = {
      {"sliding window", sliding && cfg.sliding_window > 0,
       [](ModelConfig& c) { c.layer_sliding.assign(c.layer_sliding.size(), 0); }, nullptr},
      {"attention soft-cap", cfg.attn_softcap > 0, [](ModelConfig& c) { c.attn_softcap = 0; },
       nullptr},
      {"final soft-cap", cfg.final_softcap > 0, [](ModelConfig& c) { c.final_softcap = 0; },
       nullptr},
      {"query_pre_attn_scalar", a.query_pre_attn_scalar,
       [](ModelConfig& c) { c.attn_scale = float(1.0 / std::sqrt(double(c.head_dim))); }, nullptr},
      {"embedding scale", cfg.embed_scale > 0, [](ModelConfig& c) { c.embed_scale = 0; }, nullptr},
      {"GELU-tanh", cfg.activation == Activation::GeluTanh,
       [](ModelConfig& c) { c.activation = Activation::Silu; }, nullptr},
      {"(1 + w) norms", a.norm_offset() != 0, nullptr,
       [](BlockWeights& b) {
         for (auto* n : {&b.attn_norm, &b.mlp_norm, &b.post_attn_norm, &b.post_mlp_norm})
           for (float& v : *n) v -= 1.0f;
       }},
      {"q/k norms", a.has_qk_norm(), nullptr,
       [](BlockWeights& b) {
         b.q_norm.clear();
         b.k_norm.clear();
       }},
      {"post norms", a.has_post_norms(), nullptr,
       [](BlockWeights& b) {
         b.post_attn_norm.clear();
         b.post_mlp_norm.clear();
       }},
      {"rope scaling", !cfg.rope_scaling.is_default(),
       [](ModelConfig& c) { c.rope_scaling = RopeScaling{}; }, nullptr},
      {"partial rotary", cfg.rotary_dim != cfg.head_dim,
       [](ModelConfig& c) {
         c.rotary_dim = c.head_dim;  // longrope's factors then cover the whole head too
         for (auto* f : {&c.rope_scaling.short_factor, &c.rope_scaling.long_factor})
           if (!f->empty()) f->resize(size_t(c.head_dim / 2), f->back());
       },
       nullptr},
      {"local RoPE base", a.local_rope && sliding,
       [](ModelConfig& c) { c.rope_local_theta = c.rope_theta; }, nullptr},
      // MoE: the routing rule (renormalized or not), top-k, the shared expert's sigmoid gate.
      {"top-k renormalization (norm_topk_prob flipped)", cfg.is_moe(),
       [](ModelConfig& c) { c.norm_topk_prob = !c.norm_topk_prob; }, nullptr},
      {"top-(k-1) routing", cfg.is_moe() && cfg.num_experts_per_tok > 1,
       [](ModelConfig& c) { --c.num_experts_per_tok; }, nullptr},
      {"shared expert gate", cfg.shared_expert_intermediate_size > 0, nullptr,
       [](BlockWeights& b) { b.moe.shared_gate.clear(); }},
  };
  int applied = 0;
  for (const Toggle& t : toggles) {
    if (!t.applies) continue;
    ++applied;
    const double nll = mean_nll(edited(g, t.cfg_edit, t.block_edit), g);
    EXPECT_GT(std::fabs(nll - base) / base, 1e-3)
        << g.name << ": switching off '" << t.name << "' moved the NLL only from " << base << " to "
        << nll << " (the golden would not catch a broken " << t.name << ")";
  }
  EXPECT_GT(applied, 0) << g.name << " has no family feature to check";
}

INSTANTIATE_TEST_SUITE_P(Goldens, FamilyGolden, ::testing::ValuesIn(golden_names()),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(FamilyGolden);

}  // namespace
}  // namespace awq
