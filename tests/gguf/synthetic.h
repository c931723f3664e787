// Small synthetic Hugging Face checkpoints for the GGUF tests: random weights of a Llama-family
// shape whose widths are multiples of 32, written float (F16) or AWQ-quantized (AutoAWQ GEMM
// layout: qweight/qzeros/scales, config.json quantization_config) with the quantizer's RTN codes.
#pragma once
#include <cstdint>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "base/files.h"
#include "base/half.h"
#include "formats/checkpoint_writer.h"
#include "model/architecture.h"
#include "model/config.h"
#include "quant/awq_gemm_pack.h"
#include "quant/quantize.h"
#include "tokenizer/tokenizer.h"

namespace awq::test {

struct SynthSpec {
  std::string model_type = "llama";
  int64_t hidden = 128, inter = 192, layers = 2, heads = 4, kv_heads = 2, vocab = 512;
  bool tie = false;
  bool awq = true;
  int group = 64;
  bool zero_point = true;
  uint64_t seed = 7;
  // "llama2c:<tokenizer.bin>" for a SentencePiece-style tokenizer, or "" for a synthetic
  // byte-level one.
  std::string tokenizer;
};

inline void write_synthetic(const std::string& dir, const SynthSpec& s) {
  nlohmann::json j = {{"model_type", s.model_type},
                      {"architectures", {find_architecture(s.model_type)->hf_class}},
                      {"hidden_size", s.hidden},
                      {"intermediate_size", s.inter},
                      {"num_hidden_layers", s.layers},
                      {"num_attention_heads", s.heads},
                      {"num_key_value_heads", s.kv_heads},
                      {"vocab_size", s.vocab},
                      {"max_position_embeddings", 256},
                      {"rms_norm_eps", 1e-5},
                      {"rope_theta", 10000.0},
                      {"tie_word_embeddings", s.tie},
                      {"hidden_act", "silu"},
                      {"torch_dtype", "float16"}};
  if (s.awq) {
    j["quantization_config"] = {{"quant_method", "awq"},
                                {"bits", 4},
                                {"group_size", s.group},
                                {"zero_point", s.zero_point},
                                {"version", "gemm"}};
  }
  const ModelConfig cfg = ModelConfig::from_json(j, "synthetic");
  const Architecture& arch = *find_architecture(cfg.model_type);
  std::mt19937_64 rng(s.seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto randn = [&](int64_t n, float sd, float mean = 0.0f) {
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = round_to_f16(mean + sd * normal(rng));
    return v;
  };
  StagedDir out(dir);
  CheckpointWriter w(out);
  const int64_t d = cfg.hidden_size, f = cfg.intermediate_size;
  w.add_f32_as(arch.embed_name, DType::F16, {cfg.vocab_size, d}, randn(cfg.vocab_size * d, 1.0f));
  const int64_t outs[] = {cfg.q_dim(), cfg.kv_dim(), cfg.kv_dim(), d, f, f, d};
  const int64_t ins[] = {d, d, d, cfg.q_dim(), d, d, f};
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    w.add_f32_as(arch.norm_name(l, NormRole::Attn), DType::F16, {d}, randn(d, 0.1f, 1.0f));
    w.add_f32_as(arch.norm_name(l, NormRole::Mlp), DType::F16, {d}, randn(d, 0.1f, 1.0f));
    for (LinearRole r : kAllLinearRoles) {
      const int64_t o = outs[int(r)], i = ins[int(r)];
      const std::string name = arch.linear_name(l, r);
      std::vector<float> wt = randn(o * i, 1.0f / std::sqrt(float(i)));
      if (s.awq) {
        QuantSpec spec;
        spec.group_size = s.group;
        spec.zero_point = s.zero_point;
        const AwqGemmTensors t = pack_awq_gemm(quantize(wt.data(), o, i, spec, name), name);
        auto bytes = [](const auto& v) {
          std::vector<uint8_t> b(v.size() * sizeof(v[0]));
          std::memcpy(b.data(), v.data(), b.size());
          return b;
        };
        w.add(name + ".qweight", DType::I32, {t.K, t.N / 8}, bytes(t.qweight));
        w.add(name + ".qzeros", DType::I32, {t.K / t.group, t.N / 8}, bytes(t.qzeros));
        w.add(name + ".scales", DType::F16, {t.K / t.group, t.N}, bytes(t.scales_f16));
      } else {
        w.add_f32_as(name + ".weight", DType::F16, {o, i}, wt);
      }
      const bool bias = r == LinearRole::Q || r == LinearRole::K || r == LinearRole::V
                            ? cfg.attention_bias
                            : false;
      if (bias) w.add_f32_as(name + ".bias", DType::F16, {o}, randn(o, 0.1f));
    }
  }
  w.add_f32_as(arch.final_norm_name, DType::F16, {d}, randn(d, 0.1f, 1.0f));
  if (!cfg.tie_word_embeddings)
    w.add_f32_as(arch.lm_head_name, DType::F16, {cfg.vocab_size, d},
                 randn(cfg.vocab_size * d, 0.05f));
  w.finish();
  write_text_file_atomic(out.path("config.json").string(), cfg.to_json().dump(2) + "\n");
  GeneratedTokenizer g = s.tokenizer.rfind("llama2c:", 0) == 0
                             ? tokenizer_json_from_llama2c(s.tokenizer.substr(8))
                             : synthetic_byte_level_tokenizer(cfg.vocab_size);
  write_text_file_atomic(out.path("tokenizer.json").string(), g.tokenizer_json);
  write_text_file_atomic(out.path("tokenizer_config.json").string(), g.tokenizer_config_json);
  out.commit();
}

}  // namespace awq::test
