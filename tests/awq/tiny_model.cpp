#include "tiny_model.h"

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "base/files.h"
#include "formats/checkpoint_writer.h"

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

CalibBlocks random_calib(int64_t n_blocks, int64_t T, int64_t vocab, uint64_t seed) {
  Rng rng{seed};
  CalibBlocks c;
  c.seqlen = T;
  c.n_blocks = n_blocks;
  c.tokens.resize(size_t(n_blocks * T));
  for (int64_t i = 0; i < n_blocks * T; ++i)
    c.tokens[size_t(i)] = (i % T == 0) ? 1 : int32_t(rng.next() % uint64_t(vocab));
  c.docs_taken = n_blocks;
  c.tokens_total = n_blocks * T;
  return c;
}

}  // namespace awq::test
