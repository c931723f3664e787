#include "tiny_model.h"

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "base/files.h"
#include "formats/checkpoint_writer.h"
#include "tools/synth.h"

namespace awq::test {
namespace {

struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  float uniform() { return float(next() >> 40) / float(1 << 24); }  // [0, 1)
  float normal() {  // sum of uniforms: cheap, bounded, roughly normal
    float a = 0;
    for (int i = 0; i < 4; ++i) a += uniform();
    return (a - 2.0f) * 1.7f;
  }
};

}  // namespace

void write_tiny_model(const std::string& dir, const TinyModelOptions& o) {
  namespace fs = std::filesystem;
  fs::remove_all(dir);
  const int64_t d = o.hidden, f = o.intermediate, hd = d / o.heads, kvd = o.kv_heads * hd;
  nlohmann::json cfg = {{"architectures", {"LlamaForCausalLM"}},
                        {"model_type", "llama"},
                        {"hidden_size", d},
                        {"intermediate_size", f},
                        {"num_hidden_layers", o.layers},
                        {"num_attention_heads", o.heads},
                        {"num_key_value_heads", o.kv_heads},
                        {"vocab_size", o.vocab},
                        {"max_position_embeddings", 256},
                        {"rms_norm_eps", 1e-5},
                        {"rope_theta", 10000.0},
                        {"tie_word_embeddings", o.tie_embeddings},
                        {"hidden_act", "silu"},
                        {"bos_token_id", 1},
                        {"eos_token_id", 2},
                        {"torch_dtype", "float32"}};
  StagedDir out(dir);
  write_text_file_atomic(out.path("config.json").string(), cfg.dump(2));
  std::ofstream(out.path("tokenizer_config.json")) << "{}\n";  // copied through by the writers
  CheckpointWriter w(out);
  Rng rng{o.seed};
  auto tensor = [&](const std::string& name, std::vector<int64_t> shape, float scale) {
    int64_t n = 1;
    for (auto s : shape) n *= s;
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = rng.normal() * scale;
    w.add_f32_as(name, o.dtype, std::move(shape), v);
  };
  auto norm = [&](const std::string& name) {
    std::vector<float> v(static_cast<size_t>(d));
    for (int64_t i = 0; i < d; ++i) v[size_t(i)] = 0.8f + 0.4f * rng.uniform();
    v[3] = 6.0f;  // activation outliers: what AWQ protects
    v[size_t(d - 5)] = 4.0f;
    w.add_f32_as(name, o.dtype, {d}, v);
  };
  tensor("model.embed_tokens.weight", {o.vocab, d}, 1.0f);
  for (int64_t l = 0; l < o.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    norm(p + "input_layernorm.weight");
    tensor(p + "self_attn.q_proj.weight", {d, d}, 0.3f);
    tensor(p + "self_attn.k_proj.weight", {kvd, d}, 0.3f);
    tensor(p + "self_attn.v_proj.weight", {kvd, d}, 0.3f);
    tensor(p + "self_attn.o_proj.weight", {d, d}, 0.3f);
    norm(p + "post_attention_layernorm.weight");
    tensor(p + "mlp.gate_proj.weight", {f, d}, 0.3f);
    tensor(p + "mlp.up_proj.weight", {f, d}, 0.3f);
    tensor(p + "mlp.down_proj.weight", {d, f}, 0.3f);
  }
  norm("model.norm.weight");
  if (!o.tie_embeddings) tensor("lm_head.weight", {o.vocab, d}, 0.3f);
  w.finish();
  out.commit();
}

const std::vector<std::string>& family_names() {
  static const std::vector<std::string> n = {"llama",       "mistral", "qwen3", "gemma",   "gemma2",
                                             "gemma3_text", "gemma3",  "phi3",  "phi3_gqa"};
  return n;
}

nlohmann::json family_config(const std::string& family, const FamilyShape& s) {
  using nlohmann::json;
  const int64_t H = s.hidden;
  json j = {{"hidden_size", H},
            {"intermediate_size", s.intermediate},
            {"num_hidden_layers", s.layers},
            {"vocab_size", s.vocab},
            {"num_attention_heads", 4},
            {"num_key_value_heads", 2},
            {"max_position_embeddings", 512},
            {"rms_norm_eps", 1e-6},
            {"rope_theta", 10000.0},
            {"tie_word_embeddings", false},
            {"bos_token_id", 1},
            {"eos_token_id", 2}};
  if (family == "llama") {
    j["model_type"] = "llama";
    j["rope_theta"] = 500000.0;
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", 8.0},
                         {"low_freq_factor", 1.0},
                         {"high_freq_factor", 4.0},
                         {"original_max_position_embeddings", 64}};
  } else if (family == "mistral") {
    j["model_type"] = "mistral";
    j["head_dim"] = H / 2;  // q_proj [2H, H]: nh·d != H
    j["sliding_window"] = 8;
  } else if (family == "qwen3") {
    j["model_type"] = "qwen3";
    j["head_dim"] = H / 2;
    j["use_sliding_window"] = false;
    j["tie_word_embeddings"] = true;
  } else if (family == "gemma") {
    j["model_type"] = "gemma";
    j["num_key_value_heads"] = 4;  // MHA with nh·d == H: v→o applies
    j["head_dim"] = H / 4;
    j["hidden_act"] = "gelu_pytorch_tanh";
    j["tie_word_embeddings"] = true;
  } else if (family == "gemma2") {
    j["model_type"] = "gemma2";
    j["head_dim"] = H / 2;
    j["query_pre_attn_scalar"] = H / 4;
    j["sliding_window"] = 8;
    j["attn_logit_softcapping"] = 50.0;
    j["final_logit_softcapping"] = 30.0;
    j["hidden_activation"] = "gelu_pytorch_tanh";
    j["tie_word_embeddings"] = true;
  } else if (family == "gemma3_text") {
    j["model_type"] = "gemma3_text";
    j["head_dim"] = H / 2;
    j["query_pre_attn_scalar"] = H / 2;
    j["sliding_window"] = 8;
    j["sliding_window_pattern"] = 2;
    j["rope_theta"] = 1000000.0;
    j["rope_local_base_freq"] = 10000.0;
    j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 2.0}};
    j["hidden_activation"] = "gelu_pytorch_tanh";
    j["tie_word_embeddings"] = true;
  } else if (family == "gemma3") {
    // Gemma3ForConditionalGeneration: the text model's settings nested, a vision side to carry.
    json t = family_config("gemma3_text", s);
    json outer = {{"model_type", "gemma3"},
                  {"tie_word_embeddings", true},
                  {"bos_token_id", 1},
                  {"eos_token_id", 2},
                  {"vision_config", {{"hidden_size", 32}, {"model_type", "siglip_vision_model"}}}};
    for (const char* k : {"bos_token_id", "eos_token_id", "tie_word_embeddings"}) t.erase(k);
    outer["text_config"] = t;
    return outer;
  } else if (family == "phi3") {
    j["model_type"] = "phi3";
    j["num_key_value_heads"] = 4;  // Phi-3-mini: MHA, v→o folds into qkv_proj's v rows
    j["partial_rotary_factor"] = 0.5;
    j["sliding_window"] = 8;
    j["original_max_position_embeddings"] = 512;
  } else if (family == "phi3_gqa") {
    j["model_type"] = "phi3";  // Phi-4-mini-like: GQA (v→o skipped), partial rotary, longrope
    j["partial_rotary_factor"] = 0.75;
    j["max_position_embeddings"] = 1024;
    j["original_max_position_embeddings"] = 64;
    j["rope_scaling"] = {
        {"type", "longrope"}, {"short_factor", "ramp:1.0:1.5"}, {"long_factor", "ramp:1.0:8.0"}};
    j["tie_word_embeddings"] = true;
  } else {
    throw std::runtime_error("unknown test family " + family);
  }
  return j;
}

void write_family_model(const std::string& dir, const std::string& family,
                        const FamilyModelOptions& o) {
  namespace fs = std::filesystem;
  fs::remove_all(dir);
  const fs::path cfg_path =
      fs::path(dir).parent_path() / (fs::path(dir).filename().string() + ".json");
  write_text_file_atomic(cfg_path.string(), family_config(family, o.shape).dump(2));
  SynthOptions so;
  so.shape = "";
  so.config_path = cfg_path.string();
  so.out_dir = dir;
  so.dtype = o.dtype;
  so.seed = o.seed;
  so.weight_std = o.weight_std;
  so.norm_noise = o.norm_noise;
  so.outlier_channels = o.outlier_channels;
  so.outlier_gain = o.outlier_gain;
  write_synthetic_model(so);
}

CalibBlocks random_calib(int64_t n_blocks, int64_t T, int64_t vocab, uint64_t seed) {
  Rng rng{seed};
  CalibBlocks c;
  c.seqlen = T;
  c.n_blocks = n_blocks;
  c.tokens.resize(size_t(n_blocks * T));
  for (int64_t i = 0; i < n_blocks * T; ++i)
    c.tokens[size_t(i)] = (i % T == 0) ? 1 : int32_t(rng.next() % uint64_t(vocab));
  c.docs_taken = n_blocks;
  c.samples = n_blocks;
  c.tokens_read = c.tokens_total = n_blocks * T;
  return c;
}

}  // namespace awq::test
