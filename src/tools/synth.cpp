#include "tools/synth.h"

#include <filesystem>
#include <functional>
#include <map>

#include "base/error.h"
#include "base/files.h"
#include "base/thread_pool.h"
#include "formats/checkpoint_writer.h"
#include "model/architecture.h"
#include "model/block.h"
#include "tokenizer/tokenizer.h"

namespace awq {
namespace fs = std::filesystem;
namespace {

struct Preset {
  const char* name;
  const char* config;  // config.json of the real model (its shape and features); weights random
};

// The real models' config.json values that decide shapes and the forward (vocabulary, RoPE,
// windows, soft-caps); everything else takes the family's defaults. phi-4-mini's longrope factor
// lists have the real length (48) but not the real values.
constexpr Preset kPresets[] = {
    {"tiny",
     R"({"model_type":"llama","hidden_size":128,"intermediate_size":384,"num_hidden_layers":2,
      "num_attention_heads":4,"num_key_value_heads":2,"vocab_size":512,"max_position_embeddings":512,
      "rope_theta":10000.0,"rms_norm_eps":1e-5,"tie_word_embeddings":false})"},
    {"smollm-135m", R"({"model_type":"llama","hidden_size":576,"intermediate_size":1536,
      "num_hidden_layers":30,"num_attention_heads":9,"num_key_value_heads":3,"vocab_size":49152,
      "max_position_embeddings":2048,"rope_theta":10000.0,"rms_norm_eps":1e-5,
      "tie_word_embeddings":true})"},
    {"qwen2.5-0.5b", R"({"model_type":"qwen2","hidden_size":896,"intermediate_size":4864,
      "num_hidden_layers":24,"num_attention_heads":14,"num_key_value_heads":2,"vocab_size":151936,
      "max_position_embeddings":32768,"rope_theta":1000000.0,"rms_norm_eps":1e-6,
      "tie_word_embeddings":true})"},
    {"tinyllama-1.1b", R"({"model_type":"llama","hidden_size":2048,"intermediate_size":5632,
      "num_hidden_layers":22,"num_attention_heads":32,"num_key_value_heads":4,"vocab_size":32000,
      "max_position_embeddings":2048,"rope_theta":10000.0,"rms_norm_eps":1e-5,
      "tie_word_embeddings":false})"},
    {"llama-2-7b", R"({"model_type":"llama","hidden_size":4096,"intermediate_size":11008,
      "num_hidden_layers":32,"num_attention_heads":32,"num_key_value_heads":32,"vocab_size":32000,
      "max_position_embeddings":4096,"rope_theta":10000.0,"rms_norm_eps":1e-5,
      "tie_word_embeddings":false})"},
    {"llama-3.2-1b", R"({"model_type":"llama","hidden_size":2048,"intermediate_size":8192,
      "num_hidden_layers":16,"num_attention_heads":32,"num_key_value_heads":8,"head_dim":64,
      "vocab_size":128256,"max_position_embeddings":131072,"rope_theta":500000.0,
      "rms_norm_eps":1e-5,"tie_word_embeddings":true,"rope_scaling":{"rope_type":"llama3",
      "factor":32.0,"low_freq_factor":1.0,"high_freq_factor":4.0,
      "original_max_position_embeddings":8192}})"},
    {"llama-3.1-8b", R"({"model_type":"llama","hidden_size":4096,"intermediate_size":14336,
      "num_hidden_layers":32,"num_attention_heads":32,"num_key_value_heads":8,"vocab_size":128256,
      "max_position_embeddings":131072,"rope_theta":500000.0,"rms_norm_eps":1e-5,
      "tie_word_embeddings":false,"rope_scaling":{"rope_type":"llama3","factor":8.0,
      "low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192}})"},
    {"llama-3.1-70b", R"({"model_type":"llama","hidden_size":8192,"intermediate_size":28672,
      "num_hidden_layers":80,"num_attention_heads":64,"num_key_value_heads":8,"head_dim":128,
      "vocab_size":128256,"max_position_embeddings":131072,"rope_theta":500000.0,
      "rms_norm_eps":1e-5,"tie_word_embeddings":false,"rope_scaling":{"rope_type":"llama3",
      "factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,
      "original_max_position_embeddings":8192}})"},
    {"qwen3-0.6b", R"({"model_type":"qwen3","hidden_size":1024,"intermediate_size":3072,
      "num_hidden_layers":28,"num_attention_heads":16,"num_key_value_heads":8,"head_dim":128,
      "vocab_size":151936,"max_position_embeddings":40960,"rope_theta":1000000.0,
      "rms_norm_eps":1e-6,"tie_word_embeddings":true,"use_sliding_window":false,
      "max_window_layers":28})"},
    {"qwen3-8b", R"({"model_type":"qwen3","hidden_size":4096,"intermediate_size":12288,
      "num_hidden_layers":36,"num_attention_heads":32,"num_key_value_heads":8,"head_dim":128,
      "vocab_size":151936,"max_position_embeddings":40960,"rope_theta":1000000.0,
      "rms_norm_eps":1e-6,"tie_word_embeddings":false,"use_sliding_window":false,
      "max_window_layers":36})"},
    {"gemma-2-2b", R"({"model_type":"gemma2","hidden_size":2304,"intermediate_size":9216,
      "num_hidden_layers":26,"num_attention_heads":8,"num_key_value_heads":4,"head_dim":256,
      "vocab_size":256000,"max_position_embeddings":8192,"rope_theta":10000.0,"rms_norm_eps":1e-6,
      "query_pre_attn_scalar":256,"sliding_window":4096,"final_logit_softcapping":30.0,
      "attn_logit_softcapping":50.0,"hidden_activation":"gelu_pytorch_tanh",
      "tie_word_embeddings":true})"},
    {"gemma-3-1b", R"({"model_type":"gemma3_text","hidden_size":1152,"intermediate_size":6912,
      "num_hidden_layers":26,"num_attention_heads":4,"num_key_value_heads":1,"head_dim":256,
      "vocab_size":262144,"max_position_embeddings":32768,"rope_theta":1000000.0,
      "rope_local_base_freq":10000.0,"sliding_window":512,"sliding_window_pattern":6,
      "query_pre_attn_scalar":256,"rms_norm_eps":1e-6,"hidden_activation":"gelu_pytorch_tanh",
      "tie_word_embeddings":true})"},
    {"gemma-3-4b", R"({"model_type":"gemma3_text","hidden_size":2560,"intermediate_size":10240,
      "num_hidden_layers":34,"num_attention_heads":8,"num_key_value_heads":4,"head_dim":256,
      "vocab_size":262208,"max_position_embeddings":131072,"rope_theta":1000000.0,
      "rope_local_base_freq":10000.0,"sliding_window":1024,"sliding_window_pattern":6,
      "rope_scaling":{"rope_type":"linear","factor":8.0},"query_pre_attn_scalar":256,
      "rms_norm_eps":1e-6,"hidden_activation":"gelu_pytorch_tanh","tie_word_embeddings":true})"},
    {"phi-3-mini", R"({"model_type":"phi3","hidden_size":3072,"intermediate_size":8192,
      "num_hidden_layers":32,"num_attention_heads":32,"num_key_value_heads":32,"vocab_size":32064,
      "max_position_embeddings":4096,"original_max_position_embeddings":4096,
      "rope_theta":10000.0,"rms_norm_eps":1e-5,"sliding_window":2047,
      "tie_word_embeddings":false})"},
    {"phi-4-mini", R"({"model_type":"phi3","hidden_size":3072,"intermediate_size":8192,
      "num_hidden_layers":32,"num_attention_heads":24,"num_key_value_heads":8,"vocab_size":200064,
      "max_position_embeddings":131072,"original_max_position_embeddings":4096,
      "partial_rotary_factor":0.75,"rope_theta":10000.0,"rms_norm_eps":1e-5,
      "sliding_window":262144,"tie_word_embeddings":true,"rope_scaling":{"type":"longrope",
      "short_factor":"ramp:1.0:1.5","long_factor":"ramp:1.0:40.0"}})"},
    {"mistral-nemo-12b", R"({"model_type":"mistral","hidden_size":5120,"intermediate_size":14336,
      "num_hidden_layers":40,"num_attention_heads":32,"num_key_value_heads":8,"head_dim":128,
      "vocab_size":131072,"max_position_embeddings":1024000,"rope_theta":1000000.0,
      "rms_norm_eps":1e-5,"sliding_window":null,"tie_word_embeddings":false})"},
    {"mixtral-8x7b", R"({"model_type":"mixtral","hidden_size":4096,"intermediate_size":14336,
      "num_hidden_layers":32,"num_attention_heads":32,"num_key_value_heads":8,"vocab_size":32000,
      "max_position_embeddings":32768,"rope_theta":1000000.0,"rms_norm_eps":1e-5,
      "sliding_window":null,"num_local_experts":8,"num_experts_per_tok":2,
      "tie_word_embeddings":false})"},
    {"qwen1.5-moe-a2.7b", R"({"model_type":"qwen2_moe","hidden_size":2048,
      "intermediate_size":5632,"num_hidden_layers":24,"num_attention_heads":16,
      "num_key_value_heads":16,"vocab_size":151936,"max_position_embeddings":8192,
      "rope_theta":1000000.0,"rms_norm_eps":1e-6,"use_sliding_window":false,
      "sliding_window":32768,"max_window_layers":21,"num_experts":60,"num_experts_per_tok":4,
      "moe_intermediate_size":1408,"shared_expert_intermediate_size":5632,"norm_topk_prob":false,
      "decoder_sparse_step":1,"tie_word_embeddings":false})"},
    {"qwen3-30b-a3b", R"({"model_type":"qwen3_moe","hidden_size":2048,"intermediate_size":6144,
      "num_hidden_layers":48,"num_attention_heads":32,"num_key_value_heads":4,"head_dim":128,
      "vocab_size":151936,"max_position_embeddings":40960,"rope_theta":1000000.0,
      "rms_norm_eps":1e-6,"use_sliding_window":false,"max_window_layers":48,"num_experts":128,
      "num_experts_per_tok":8,"moe_intermediate_size":768,"norm_topk_prob":true,
      "decoder_sparse_step":1,"mlp_only_layers":[],"tie_word_embeddings":false})"},
};

// "ramp:A:B" in a longrope factor list: rotary_dim/2 values from A to B (the presets' stand-in for
// the real lists, which are long tables).
void expand_ramps(nlohmann::json& j) {
  if (!j.contains("rope_scaling") || !j["rope_scaling"].is_object()) return;
  nlohmann::json& rs = j["rope_scaling"];
  const int64_t hd = j.value(
      "head_dim", j["hidden_size"].get<int64_t>() / j["num_attention_heads"].get<int64_t>());
  const int64_t n = int64_t(double(hd) * j.value("partial_rotary_factor", 1.0)) / 2;
  for (const char* key : {"short_factor", "long_factor"}) {
    if (!rs.contains(key) || !rs[key].is_string()) continue;
    double a = 0, b = 0;
    std::sscanf(rs[key].get<std::string>().c_str(), "ramp:%lf:%lf", &a, &b);
    std::vector<double> v;
    for (int64_t i = 0; i < n; ++i)
      v.push_back(a + (b - a) * double(i) / double(n > 1 ? n - 1 : 1));
    rs[key] = v;
  }
}

// Counter-based random numbers (splitmix64 of seed, tensor and index): any element can be
// generated independently, so filling a tensor in parallel gives the same bits for any thread
// count.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t hash_name(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Approximately normal (Irwin–Hall sum of four uniforms, variance matched), std `sd`.
void fill_normal(std::vector<float>& v, uint64_t seed, const std::string& name, float sd) {
  const uint64_t base = mix(seed ^ hash_name(name));
  parallel_for(int64_t(v.size()), 1 << 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const uint64_t r = mix(base + uint64_t(i));
      float s = 0;
      for (int k = 0; k < 4; ++k) s += float((r >> (16 * k)) & 0xffff) * (1.0f / 65536.0f);
      v[size_t(i)] = (s - 2.0f) * 1.7320508f * sd;  // var of the sum = 4/12
    }
  });
}

}  // namespace

std::vector<std::string> synth_presets() {
  std::vector<std::string> n;
  for (const auto& p : kPresets) n.push_back(p.name);
  return n;
}

ModelConfig synth_preset(const std::string& name) {
  for (const auto& p : kPresets) {
    if (name != p.name) continue;
    nlohmann::json j = nlohmann::json::parse(p.config);
    expand_ramps(j);
    j["architectures"] = {find_architecture(j["model_type"])->hf_class};
    j["bos_token_id"] = 1;
    j["eos_token_id"] = 2;
    return ModelConfig::from_json(j, std::string("preset ") + name);
  }
  std::string list;
  for (const auto& p : kPresets) list += (list.empty() ? "" : ", ") + std::string(p.name);
  fail("unknown shape '{}' (presets: {})", name, list);
}

ModelConfig with_layers_and_vocab(const ModelConfig& cfg, int64_t layers, int64_t vocab) {
  if (layers <= 0 && vocab <= 0) return cfg;
  nlohmann::json j = cfg.raw;
  nlohmann::json& t = cfg.multimodal ? j["text_config"] : j;
  if (layers > 0) {
    t["num_hidden_layers"] = layers;
    if (t.contains("layer_types") && t["layer_types"].is_array()) {
      nlohmann::json lt = nlohmann::json::array();
      for (int64_t l = 0; l < layers; ++l)
        lt.push_back(t["layer_types"][size_t(l) % t["layer_types"].size()]);
      t["layer_types"] = lt;
    }
  }
  if (vocab > 0) t["vocab_size"] = vocab;
  return ModelConfig::from_json(j, "synth");
}

void write_synthetic_model(const SynthOptions& opt) {
  ModelConfig cfg;
  if (opt.config_path.empty()) {
    cfg = synth_preset(opt.shape);
  } else {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_text_file(opt.config_path));
    } catch (const nlohmann::json::exception& e) {
      fail("{}: invalid JSON: {}", opt.config_path, e.what());
    }
    expand_ramps(j);
    cfg = ModelConfig::from_json(j, opt.config_path);
  }
  // Fewer layers or a smaller vocabulary than the real model: the blocks keep their real shape
  // (what quantization works on), the run gets shorter.
  cfg = with_layers_and_vocab(cfg, opt.layers, opt.vocab);
  AWQ_CHECK(opt.dtype == DType::F16 || opt.dtype == DType::BF16 || opt.dtype == DType::F32,
            "synth: --dtype must be f16, bf16 or f32");
  AWQ_CHECK(opt.outlier_channels >= 0 && opt.outlier_channels <= cfg.hidden_size,
            "synth: --outliers K must be between 0 and hidden_size {}", cfg.hidden_size);
  AWQ_CHECK(opt.outlier_gain > 0 && opt.mlp_outlier_gain > 0,
            "synth: outlier gains must be positive");
  AWQ_CHECK(opt.mlp_outlier_channels >= 0, "synth: --mlp-outliers K must not be negative");
  const Architecture& arch = *find_architecture(cfg.model_type);
  cfg.torch_dtype = opt.dtype == DType::F16    ? "float16"
                    : opt.dtype == DType::BF16 ? "bfloat16"
                                               : "float32";
  cfg.quant.reset();
  const int64_t d = cfg.hidden_size;
  const float sd = opt.weight_std;

  StagedDir out(opt.out_dir);
  CheckpointWriter w(out);
  auto add = [&](const std::string& name, std::vector<int64_t> shape, float s) {
    int64_t n = 1;
    for (auto x : shape) n *= x;
    std::vector<float> v(static_cast<size_t>(n));
    fill_normal(v, opt.seed, name, s);
    w.add_f32_as(name, opt.dtype, std::move(shape), v);
  };
  // K distinct channels of n, chosen by the seed and a name.
  auto pick_channels = [&](const std::string& name, int64_t n, int64_t k) {
    std::vector<size_t> picked;
    uint64_t r = mix(opt.seed ^ hash_name(name));
    std::vector<uint8_t> taken(size_t(n), 0);
    while (int64_t(picked.size()) < std::min<int64_t>(k, n)) {
      r = mix(r);
      const size_t c = size_t(r % uint64_t(n));
      if (taken[c]) continue;
      taken[c] = 1;
      picked.push_back(c);
    }
    return picked;
  };
  // Norm multipliers ≈ 1 (± norm_noise) with K outlier channels of gain G (distinct per norm,
  // chosen by the seed), stored in the family's convention (Gemma stores multiplier − 1).
  const float offset = arch.norm_offset();
  auto add_norm = [&](const std::string& name, int64_t n, bool outliers, float gain = 1.0f) {
    std::vector<float> v(size_t(n), 0.0f);
    if (opt.norm_noise > 0) fill_normal(v, opt.seed, name, opt.norm_noise);
    for (float& x : v) x = gain * (x + 1.0f);
    if (outliers)
      for (size_t c : pick_channels(name + "/outliers", n, opt.outlier_channels))
        v[c] = opt.outlier_gain;
    for (float& x : v) x -= offset;
    w.add_f32_as(name, opt.dtype, {n}, v);
  };
  // A sparse layer (model/moe.h): the router, every expert (gate, up with the outlier rows a
  // dense up projection gets, down) and the shared expert with its gate.
  const float mlp_gain = opt.mlp_outlier_gain;
  const int64_t mlp_k = opt.mlp_outlier_channels;
  auto add_ffn = [&](const std::function<std::string(LinearRole)>& name, int64_t I) {
    for (LinearRole r : {LinearRole::Gate, LinearRole::Up, LinearRole::Down}) {
      const std::string base = name(r);
      std::vector<float> v(size_t(d * I));
      fill_normal(v, opt.seed, base + ".weight", sd);
      if (r == LinearRole::Up)
        for (size_t row : pick_channels(base + "/outliers", I, mlp_k))
          for (int64_t c = 0; c < d; ++c) v[row * size_t(d) + size_t(c)] *= mlp_gain;
      std::vector<int64_t> shape = {I, d};
      if (r == LinearRole::Down) shape = {d, I};
      w.add_f32_as(base + ".weight", opt.dtype, shape, v);
    }
  };
  auto add_moe = [&](int64_t l) {
    add(arch.router_name(l) + ".weight", {cfg.num_experts, d}, sd);
    for (int64_t e = 0; e < cfg.num_experts; ++e)
      add_ffn([&](LinearRole r) { return arch.expert_linear_name(l, e, r); },
              cfg.moe_intermediate_size);
    if (cfg.shared_expert_intermediate_size > 0) {
      add_ffn([&](LinearRole r) { return arch.shared_expert_linear_name(l, r); },
              cfg.shared_expert_intermediate_size);
      add(arch.shared_gate_name(l) + ".weight", {1, d}, sd);
    }
  };
  add(arch.embed_name, {cfg.vocab_size, d}, sd);
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    add_norm(arch.norm_name(l, NormRole::Attn), d, true);
    add_norm(arch.norm_name(l, NormRole::Mlp), d, true);
    if (arch.has_qk_norm()) {
      add_norm(arch.layer_name(l, arch.q_norm_name + ".weight"), cfg.head_dim, false);
      add_norm(arch.layer_name(l, arch.k_norm_name + ".weight"), cfg.head_dim, false);
    }
    if (arch.has_post_norms()) {
      add_norm(arch.layer_name(l, arch.post_attn_norm_name + ".weight"), d, false,
               opt.post_norm_gain);
      add_norm(arch.layer_name(l, arch.post_mlp_norm_name + ".weight"), d, false,
               opt.post_norm_gain);
    }
    const bool sparse = cfg.is_moe_layer(l);
    for (LinearRole r : kAllLinearRoles) {
      if (sparse && (r == LinearRole::Gate || r == LinearRole::Up || r == LinearRole::Down))
        continue;  // the experts replace the dense MLP: add_moe
      const StoredRows rows = stored_rows(cfg, arch, r);
      if (rows.row0 != 0) continue;  // a later part of a fused tensor: written with the first
      const std::string base = arch.stored_linear_name(l, r);
      const int64_t in = linear_shape(cfg, r).second;
      std::vector<float> v(size_t(rows.rows * in));
      fill_normal(v, opt.seed, base + ".weight", sd);
      // The up projection's outlier rows make K of down_proj's input channels G times larger
      // (the "massive activations" of real LLMs sit in the MLP's intermediate channels).
      const std::string up_base = arch.stored_linear_name(l, LinearRole::Up);
      if (base == up_base && mlp_k > 0) {
        const StoredRows up = stored_rows(cfg, arch, LinearRole::Up);
        for (size_t row : pick_channels(base + "/outliers", cfg.intermediate_size, mlp_k))
          for (int64_t c = 0; c < in; ++c) v[size_t((up.row0 + int64_t(row)) * in + c)] *= mlp_gain;
      }
      w.add_f32_as(base + ".weight", opt.dtype, {rows.rows, in}, v);
      if (linear_has_bias(cfg, r)) add(base + ".bias", {rows.rows}, sd);
    }
    if (sparse) add_moe(l);
  }
  add_norm(arch.final_norm_name, d, false);
  if (!cfg.tie_word_embeddings) add(arch.lm_head_name, {cfg.vocab_size, d}, sd);
  if (cfg.multimodal) {
    // A stand-in for the vision side (what a quantizer must carry over untouched): the projector
    // and the vision tower's last norm, in vision_config's width.
    const nlohmann::json& vc = cfg.raw.value("vision_config", nlohmann::json::object());
    const int64_t vh = vc.value("hidden_size", int64_t(32));
    add("multi_modal_projector.mm_input_projection_weight", {vh, d}, sd);
    add("multi_modal_projector.mm_soft_emb_norm.weight", {vh}, sd);
    add("vision_tower.vision_model.post_layernorm.weight", {vh}, sd);
    add("vision_tower.vision_model.post_layernorm.bias", {vh}, sd);
  }
  w.finish();

  write_text_file_atomic(out.path("config.json").string(), cfg.to_json().dump(2) + "\n");
  if (!opt.tokenizer_dir.empty()) {
    bool any = false;
    for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                             "tokenizer.model"}) {
      const fs::path src = fs::path(opt.tokenizer_dir) / name;
      if (fs::exists(src)) {
        fs::copy_file(src, out.path(name));
        any = true;
      }
    }
    AWQ_CHECK(any, "{}: no tokenizer.json to copy", opt.tokenizer_dir);
    const Tokenizer tok = Tokenizer::from_dir(out.tmp().string());
    AWQ_CHECK(tok.vocab_size() <= cfg.vocab_size,
              "{}: tokenizer has {} tokens but the model's vocab_size is {}", opt.tokenizer_dir,
              tok.vocab_size(), cfg.vocab_size);
  } else {
    const GeneratedTokenizer g = synthetic_byte_level_tokenizer(cfg.vocab_size);
    write_text_file_atomic(out.path("tokenizer.json").string(), g.tokenizer_json);
    write_text_file_atomic(out.path("tokenizer_config.json").string(), g.tokenizer_config_json);
  }
  out.commit();
}

}  // namespace awq
