// export-gguf and GGUF reading for every family awq.cpp runs: a tiny synthetic model of each
// (f32, weights large enough that every feature moves the logits) exported as F32 reads back with
// the same logits; an AWQ checkpoint of it (RTN codes, fused tensors for Phi-3) exported as Q4_1
// reads back with the same 4-bit codes and perplexity; the metadata and tensors are the names,
// types and ne order llama.cpp's loader asks for; and what an architecture cannot hold is an error
// naming the config key.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <set>

#include "base/error.h"
#include "base/files.h"
#include "formats/checkpoint.h"
#include "formats/checkpoint_writer.h"
#include "gguf/export.h"
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

// Tiny configs with each family's features switched on (and placed where a short sequence sees
// them: windows of 8-16 tokens, a llama3 band inside 16 frequencies, a global Gemma-3 layer).
json family_config(const std::string& family) {
  json j = {{"hidden_size", 128},
            {"intermediate_size", 256},
            {"num_hidden_layers", 2},
            {"num_attention_heads", 4},
            {"num_key_value_heads", 2},
            {"vocab_size", 512},
            {"max_position_embeddings", 256},
            {"rms_norm_eps", 1e-5},
            {"rope_theta", 10000.0},
            {"tie_word_embeddings", false},
            {"bos_token_id", 1},
            {"eos_token_id", 2}};
  if (family == "llama") {
    j["model_type"] = "llama";
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", 8.0},
                         {"low_freq_factor", 1.0},
                         {"high_freq_factor", 4.0},
                         {"original_max_position_embeddings", 64}};
  } else if (family == "mistral") {  // Mistral-Nemo's explicit head_dim (nh·d ≠ hidden)
    j["model_type"] = "mistral";
    j["head_dim"] = 64;
    j["sliding_window"] = nullptr;
    j["rope_theta"] = 1e6;
  } else if (family == "qwen3") {
    j["model_type"] = "qwen3";
    j["head_dim"] = 64;
    j["tie_word_embeddings"] = true;
    j["rope_theta"] = 1e6;
  } else if (family == "gemma") {
    j["model_type"] = "gemma";
    j["num_key_value_heads"] = 1;
    j["head_dim"] = 64;
    j["tie_word_embeddings"] = true;
    j["hidden_act"] = "gelu_pytorch_tanh";
  } else if (family == "gemma2") {
    j["model_type"] = "gemma2";
    j["head_dim"] = 32;
    j["query_pre_attn_scalar"] = 32;
    j["sliding_window"] = 8;
    j["attn_logit_softcapping"] = 50.0;
    j["final_logit_softcapping"] = 30.0;
    j["hidden_activation"] = "gelu_pytorch_tanh";
    j["tie_word_embeddings"] = true;
  } else if (family == "gemma3") {
    j["model_type"] = "gemma3_text";
    j["num_hidden_layers"] = 7;  // layer 5 is global (pattern 6)
    j["head_dim"] = 32;
    j["query_pre_attn_scalar"] = 32;
    j["sliding_window"] = 8;
    j["sliding_window_pattern"] = 6;
    j["rope_theta"] = 1e6;
    j["rope_local_base_freq"] = 10000.0;
    j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 8.0}};
    j["hidden_activation"] = "gelu_pytorch_tanh";
    j["tie_word_embeddings"] = true;
  } else if (family == "phi3") {
    j["model_type"] = "phi3";
    j["num_key_value_heads"] = 4;
    j["partial_rotary_factor"] = 0.5;
    j["original_max_position_embeddings"] = 64;
    j["sliding_window"] = 16;
    std::vector<double> sf, lf;
    for (int i = 0; i < 8; ++i) {  // rotary_dim 16 → 8 factors
      sf.push_back(1.0 + 0.05 * i);
      lf.push_back(1.0 + 2.0 * i);
    }
    j["rope_scaling"] = {{"type", "longrope"}, {"short_factor", sf}, {"long_factor", lf}};
  }
  j["architectures"] = {find_architecture(j["model_type"])->hf_class};
  return j;
}

const char* const kFamilies[] = {"llama", "mistral", "qwen3", "gemma", "gemma2", "gemma3", "phi3"};

struct Dirs {
  std::string root, dir, awq_dir;
};

std::string write_config(const std::string& root, const json& j) {
  const std::string p = root + "/source-config.json";
  write_text_file_atomic(p, j.dump(2));
  return p;
}

// A synthetic f32 model of `family` (awq synth with --weight-std 0.2 --norm-noise 0.2).
std::string synth_family(const std::string& root, const json& cfg) {
  SynthOptions o;
  o.shape.clear();
  o.config_path = write_config(root, cfg);
  o.out_dir = root + "/model";
  o.dtype = DType::F32;
  o.weight_std = 0.2f;
  o.norm_noise = 0.2f;
  o.seed = 11;
  write_synthetic_model(o);
  return o.out_dir;
}

// An AWQ checkpoint of `src`: every stored linear (a fused q|k|v or gate|up tensor as one) RTN
// quantized to 4 bits with zero points in the AutoAWQ GEMM layout; everything else copied.
std::string awq_checkpoint(const std::string& src, const std::string& out_dir, int group) {
  ModelConfig cfg = ModelConfig::load(src);
  const Architecture& arch = cfg.arch();
  const Checkpoint ck = Checkpoint::open(src);
  std::set<std::string> linears;
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l)
    for (LinearRole r : kAllLinearRoles) linears.insert(arch.stored_linear_name(l, r) + ".weight");
  StagedDir out(out_dir);
  CheckpointWriter w(out);
  for (const std::string& name : ck.names()) {
    const TensorInfo& t = ck.get(name);
    if (linears.count(name)) {
      const Mat m = ck.read_mat(name, t.shape[0], t.shape[1]);
      QuantSpec spec;
      spec.group_size = group;
      const std::string base = name.substr(0, name.size() - 7);
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
  cfg.quant = q;
  write_text_file_atomic(out.path("config.json").string(), cfg.to_json().dump(2) + "\n");
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    std::filesystem::copy_file(std::filesystem::path(src) / f, out.path(f));
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
  uint64_t x = 12345;
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

// Largest |a - b| over the logits, relative to the largest |a|.
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

// The tensor names, types and ne llama.cpp's loader asks for (src/llama-model.cpp).
void expect_llamacpp_layout(const GgufFile& f, const ModelConfig& c, const std::string& family) {
  const GgufArch& g = gguf_arch_for(c.model_type);
  const std::string a = g.name + ".";
  EXPECT_EQ(f.get_string("general.architecture"), g.name);
  const int64_t d = c.hidden_size, hd = c.head_dim;
  EXPECT_EQ(f.get_int(a + "embedding_length"), d);
  EXPECT_EQ(f.get_int(a + "block_count"), c.num_hidden_layers);
  EXPECT_EQ(f.get_int(a + "attention.head_count_kv"), c.num_key_value_heads);
  EXPECT_EQ(f.find(a + "rope.dimension_count")->type(), ValueType::U32);
  EXPECT_EQ(f.get_int(a + "rope.dimension_count"), c.rotary_dim);
  EXPECT_EQ(f.find(a + "rope.freq_base")->type(), ValueType::F32);
  if (hd * c.num_attention_heads != d || family.rfind("gemma", 0) == 0 || family == "qwen3") {
    EXPECT_EQ(f.get_int(a + "attention.key_length"), hd);
    EXPECT_EQ(f.get_int(a + "attention.value_length"), hd);
  }
  const int64_t q = c.q_dim(), kv = c.kv_dim(), I = c.intermediate_size;
  auto ne = [&](const std::string& n) { return f.tensor(n).ne; };
  using V = std::vector<int64_t>;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    auto t = [&](const char* what) { return gguf_block_tensor(l, what); };
    EXPECT_EQ(ne(t("attn_norm")), V{d});
    EXPECT_EQ(ne(t("ffn_norm")), V{d});
    EXPECT_EQ(ne(t("ffn_down")), (V{I, d}));
    EXPECT_EQ(ne(t("attn_output")), (V{q, d}));
    if (g.fused) {
      EXPECT_EQ(ne(t("attn_qkv")), (V{d, q + 2 * kv}));
      EXPECT_EQ(ne(t("ffn_up")), (V{d, 2 * I}));
      EXPECT_EQ(f.find_tensor(t("ffn_gate")), nullptr);
      EXPECT_EQ(f.find_tensor(t("attn_q")), nullptr);
    } else {
      EXPECT_EQ(ne(t("attn_q")), (V{d, q}));
      EXPECT_EQ(ne(t("attn_k")), (V{d, kv}));
      EXPECT_EQ(ne(t("attn_v")), (V{d, kv}));
      EXPECT_EQ(ne(t("ffn_gate")), (V{d, I}));
      EXPECT_EQ(ne(t("ffn_up")), (V{d, I}));
    }
    if (g.qk_norm) {
      EXPECT_EQ(ne(t("attn_q_norm")), V{hd});
      EXPECT_EQ(ne(t("attn_k_norm")), V{hd});
    } else {
      EXPECT_EQ(f.find_tensor(t("attn_q_norm")), nullptr);
    }
    if (g.post_norms) {
      EXPECT_EQ(ne(t("post_attention_norm")), V{d});
      EXPECT_EQ(ne(t("post_ffw_norm")), V{d});
      EXPECT_EQ(f.tensor(t("post_ffw_norm")).type, GgmlType::F32);
    }
  }
  EXPECT_EQ(ne("token_embd.weight"), (V{d, c.vocab_size}));
  EXPECT_EQ(ne("output_norm.weight"), V{d});
  if (g.output_is_embd) {
    EXPECT_EQ(f.find_tensor("output.weight"), nullptr);
  }
  if (g.output_required) {
    EXPECT_EQ(ne("output.weight"), (V{d, c.vocab_size}));
  }
  // Family keys.
  if (family == "llama") {
    EXPECT_EQ(ne("rope_freqs.weight"), V{hd / 2});
    EXPECT_EQ(f.tensor("rope_freqs.weight").type, GgmlType::F32);
    EXPECT_EQ(f.find(a + "rope.scaling.type"), nullptr);  // llama3: the table only
  }
  if (family == "gemma2") {
    EXPECT_EQ(f.find(a + "attn_logit_softcapping")->type(), ValueType::F32);
    EXPECT_FLOAT_EQ(float(f.get_float(a + "attn_logit_softcapping")), 50.0f);
    EXPECT_FLOAT_EQ(float(f.get_float(a + "final_logit_softcapping")), 30.0f);
    EXPECT_EQ(f.find(a + "attention.sliding_window")->type(), ValueType::U32);
    EXPECT_EQ(f.get_int(a + "attention.sliding_window"), 8);
  }
  if (family == "gemma3") {
    EXPECT_EQ(f.get_int(a + "attention.sliding_window"), 8);
    EXPECT_FLOAT_EQ(float(f.get_float(a + "rope.freq_base")), 1e6f);
    EXPECT_EQ(f.get_string(a + "rope.scaling.type"), "linear");
    EXPECT_FLOAT_EQ(float(f.get_float(a + "rope.scaling.factor")), 8.0f);
  }
  if (family == "phi3") {
    EXPECT_EQ(ne("rope_factors_long.weight"), V{c.rotary_dim / 2});
    EXPECT_EQ(ne("rope_factors_short.weight"), V{c.rotary_dim / 2});
    EXPECT_EQ(f.find(a + "rope.scaling.attn_factor")->type(), ValueType::F32);
    EXPECT_NEAR(f.get_float(a + "rope.scaling.attn_factor"),
                std::sqrt(1 + std::log(4.0) / std::log(64.0)), 1e-6);
    EXPECT_EQ(f.get_int(a + "rope.scaling.original_context_length"), 64);
    EXPECT_EQ(f.get_int(a + "attention.sliding_window"), 16);
  }
}

class GgufFamily : public ::testing::TestWithParam<const char*> {};

TEST_P(GgufFamily, F32ExportReadsBackWithTheSameLogits) {
  const std::string family = GetParam();
  const std::string root = test::scratch_dir("gguf_family_f32_" + family).string();
  const json cfgj = family_config(family);
  const std::string dir = synth_family(root, cfgj);
  const std::string path = root + "/model-f32.gguf";
  const ExportReport rep = export_to(dir, path, "f32");
  const ModelConfig cfg = ModelConfig::load(dir);
  EXPECT_EQ(rep.arch, gguf_arch_for(cfg.model_type).name);
  EXPECT_EQ(rep.linear_type, "F32");
  const GgufFile f(path);
  expect_llamacpp_layout(f, cfg, family);

  // The configuration comes back.
  const ModelConfig gc = config_from_gguf(f);
  EXPECT_EQ(gc.model_type, family == "mistral" ? "llama" : cfg.model_type);
  EXPECT_EQ(gc.head_dim, cfg.head_dim);
  EXPECT_EQ(gc.rotary_dim, cfg.rotary_dim);
  EXPECT_EQ(gc.rope_scaling.type, cfg.rope_scaling.type);
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) EXPECT_EQ(gc.window(l), cfg.window(l)) << l;
  EXPECT_FLOAT_EQ(gc.attn_scale, cfg.attn_scale);
  EXPECT_FLOAT_EQ(gc.attn_softcap, cfg.attn_softcap);
  EXPECT_FLOAT_EQ(gc.final_softcap, cfg.final_softcap);
  EXPECT_FLOAT_EQ(gc.embed_scale, cfg.embed_scale);
  EXPECT_EQ(gc.activation, cfg.activation);
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    std::vector<double> f0, f1;
    double a0 = 0, a1 = 0;
    rope_frequencies(cfg.rope(l), 40, f0, a0);
    rope_frequencies(gc.rope(l), 40, f1, a1);
    ASSERT_EQ(f0.size(), f1.size());
    for (size_t i = 0; i < f0.size(); ++i) EXPECT_NEAR(f1[i] / f0[i], 1.0, 1e-6) << i;
    EXPECT_NEAR(a1, a0, 1e-6);
  }

  // Same logits and perplexity, short (phi3: short factors) and past Phi-3's original context.
  const Model dm = Model::load(dir, LoadOptions{}), gm = load_gguf_model(path, LoadOptions{});
  for (int64_t T : {40, 100}) {
    const auto tokens = test_tokens(T, cfg.vocab_size);
    EXPECT_LE(logits_rel_diff(dm, gm, tokens), 1e-5) << family << " T=" << T;
    const double a = mean_nll(dm, tokens), b = mean_nll(gm, tokens);
    EXPECT_NEAR(std::exp(b) / std::exp(a), 1.0, 1e-4) << family << " " << a << " vs " << b;
  }
}

TEST_P(GgufFamily, AwqQ4_1ExportKeepsTheCodesAndPerplexity) {
  const std::string family = GetParam();
  const std::string root = test::scratch_dir("gguf_family_q4_" + family).string();
  const std::string dir = synth_family(root, family_config(family));
  const std::string awq_dir = awq_checkpoint(dir, root + "/awq", 64);
  const std::string path = root + "/model-q4_1.gguf";
  const ExportReport rep = export_to(awq_dir, path, "q4_1");
  EXPECT_EQ(rep.linear_type, "Q4_1");
  const ModelConfig cfg = ModelConfig::load(awq_dir);
  const Architecture& arch = cfg.arch();
  EXPECT_EQ(rep.quantized_linears, cfg.num_hidden_layers * (arch.fused_qkv() ? 4 : 7));
  EXPECT_LT(rep.max_min_rounding_steps, 0.01);
  const GgufFile f(path);
  EXPECT_EQ(f.get_int("general.file_type"), 3);
  expect_llamacpp_layout(f, cfg, family);
  const ModelConfig gc = config_from_gguf(f);
  const Checkpoint ck = Checkpoint::open(awq_dir);

  // W4: every role's codes, scales and zeros as the checkpoint holds them (fused tensors split).
  LoadOptions w4;
  w4.weights = WeightForm::W4;
  std::vector<std::string> notes;
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    const BlockWeights b = load_gguf_block(f, gc, l, w4, &notes);
    for (LinearRole r : kAllLinearRoles) {
      const auto [out, in] = linear_shape(cfg, r);
      const StoredRows rows = stored_rows(cfg, arch, r);
      const QuantizedMatrix all =
          read_awq_linear(ck, arch.stored_linear_name(l, r), *cfg.quant, rows.rows, in);
      const QuantizedMatrix q = slice_rows(all, rows.row0, out);
      ASSERT_TRUE(b[r].w4) << family << " " << linear_role_name(r);
      const kernels::W4Matrix& m = *b[r].w4;
      int bad = 0;
      for (int64_t o = 0; o < out; ++o) {
        for (int64_t i = 0; i < in; ++i) bad += m.code(o, i) != q.codes[size_t(o * in + i)];
        for (int64_t g = 0; g < q.n_groups(); ++g) {
          bad += m.scale(o, g) != q.scales[size_t(o * q.n_groups() + g)];
          bad += m.zero(o, g) != q.zeros[size_t(o * q.n_groups() + g)];
        }
      }
      EXPECT_EQ(bad, 0) << family << " layer " << l << " " << linear_role_name(r);
    }
  }
  EXPECT_TRUE(notes.empty()) << notes[0];

  // Dequantized (f32 form): the checkpoint's weights up to m = f16(-z·s), at most half an f16
  // ulp of m per weight (the only lossy part of AWQ -> Q4_1).
  double worst = 0;
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    const BlockWeights b = load_gguf_block(f, gc, l, LoadOptions{WeightForm::F32}, nullptr);
    for (LinearRole r : kAllLinearRoles) {
      const auto [out, in] = linear_shape(cfg, r);
      const StoredRows rows = stored_rows(cfg, arch, r);
      const std::string name = arch.stored_linear_name(l, r);
      const QuantizedMatrix q =
          slice_rows(read_awq_linear(ck, name, *cfg.quant, rows.rows, in), rows.row0, out);
      for (int64_t o = 0; o < out; ++o)
        for (int64_t i = 0; i < in; ++i) {
          const int64_t g = o * q.n_groups() + i / q.group;
          const double bound =
              std::fabs(double(q.zeros[size_t(g)]) * q.scales[size_t(g)]) * std::ldexp(1.0, -11);
          const double diff = std::fabs(double(b[r].w.at(o, i)) - double(q.dequant(o, i)));
          if (bound > 0)
            worst = std::max(worst, diff / bound);
          else
            EXPECT_EQ(diff, 0.0);
        }
    }
  }
  EXPECT_LE(worst, 1.0 + 1e-6) << family;

  // Perplexity. W4 runs the same codes, scales and zeros: the same numbers. In f32 form m's
  // rounding moves it a little (these sharp std-0.2 models amplify it to ~1e-3).
  const auto tokens = test_tokens(48, cfg.vocab_size);
  const double wa = mean_nll(Model::load(awq_dir, w4), tokens);
  const double wb = mean_nll(load_gguf_model(path, w4), tokens);
  EXPECT_NEAR(wb, wa, 1e-6 * wa);
  const double a = mean_nll(Model::load(awq_dir, LoadOptions{}), tokens);
  const double b = mean_nll(load_gguf_model(path, LoadOptions{}), tokens);
  EXPECT_NEAR(std::exp(b) / std::exp(a), 1.0, 3e-3) << a << " vs " << b;
}

INSTANTIATE_TEST_SUITE_P(Families, GgufFamily, ::testing::ValuesIn(kFamilies),
                         [](const auto& info) { return std::string(info.param); });

void expect_error(const std::string& name, json cfg, std::initializer_list<std::string> frags) {
  const std::string root = test::scratch_dir("gguf_family_err_" + name).string();
  try {
    const std::string dir = synth_family(root, cfg);
    export_to(dir, root + "/x.gguf", "f32");
    FAIL() << "no error for " << name;
  } catch (const Error& e) {
    for (const auto& frag : frags)
      EXPECT_NE(std::string(e.what()).find(frag), std::string::npos)
          << "'" << frag << "' not in: " << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(root + "/x.gguf"));
}

TEST(GgufFamilies, WhatTheArchitectureCannotHoldIsAClearError) {
  json yarn = family_config("llama");
  yarn["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  expect_error("yarn", yarn, {"rope_scaling", "'yarn'", "llama"});
  json dynamic = family_config("qwen3");
  dynamic["rope_scaling"] = {{"rope_type", "dynamic"}, {"factor", 2.0}};
  expect_error("dynamic", dynamic, {"rope_scaling", "'dynamic'", "NTK"});
  json llama3 = family_config("qwen3");
  llama3["rope_scaling"] = family_config("llama")["rope_scaling"];
  expect_error("llama3_qwen3", llama3, {"rope_scaling", "'llama3'", "rope_freqs", "qwen3"});
  json scalar = family_config("gemma2");
  scalar["query_pre_attn_scalar"] = 256;
  expect_error("gemma2_scalar", scalar, {"query_pre_attn_scalar", "gemma2"});
  json nocap = family_config("gemma2");
  nocap["attn_logit_softcapping"] = nullptr;
  expect_error("gemma2_nocap", nocap, {"attn_logit_softcapping", "always soft-caps"});
  json untied = family_config("gemma");
  untied["tie_word_embeddings"] = false;
  expect_error("gemma_untied", untied, {"tie_word_embeddings", "token_embd"});
  json phi_hd = family_config("phi3");
  phi_hd["head_dim"] = 64;
  phi_hd["rope_scaling"] = nullptr;
  expect_error("phi3_head_dim", phi_hd, {"head_dim", "phi3"});
  json g3 = family_config("gemma3");
  g3["sliding_window"] = nullptr;
  expect_error("gemma3_window", g3, {"sliding_window", "gemma3"});
}

TEST(GgufFamilies, WarnsWhereLlamaCppHardCodesSomethingElse) {
  const std::string root = test::scratch_dir("gguf_family_warn").string();
  json g3 = family_config("gemma3");
  g3["rope_local_base_freq"] = 20000.0;
  const std::string dir = synth_family(root, g3);
  const ExportReport rep = export_to(dir, root + "/g3.gguf", "f32");
  std::string all;
  for (const auto& w : rep.warnings) all += w + "\n";
  EXPECT_NE(all.find("rope_local_base_freq"), std::string::npos) << all;
  EXPECT_NE(all.find("newer than c392e509"), std::string::npos) << all;
  // Read back as llama.cpp runs it: the local base is 10000.
  EXPECT_FLOAT_EQ(config_from_gguf(GgufFile(root + "/g3.gguf")).rope(0).theta, 10000.0f);
}

// A llama3 table that the standard parameters (low 1, high 4) do not describe still reads back
// to the same frequencies.
TEST(GgufFamilies, Llama3TableWithOtherBandParametersReadsBack) {
  const std::string root = test::scratch_dir("gguf_family_llama3b").string();
  json j = family_config("llama");
  j["rope_scaling"]["low_freq_factor"] = 2.0;
  j["rope_scaling"]["high_freq_factor"] = 16.0;
  j["rope_scaling"]["original_max_position_embeddings"] = 256;
  const std::string dir = synth_family(root, j);
  export_to(dir, root + "/m.gguf", "f32");
  const ModelConfig c = ModelConfig::load(dir);
  const ModelConfig g = config_from_gguf(GgufFile(root + "/m.gguf"));
  EXPECT_EQ(g.rope_scaling.type, "llama3");
  std::vector<double> f0, f1;
  double a0 = 0, a1 = 0;
  rope_frequencies(c.rope(0), 10, f0, a0);
  rope_frequencies(g.rope(0), 10, f1, a1);
  for (size_t i = 0; i < f0.size(); ++i) EXPECT_NEAR(f1[i] / f0[i], 1.0, 1e-6) << i;
}

}  // namespace
}  // namespace awq::gguf
