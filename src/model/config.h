// ModelConfig: the fields of a Hugging Face config.json that the Llama-family forward needs,
// validated on load (each problem is an awq::Error naming config.json and the field).
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace awq {

// quantization_config of an AWQ checkpoint (AutoAWQ GEMM layout).
struct AwqQuantConfig {
  int bits = 4;
  int group_size = 128;  // -1: one group per row
  bool zero_point = true;
  std::string version = "gemm";
  std::vector<std::string> modules_to_not_convert;
};

struct ModelConfig {
  std::string model_type;  // key into the architecture table
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 2048;
  float rms_norm_eps = 1e-6f;
  float rope_theta = 10000.0f;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v (and o for Llama's flag) biases
  bool o_bias = false;
  bool mlp_bias = false;
  int32_t bos_token_id = -1;
  int32_t eos_token_id = -1;
  std::string torch_dtype = "float32";
  std::optional<AwqQuantConfig> quant;
  nlohmann::json raw;  // the whole file, so writers can keep unknown fields

  int64_t q_dim() const { return num_attention_heads * head_dim; }
  int64_t kv_dim() const { return num_key_value_heads * head_dim; }
  int64_t parameter_count() const;

  static ModelConfig from_json(const nlohmann::json& j, const std::string& source);
  static ModelConfig load(const std::string& dir);  // <dir>/config.json
  nlohmann::json to_json() const;                   // raw with our fields updated
};

}  // namespace awq
