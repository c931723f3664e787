// export-gguf and GGUF reading for the sparse MoE families (Mixtral -> llama with experts,
// Qwen2-MoE -> qwen2moe, Qwen3-MoE -> qwen3moe): a tiny synthetic model of each exported as F32
// reads back with the same logits; an AWQ checkpoint of it (every linear, every expert RTN
// quantized) exported as Q4_1 (Q4_0 when symmetric) reads back with the same 4-bit codes and
// perplexity; the experts are stacked [E, out, in] in expert order under llama.cpp's names, the
// router stays F32; and what llama.cpp's MoE graphs cannot hold (dense layers, another top-k
// renormalization) is an error naming the config key.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>

#include "base/error.h"
#include "base/files.h"
#include "formats/checkpoint.h"
#include "formats/checkpoint_writer.h"
#include "gguf/export.h"
#include "gguf/gguf_bench.h"
#include "gguf/gguf_file.h"
#include "gguf/gguf_model.h"
#include "gguf/inspect_gguf.h"
#include "gguf/llama_layout.h"
#include "kernels/w4.h"
#include "model/awq_dequant.h"
#include "model/block.h"
#include "model/model.h"
#include "quant/awq_gemm_pack.h"
#include "quant/quantize.h"
#include "test_util.h"
#include "tools/synth.h"

namespace awq::gguf {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

constexpr LinearRole kFfn[] = {LinearRole::Gate, LinearRole::Up, LinearRole::Down};

// Tiny configs with every width a multiple of 32 (so AWQ groups of 32/64 map to ggml blocks).
json moe_config(const std::string& family) {
  json j = {{"hidden_size", 128},       {"num_hidden_layers", 2}, {"num_attention_heads", 4},
            {"num_key_value_heads", 2}, {"vocab_size", 512},      {"max_position_embeddings", 256},
            {"rms_norm_eps", 1e-5},     {"rope_theta", 10000.0},  {"tie_word_embeddings", false},
            {"bos_token_id", 1},        {"eos_token_id", 2}};
  if (family == "mixtral") {
    j["model_type"] = "mixtral";
    j["intermediate_size"] = 64;  // the experts' width
    j["num_local_experts"] = 4;
    j["num_experts_per_tok"] = 2;
    j["sliding_window"] = nullptr;
    j["rope_theta"] = 1e6;
  } else if (family == "qwen2_moe") {
    j["model_type"] = "qwen2_moe";
    j["intermediate_size"] = 256;  // dense layers' width (none here)
    j["num_experts"] = 6;
    j["num_experts_per_tok"] = 2;
    j["moe_intermediate_size"] = 64;
    j["shared_expert_intermediate_size"] = 96;
    j["norm_topk_prob"] = false;
    j["decoder_sparse_step"] = 1;
    j["mlp_only_layers"] = json::array();
    j["use_sliding_window"] = false;
    j["tie_word_embeddings"] = true;  // llama.cpp's qwen2moe needs output.weight: a copy
  } else if (family == "qwen3_moe") {
    j["model_type"] = "qwen3_moe";
    j["intermediate_size"] = 256;
    j["head_dim"] = 64;
    j["num_experts"] = 8;
    j["num_experts_per_tok"] = 3;
    j["moe_intermediate_size"] = 64;
    j["norm_topk_prob"] = true;
    j["decoder_sparse_step"] = 1;
    j["use_sliding_window"] = false;
    j["rope_theta"] = 1e6;
  }
  j["architectures"] = {find_architecture(j["model_type"])->hf_class};
  return j;
}

const char* const kMoeFamilies[] = {"mixtral", "qwen2_moe", "qwen3_moe"};

// A synthetic f32 model (awq synth --weight-std 0.2 --norm-noise 0.2: sharp routers and norms
// that matter).
std::string synth_moe(const std::string& root, const json& cfg) {
  const std::string cp = root + "/source-config.json";
  write_text_file_atomic(cp, cfg.dump(2));
  SynthOptions o;
  o.shape.clear();
  o.config_path = cp;
  o.out_dir = root + "/model";
  o.dtype = DType::F32;
  o.weight_std = 0.2f;
  o.norm_noise = 0.2f;
  o.seed = 13;
  write_synthetic_model(o);
  return o.out_dir;
}

// Every checkpoint linear of the model (without ".weight"): attention, dense MLPs, experts and
// shared experts; not the router or the shared expert's gate (AutoAWQ leaves those float).
std::set<std::string> linear_names(const ModelConfig& cfg) {
  const Architecture& arch = cfg.arch();
  std::set<std::string> s;
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    for (LinearRole r : kAllLinearRoles) {
      const bool ffn = r == LinearRole::Gate || r == LinearRole::Up || r == LinearRole::Down;
      if (!(ffn && cfg.is_moe_layer(l))) s.insert(arch.stored_linear_name(l, r));
    }
    if (!cfg.is_moe_layer(l)) continue;
    for (LinearRole r : kFfn) {
      for (int64_t e = 0; e < cfg.num_experts; ++e) s.insert(arch.expert_linear_name(l, e, r));
      if (cfg.shared_expert_intermediate_size > 0) s.insert(arch.shared_expert_linear_name(l, r));
    }
  }
  return s;
}

// An AWQ checkpoint of `src` (AutoAWQ GEMM layout, RTN codes): every linear of linear_names
// except those in `keep_float`.
std::string awq_checkpoint(const std::string& src, const std::string& out_dir, int group,
                           bool zero_point, const std::set<std::string>& keep_float = {}) {
  ModelConfig cfg = ModelConfig::load(src);
  const Checkpoint ck = Checkpoint::open(src);
  const std::set<std::string> linears = linear_names(cfg);
  StagedDir out(out_dir);
  CheckpointWriter w(out);
  for (const std::string& name : ck.names()) {
    const TensorInfo& t = ck.get(name);
    const std::string base =
        name.ends_with(".weight") ? name.substr(0, name.size() - 7) : std::string();
    if (!base.empty() && linears.count(base) && !keep_float.count(base)) {
      const Mat m = ck.read_mat(name, t.shape[0], t.shape[1]);
      QuantSpec spec;
      spec.group_size = group;
      spec.zero_point = zero_point;
      const AwqGemmTensors q =
          pack_awq_gemm(quantize(m.data.data(), m.rows, m.cols, spec, base), base);
      auto bytes = [](const auto& v) {
        std::vector<uint8_t> b(v.size() * sizeof(v[0]));
        std::memcpy(b.data(), v.data(), b.size());
        return b;
      };
      w.add(base + ".qweight", DType::I32, {q.K, q.N / 8}, bytes(q.qweight));
      w.add(base + ".qzeros", DType::I32, {q.K / q.group, q.N / 8}, bytes(q.qzeros));
      w.add(base + ".scales", DType::F16, {q.K / q.group, q.N}, bytes(q.scales_f16));
    } else if (t.shape.size() == 2) {
      w.add_f32_as(name, DType::F32, t.shape, ck.read_mat(name, t.shape[0], t.shape[1]).data);
    } else {
      w.add_f32_as(name, DType::F32, t.shape, ck.read_vec(name, t.shape[0]));
    }
  }
  w.finish();
  AwqQuantConfig q;
  q.group_size = group;
  q.zero_point = zero_point;
  cfg.quant = q;
  write_text_file_atomic(out.path("config.json").string(), cfg.to_json().dump(2) + "\n");
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(fs::path(src) / f, out.path(f));
  out.commit();
  return out_dir;
}

ExportReport export_to(const std::string& dir, const std::string& out, const std::string& type) {
  ExportOptions o;
  o.model_dir = dir;
  o.out_path = out;
  o.type = type;
  o.progress = false;
  o.embeddings = "f32";  // the synthetic checkpoints are f32: keep them exact
  return export_gguf(o);
}

std::vector<int32_t> test_tokens(int64_t n, int64_t vocab) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  uint64_t x = 987654321;
  for (auto& v : t) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    v = int32_t((x >> 33) % uint64_t(vocab));
  }
  t[0] = 1;
  return t;
}

double mean_nll(const Model& m, const std::vector<int32_t>& tokens) {
  const int64_t T = int64_t(tokens.size());
  const Mat logits = m.forward(tokens.data(), 1, T);
  double sum = 0;
  for (int64_t t = 0; t + 1 < T; ++t) {
    const float* row = logits.row(t);
    double mx = row[0];
    for (int64_t v = 1; v < logits.cols; ++v) mx = std::max(mx, double(row[v]));
    double z = 0;
    for (int64_t v = 0; v < logits.cols; ++v) z += std::exp(double(row[v]) - mx);
    sum += -(double(row[tokens[size_t(t + 1)]]) - mx - std::log(z));
  }
  return sum / double(T - 1);
}

double logits_rel_diff(const Model& a, const Model& b, const std::vector<int32_t>& tokens) {
  const int64_t T = int64_t(tokens.size());
  const Mat la = a.forward(tokens.data(), 1, T), lb = b.forward(tokens.data(), 1, T);
  EXPECT_EQ(la.cols, lb.cols);
  double mx = 0, diff = 0;
  for (int64_t i = 0; i < la.size(); ++i) {
    mx = std::max(mx, double(std::fabs(la.data[size_t(i)])));
    diff = std::max(diff, double(std::fabs(la.data[size_t(i)] - lb.data[size_t(i)])));
  }
  return diff / mx;
}

std::pair<int64_t, int64_t> expert_shape(const ModelConfig& c, LinearRole r, int64_t I) {
  return r == LinearRole::Down ? std::pair{c.hidden_size, I} : std::pair{I, c.hidden_size};
}

// The names, types, ne and keys llama.cpp's loader asks for (c392e509 src/llama-model.cpp: llama
// with n_expert > 0, qwen2moe; qwen3moe as newer llama.cpp loads it).
void expect_llamacpp_layout(const GgufFile& f, const ModelConfig& c, GgmlType linear) {
  const GgufArch& g = gguf_arch_for(c.model_type);
  const std::string a = g.name + ".";
  EXPECT_EQ(f.get_string("general.architecture"), c.model_type == "mixtral"     ? "llama"
                                                  : c.model_type == "qwen2_moe" ? "qwen2moe"
                                                                                : "qwen3moe");
  EXPECT_EQ(f.find(a + "expert_count")->type(), ValueType::U32);
  EXPECT_EQ(f.get_int(a + "expert_count"), c.num_experts);
  EXPECT_EQ(f.get_int(a + "expert_used_count"), c.num_experts_per_tok);
  if (c.model_type == "mixtral") {
    EXPECT_EQ(f.get_int(a + "feed_forward_length"), c.moe_intermediate_size);
    EXPECT_EQ(f.find(a + "expert_feed_forward_length"), nullptr);
  } else {
    EXPECT_EQ(f.get_int(a + "expert_feed_forward_length"), c.moe_intermediate_size);
  }
  if (c.model_type == "qwen2_moe") {
    EXPECT_EQ(f.get_int(a + "expert_shared_feed_forward_length"),
              c.shared_expert_intermediate_size);
  } else {
    EXPECT_EQ(f.find(a + "expert_shared_feed_forward_length"), nullptr);
  }
  const int64_t d = c.hidden_size, E = c.num_experts, I = c.moe_intermediate_size;
  using V = std::vector<int64_t>;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    auto t = [&](const std::string& what) { return f.tensor(gguf_block_tensor(l, what)); };
    EXPECT_EQ(t("ffn_gate_inp").ne, (V{d, E}));
    EXPECT_EQ(t("ffn_gate_inp").type, GgmlType::F32);
    EXPECT_EQ(t("ffn_gate_exps").ne, (V{d, I, E}));
    EXPECT_EQ(t("ffn_up_exps").ne, (V{d, I, E}));
    EXPECT_EQ(t("ffn_down_exps").ne, (V{I, d, E}));
    for (const char* n : {"ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"})
      EXPECT_EQ(t(n).type, linear) << n;
    for (const char* n : {"ffn_gate", "ffn_up", "ffn_down"})
      EXPECT_EQ(f.find_tensor(gguf_block_tensor(l, n)), nullptr) << n;
    EXPECT_EQ(t("ffn_norm").ne, V{d});
    if (c.model_type == "qwen2_moe") {
      const int64_t S = c.shared_expert_intermediate_size;
      EXPECT_EQ(t("ffn_gate_inp_shexp").ne, V{d});
      EXPECT_EQ(t("ffn_gate_inp_shexp").type, GgmlType::F32);
      EXPECT_EQ(t("ffn_gate_shexp").ne, (V{d, S}));
      EXPECT_EQ(t("ffn_up_shexp").ne, (V{d, S}));
      EXPECT_EQ(t("ffn_down_shexp").ne, (V{S, d}));
      EXPECT_EQ(t("ffn_down_shexp").type, linear);
      EXPECT_EQ(t("attn_q").ne, (V{d, d}));
      EXPECT_EQ(f.tensor(gguf_block_tensor(l, "attn_q", "bias")).ne, V{d});
    } else {
      EXPECT_EQ(f.find_tensor(gguf_block_tensor(l, "ffn_gate_inp_shexp")), nullptr);
    }
    if (c.model_type == "qwen3_moe") {
      EXPECT_EQ(t("attn_q_norm").ne, V{c.head_dim});
    }
  }
  if (g.output_required) {
    EXPECT_EQ(f.tensor("output.weight").ne, (V{d, c.vocab_size}));
  }
}

class GgufMoe : public ::testing::TestWithParam<const char*> {};

TEST_P(GgufMoe, F32ExportStacksTheExpertsAndReadsBackWithTheSameLogits) {
  const std::string family = GetParam();
  const std::string root = test::scratch_dir("gguf_moe_f32_" + family).string();
  const std::string dir = synth_moe(root, moe_config(family));
  const std::string path = root + "/model-f32.gguf";
  const ExportReport rep = export_to(dir, path, "f32");
  const ModelConfig cfg = ModelConfig::load(dir);
  EXPECT_EQ(rep.linear_type, "F32");
  const GgufFile f(path);
  expect_llamacpp_layout(f, cfg, GgmlType::F32);

  // Expert e's matrix is slice e of the stacked tensor, bit for bit.
  const Checkpoint ck = Checkpoint::open(dir);
  const Architecture& arch = cfg.arch();
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l)
    for (LinearRole r : kFfn) {
      const GgufTensor& t = f.tensor(gguf_block_tensor(l, gguf_expert_name(r, false)));
      const auto [out, in] = expert_shape(cfg, r, cfg.moe_intermediate_size);
      for (int64_t e = 0; e < cfg.num_experts; ++e) {
        const Mat m = ck.read_mat(arch.expert_linear_name(l, e, r) + ".weight", out, in);
        EXPECT_EQ(
            std::memcmp(t.data + size_t(e * out * in) * 4, m.data.data(), size_t(out * in) * 4), 0)
            << family << " layer " << l << " " << t.name << " expert " << e;
      }
    }

  // The configuration comes back.
  const ModelConfig gc = config_from_gguf(f);
  EXPECT_EQ(gc.model_type, cfg.model_type);
  EXPECT_EQ(gc.num_experts, cfg.num_experts);
  EXPECT_EQ(gc.num_experts_per_tok, cfg.num_experts_per_tok);
  EXPECT_EQ(gc.moe_intermediate_size, cfg.moe_intermediate_size);
  EXPECT_EQ(gc.shared_expert_intermediate_size, cfg.shared_expert_intermediate_size);
  EXPECT_EQ(gc.norm_topk_prob, cfg.norm_topk_prob);
  EXPECT_EQ(gc.head_dim, cfg.head_dim);
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) EXPECT_TRUE(gc.is_moe_layer(l)) << l;
  EXPECT_EQ(
      gc.parameter_count() - (gc.tie_word_embeddings ? 0 : cfg.vocab_size * cfg.hidden_size),
      cfg.parameter_count() - (cfg.tie_word_embeddings ? 0 : cfg.vocab_size * cfg.hidden_size));

  // The blocks: router, every expert and the shared expert equal the directory's.
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    const BlockWeights a = load_block_f32(ck, cfg, arch, l);
    const BlockWeights b = load_gguf_block(f, gc, l, LoadOptions{WeightForm::F32});
    ASSERT_TRUE(b.is_moe());
    EXPECT_EQ(a.moe.router.data, b.moe.router.data);
    ASSERT_EQ(a.moe.experts.size(), b.moe.experts.size());
    for (size_t e = 0; e < a.moe.experts.size(); ++e) {
      EXPECT_EQ(a.moe.experts[e].gate.w.data, b.moe.experts[e].gate.w.data) << e;
      EXPECT_EQ(a.moe.experts[e].up.w.data, b.moe.experts[e].up.w.data) << e;
      EXPECT_EQ(a.moe.experts[e].down.w.data, b.moe.experts[e].down.w.data) << e;
    }
    EXPECT_EQ(a.moe.shared.present(), b.moe.shared.present());
    if (a.moe.shared.present()) {
      EXPECT_EQ(a.moe.shared.down.w.data, b.moe.shared.down.w.data);
      EXPECT_EQ(a.moe.shared_gate, b.moe.shared_gate);
    }
  }

  // Same logits and perplexity, prefill and decode-sized.
  const Model dm = Model::load(dir, LoadOptions{}), gm = load_gguf_model(path, LoadOptions{});
  for (int64_t T : {5, 64}) {
    const auto tokens = test_tokens(T, cfg.vocab_size);
    EXPECT_LE(logits_rel_diff(dm, gm, tokens), 1e-5) << family << " T=" << T;
    const double a = mean_nll(dm, tokens), b = mean_nll(gm, tokens);
    EXPECT_NEAR(std::exp(b) / std::exp(a), 1.0, 1e-4) << family << " " << a << " vs " << b;
  }

  // awq inspect on the file shows the experts.
  const json ins = inspect_gguf(path);
  EXPECT_EQ(ins["experts"]["count"], cfg.num_experts);
  EXPECT_EQ(ins["experts"]["used"], cfg.num_experts_per_tok);
  EXPECT_EQ(ins["features"]["moe"]["experts"], cfg.num_experts);
  const std::string text = format_gguf_inspection(ins);
  EXPECT_NE(text.find(fmt::format("experts      {} per layer, {} per token", cfg.num_experts,
                                  cfg.num_experts_per_tok)),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("ffn_{gate,up,down}_exps (F32)"), std::string::npos) << text;

  // W4 on a float file: one note per stacked tensor, not per expert.
  std::vector<std::string> notes;
  load_gguf_block(f, gc, 0, LoadOptions{WeightForm::W4}, &notes);
  int exps = 0;
  for (const auto& n : notes) exps += n.find("_exps") != std::string::npos;
  EXPECT_EQ(exps, 3);
}

void expect_same_codes(const GgufFile& f, const ModelConfig& cfg, const std::string& awq_dir,
                       const std::string& family) {
  const ModelConfig gc = config_from_gguf(f);
  const Checkpoint ck = Checkpoint::open(awq_dir);
  const Architecture& arch = cfg.arch();
  LoadOptions w4;
  w4.weights = WeightForm::W4;
  std::vector<std::string> notes;
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    const BlockWeights b = load_gguf_block(f, gc, l, w4, &notes);
    auto check = [&](const Linear& lin, const std::string& name, int64_t out, int64_t in) {
      ASSERT_TRUE(lin.w4) << family << " " << name;
      const QuantizedMatrix q = read_awq_linear(ck, name, *cfg.quant, out, in);
      const kernels::W4Matrix& m = *lin.w4;
      int bad = 0;
      for (int64_t o = 0; o < out; ++o) {
        for (int64_t i = 0; i < in; ++i) bad += m.code(o, i) != q.codes[size_t(o * in + i)];
        for (int64_t g = 0; g < q.n_groups(); ++g) {
          bad += m.scale(o, g) != q.scales[size_t(o * q.n_groups() + g)];
          bad += m.zero(o, g) != q.zeros[size_t(o * q.n_groups() + g)];
        }
      }
      EXPECT_EQ(bad, 0) << family << " " << name;
    };
    for (int64_t e = 0; e < cfg.num_experts; ++e) {
      const FfnWeights& x = b.moe.experts[size_t(e)];
      for (LinearRole r : kFfn) {
        const auto [out, in] = expert_shape(cfg, r, cfg.moe_intermediate_size);
        const Linear& lin = r == LinearRole::Gate ? x.gate : r == LinearRole::Up ? x.up : x.down;
        check(lin, arch.expert_linear_name(l, e, r), out, in);
      }
    }
    if (cfg.shared_expert_intermediate_size > 0) {
      const auto [out, in] =
          expert_shape(cfg, LinearRole::Down, cfg.shared_expert_intermediate_size);
      check(b.moe.shared.down, arch.shared_expert_linear_name(l, LinearRole::Down), out, in);
    }
  }
  EXPECT_TRUE(notes.empty()) << notes[0];
}

TEST_P(GgufMoe, AwqQ4_1ExportKeepsTheExpertCodesAndPerplexity) {
  const std::string family = GetParam();
  const std::string root = test::scratch_dir("gguf_moe_q4_" + family).string();
  const std::string dir = synth_moe(root, moe_config(family));
  const std::string awq_dir = awq_checkpoint(dir, root + "/awq", 32, true);
  const std::string path = root + "/model-q4_1.gguf";
  const ExportReport rep = export_to(awq_dir, path, "auto");
  EXPECT_EQ(rep.linear_type, "Q4_1");
  const ModelConfig cfg = ModelConfig::load(awq_dir);
  const int64_t per_layer = 4 + 3 * cfg.num_experts + (cfg.shared_expert_intermediate_size ? 3 : 0);
  EXPECT_EQ(rep.quantized_linears, cfg.num_hidden_layers * per_layer);
  EXPECT_EQ(rep.float_linears, 0);
  EXPECT_LT(rep.max_min_rounding_steps, 0.01);
  const GgufFile f(path);
  EXPECT_EQ(f.get_int("general.file_type"), 3);
  expect_llamacpp_layout(f, cfg, GgmlType::Q4_1);
  expect_same_codes(f, cfg, awq_dir, family);

  // W4 runs the same codes, scales and zeros: the same perplexity. In f32 form only m = f16(-z·s)
  // rounding differs (sharp std-0.2 models amplify it).
  const auto tokens = test_tokens(48, cfg.vocab_size);
  LoadOptions w4;
  w4.weights = WeightForm::W4;
  const double wa = mean_nll(Model::load(awq_dir, w4), tokens);
  const double wb = mean_nll(load_gguf_model(path, w4), tokens);
  EXPECT_NEAR(std::exp(wb) / std::exp(wa), 1.0, 1e-6) << wa << " vs " << wb;
  const double a = mean_nll(Model::load(awq_dir, LoadOptions{}), tokens);
  const double b = mean_nll(load_gguf_model(path, LoadOptions{}), tokens);
  EXPECT_NEAR(std::exp(b) / std::exp(a), 1.0, 3e-3) << a << " vs " << b;
}

// `awq bench --model X.gguf` on an MoE file: every form builds (f16 converts each expert, not
// only the dense linears a sparse layer lacks) and computes what the GGUF loader computes.
TEST_P(GgufMoe, BenchModelRunsEveryFormLikeTheLoader) {
  const std::string family = GetParam();
  const std::string root = test::scratch_dir("gguf_moe_bench_" + family).string();
  const std::string dir = synth_moe(root, moe_config(family));
  const std::string awq_dir = awq_checkpoint(dir, root + "/awq", 32, true);
  const std::string path = root + "/m.gguf";
  export_to(awq_dir, path, "auto");
  const auto tokens = test_tokens(9, 512);
  for (BenchForm form : {BenchForm::F32, BenchForm::F16, BenchForm::W4, BenchForm::W4A8}) {
    SCOPED_TRACE(bench_form_name(form));
    const BenchModel bm = make_gguf_bench_model(path, form);
    LoadOptions lo;
    lo.weights = is_w4(form) ? WeightForm::W4 : WeightForm::F32;
    lo.w4a8 = form == BenchForm::W4A8;
    const Model ref = load_gguf_model(path, lo);
    BenchSession bs(bm, 16);
    Model::Session rs = ref.session(16);
    for (size_t n : {size_t(7), size_t(1), size_t(1)}) {
      const std::span<const int32_t> chunk(tokens.data() + bs.pos(), n);
      const std::vector<float> a = bs.feed(chunk), b = rs.feed(chunk);
      ASSERT_EQ(a.size(), b.size());
      // f16 rows move each weight by up to half an f16 ulp (relative to the largest logit: a
      // routing this near a tie amplifies it); the other forms are the same arithmetic.
      const double tol = form == BenchForm::F16 ? 1e-2 : 1e-5;
      double top = 0;
      for (float v : b) top = std::max(top, double(std::fabs(v)));
      for (size_t i = 0; i < a.size(); ++i)
        ASSERT_NEAR(a[i], b[i], tol * (1 + top)) << "logit " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Families, GgufMoe, ::testing::ValuesIn(kMoeFamilies),
                         [](const auto& info) { return std::string(info.param); });

TEST(GgufMoeExport, SymmetricAwqBecomesQ4_0WithTheSameCodes) {
  const std::string root = test::scratch_dir("gguf_moe_q4_0").string();
  const std::string dir = synth_moe(root, moe_config("mixtral"));
  const std::string awq_dir = awq_checkpoint(dir, root + "/awq", 64, false);
  const std::string path = root + "/model-q4_0.gguf";
  const ExportReport rep = export_to(awq_dir, path, "auto");
  EXPECT_EQ(rep.linear_type, "Q4_0");
  const ModelConfig cfg = ModelConfig::load(awq_dir);
  const GgufFile f(path);
  expect_llamacpp_layout(f, cfg, GgmlType::Q4_0);
  expect_same_codes(f, cfg, awq_dir, "mixtral");
  const auto tokens = test_tokens(48, cfg.vocab_size);
  LoadOptions w4;
  w4.weights = WeightForm::W4;
  const double wa = mean_nll(Model::load(awq_dir, w4), tokens);
  const double wb = mean_nll(load_gguf_model(path, w4), tokens);
  EXPECT_NEAR(std::exp(wb) / std::exp(wa), 1.0, 1e-6) << wa << " vs " << wb;
}

// A stacked tensor has one type: experts quantized in part cannot be Q4 without re-quantizing
// (an error naming the tensor); as F16 they export and read back.
TEST(GgufMoeExport, PartlyQuantizedExpertsAreAnErrorForQ4) {
  const std::string root = test::scratch_dir("gguf_moe_mixed").string();
  const std::string dir = synth_moe(root, moe_config("mixtral"));
  const ModelConfig c0 = ModelConfig::load(dir);
  const std::string awq_dir = awq_checkpoint(dir, root + "/awq", 32, true,
                                             {c0.arch().expert_linear_name(1, 2, LinearRole::Up)});
  try {
    export_to(awq_dir, root + "/x.gguf", "q4_1");
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("blk.1.ffn_up_exps.weight"), std::string::npos) << m;
    EXPECT_NE(m.find("re-quantizes"), std::string::npos) << m;
  }
  EXPECT_FALSE(fs::exists(root + "/x.gguf"));
  const std::string path = root + "/m.gguf";
  export_to(awq_dir, path, "f16");
  const auto tokens = test_tokens(40, c0.vocab_size);
  const double a = mean_nll(Model::load(awq_dir, LoadOptions{}), tokens);
  const double b = mean_nll(load_gguf_model(path, LoadOptions{}), tokens);
  EXPECT_NEAR(std::exp(b) / std::exp(a), 1.0, 3e-3) << a << " vs " << b;
}

void expect_error(const std::string& name, const json& cfg,
                  std::initializer_list<std::string> frags) {
  const std::string root = test::scratch_dir("gguf_moe_err_" + name).string();
  try {
    const std::string dir = synth_moe(root, cfg);
    export_to(dir, root + "/x.gguf", "f32");
    FAIL() << "no error for " << name;
  } catch (const Error& e) {
    for (const auto& frag : frags)
      EXPECT_NE(std::string(e.what()).find(frag), std::string::npos)
          << "'" << frag << "' not in: " << e.what();
  }
  EXPECT_FALSE(fs::exists(root + "/x.gguf"));
}

TEST(GgufMoeExport, WhatLlamaCppCannotHoldIsAClearError) {
  json dense = moe_config("qwen2_moe");
  dense["mlp_only_layers"] = {1};
  expect_error("mlp_only", dense, {"layer 1", "mlp_only_layers", "qwen2moe", "every layer"});
  json step = moe_config("qwen3_moe");
  step["decoder_sparse_step"] = 2;
  expect_error("step", step, {"layer 0", "decoder_sparse_step 2", "qwen3moe"});
  json norm = moe_config("qwen2_moe");
  norm["norm_topk_prob"] = true;
  expect_error("qwen2_norm", norm, {"norm_topk_prob is true", "qwen2moe", "never"});
  json nonorm = moe_config("qwen3_moe");
  nonorm["norm_topk_prob"] = false;
  expect_error("qwen3_norm", nonorm, {"norm_topk_prob is false", "qwen3moe", "always"});
  json none = moe_config("qwen3_moe");
  none["num_experts"] = 0;
  expect_error("no_experts", none, {"num_experts is 0", "qwen3moe"});
}

// The GGUF's hard-coded routing reads back as such: a qwen2moe file never renormalizes, whatever
// config a reader would assume; a llama file without experts is not Mixtral.
TEST(GgufMoeExport, ArchitectureLookupTellsMixtralFromLlama) {
  EXPECT_EQ(gguf_arch_for("mixtral").name, "llama");
  EXPECT_TRUE(gguf_arch_for("mixtral").moe);
  EXPECT_FALSE(gguf_arch_for("llama").moe);
  EXPECT_EQ(gguf_arch_named("llama", "f", true).model_type, "mixtral");
  EXPECT_EQ(gguf_arch_named("llama", "f", false).model_type, "llama");
  EXPECT_EQ(gguf_arch_named("qwen2moe", "f", true).model_type, "qwen2_moe");
  EXPECT_FALSE(gguf_arch_named("qwen2moe", "f").moe_renormalizes);
  EXPECT_TRUE(gguf_arch_named("qwen3moe", "f").moe_renormalizes);
  EXPECT_EQ(gguf_expert_name(LinearRole::Down, false), "ffn_down_exps");
  EXPECT_EQ(gguf_expert_name(LinearRole::Gate, true), "ffn_gate_shexp");
  EXPECT_THROW(gguf_expert_name(LinearRole::Q, false), Error);
}

}  // namespace
}  // namespace awq::gguf
