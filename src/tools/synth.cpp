#include "tools/synth.h"

#include <filesystem>
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
  const char* model_type;
  int64_t hidden, inter, layers, heads, kv_heads, vocab, max_pos;
  float theta, eps;
  bool tie;
};

// Shapes of the real models (their config.json values); weights are random.
constexpr Preset kPresets[] = {
    {"tiny", "llama", 128, 384, 2, 4, 2, 512, 512, 10000.0f, 1e-5f, false},
    {"smollm-135m", "llama", 576, 1536, 30, 9, 3, 49152, 2048, 10000.0f, 1e-5f, true},
    {"qwen2.5-0.5b", "qwen2", 896, 4864, 24, 14, 2, 151936, 32768, 1000000.0f, 1e-6f, true},
    {"tinyllama-1.1b", "llama", 2048, 5632, 22, 32, 4, 32000, 2048, 10000.0f, 1e-5f, false},
    {"llama-2-7b", "llama", 4096, 11008, 32, 32, 32, 32000, 4096, 10000.0f, 1e-5f, false},
};

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
    nlohmann::json j = {{"model_type", p.model_type},
                        {"architectures", {find_architecture(p.model_type)->hf_class}},
                        {"hidden_size", p.hidden},
                        {"intermediate_size", p.inter},
                        {"num_hidden_layers", p.layers},
                        {"num_attention_heads", p.heads},
                        {"num_key_value_heads", p.kv_heads},
                        {"vocab_size", p.vocab},
                        {"max_position_embeddings", p.max_pos},
                        {"rope_theta", p.theta},
                        {"rms_norm_eps", p.eps},
                        {"tie_word_embeddings", p.tie},
                        {"hidden_act", "silu"},
                        {"bos_token_id", 1},
                        {"eos_token_id", 2}};
    return ModelConfig::from_json(j, std::string("preset ") + name);
  }
  std::string list;
  for (const auto& p : kPresets) list += (list.empty() ? "" : ", ") + std::string(p.name);
  fail("unknown shape '{}' (presets: {})", name, list);
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
    cfg = ModelConfig::from_json(j, opt.config_path);
  }
  AWQ_CHECK(opt.dtype == DType::F16 || opt.dtype == DType::BF16 || opt.dtype == DType::F32,
            "synth: --dtype must be f16, bf16 or f32");
  AWQ_CHECK(opt.outlier_channels >= 0 && opt.outlier_channels <= cfg.hidden_size,
            "synth: --outliers K must be between 0 and hidden_size {}", cfg.hidden_size);
  AWQ_CHECK(opt.outlier_gain > 0, "synth: outlier gain must be positive");
  const Architecture& arch = *find_architecture(cfg.model_type);
  cfg.torch_dtype = opt.dtype == DType::F16    ? "float16"
                    : opt.dtype == DType::BF16 ? "bfloat16"
                                               : "float32";
  cfg.quant.reset();
  const int64_t d = cfg.hidden_size;
  const float sd = 0.02f;  // HF initializer_range

  StagedDir out(opt.out_dir);
  CheckpointWriter w(out);
  auto add = [&](const std::string& name, std::vector<int64_t> shape, float s) {
    int64_t n = 1;
    for (auto x : shape) n *= x;
    std::vector<float> v(static_cast<size_t>(n));
    fill_normal(v, opt.seed, name, s);
    w.add_f32_as(name, opt.dtype, std::move(shape), v);
  };
  // Norm weights ≈ 1 with K outlier channels of gain G (distinct per norm, chosen by the seed).
  auto add_norm = [&](const std::string& name) {
    std::vector<float> v(size_t(d), 1.0f);
    if (opt.outlier_channels > 0) {
      uint64_t r = mix(opt.seed ^ hash_name(name + "/outliers"));
      int placed = 0;
      while (placed < opt.outlier_channels) {
        r = mix(r);
        const size_t c = size_t(r % uint64_t(d));
        if (v[c] != 1.0f) continue;
        v[c] = opt.outlier_gain;
        ++placed;
      }
    }
    w.add_f32_as(name, opt.dtype, {d}, v);
  };
  add(arch.embed_name, {cfg.vocab_size, d}, sd);
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    add_norm(arch.norm_name(l, NormRole::Attn));
    add_norm(arch.norm_name(l, NormRole::Mlp));
    for (LinearRole r : kAllLinearRoles) {
      const std::string base = arch.linear_name(l, r);
      const auto [out, in] = linear_shape(cfg, r);
      add(base + ".weight", {out, in}, sd);
      if (linear_has_bias(cfg, r)) add(base + ".bias", {out}, sd);
    }
  }
  add_norm(arch.final_norm_name);
  if (!cfg.tie_word_embeddings) add(arch.lm_head_name, {cfg.vocab_size, d}, sd);
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
