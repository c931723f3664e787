// ModelConfig: the fields of a Hugging Face config.json that the forward needs, validated on load
// (each problem is an awq::Error naming config.json and the field). The family's features come
// from the architecture table (model/architecture.h); a config key for a feature the family lacks
// is an error, not silently ignored.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/architecture.h"
#include "model/rope.h"

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
  // Family features (defaults: the Llama block).
  int64_t rotary_dim = 0;  // head_dim * partial_rotary_factor: the rotated head dimensions
  RopeScaling rope_scaling;
  float rope_local_theta = 10000.0f;             // Gemma-3's local layers (rope_local_base_freq)
  int64_t original_max_position_embeddings = 0;  // Phi-3's top-level value (longrope)
  Activation activation = Activation::Silu;
  float attn_scale = 0;        // q·k multiplier: head_dim^-0.5, or query_pre_attn_scalar^-0.5
  float attn_softcap = 0;      // attention scores c·tanh(s/c) (0: none)
  float final_softcap = 0;     // logits c·tanh(l/c) (0: none)
  float embed_scale = 0;       // embeddings × this (0: none): sqrt(hidden) rounded to torch_dtype
  int64_t sliding_window = 0;  // W keys per query on sliding layers (0: none)
  std::vector<uint8_t> layer_sliding;  // per layer: 1 when it uses the sliding window
  // gemma3: the text model of Gemma3ForConditionalGeneration (config.json's text_config); its
  // tensors are under a language-model prefix and the vision tower is kept as it is.
  bool multimodal = false;
  // Sparse mixture of experts (Mixtral, Qwen2-MoE, Qwen3-MoE; num_experts 0: a dense model). The
  // routing semantics are in model/moe.h.
  int64_t num_experts = 0;                      // num_local_experts (Mixtral) or num_experts
  int64_t num_experts_per_tok = 0;              // top-k
  int64_t moe_intermediate_size = 0;            // each routed expert's width
  int64_t shared_expert_intermediate_size = 0;  // Qwen2-MoE's shared expert (0: none)
  bool norm_topk_prob = false;      // renormalize the top-k weights to sum 1 (Mixtral: always true)
  int64_t decoder_sparse_step = 1;  // Qwen: layer l is sparse iff (l + 1) % step == 0 ...
  std::vector<int64_t> mlp_only_layers;  // ... and l is not listed here
  int32_t bos_token_id = -1;
  int32_t eos_token_id = -1;
  std::string torch_dtype = "float32";
  std::optional<AwqQuantConfig> quant;
  nlohmann::json raw;  // the whole file, so writers can keep unknown fields

  int64_t q_dim() const { return num_attention_heads * head_dim; }
  // The sliding window of `layer` (0: full causal attention) and its RoPE.
  int64_t window(int64_t layer) const;
  RopeSpec rope(int64_t layer) const;
  const Architecture& arch() const;  // the table entry of model_type
  // The family features that change the forward, for `awq inspect` (empty for the Llama block).
  nlohmann::json features() const;
  int64_t kv_dim() const { return num_key_value_heads * head_dim; }
  // Whether `layer`'s feed-forward is the sparse MoE (else the dense MLP of intermediate_size).
  bool is_moe_layer(int64_t layer) const;
  bool is_moe() const { return num_experts > 0; }
  int64_t parameter_count() const;
  // Parameters one token's forward reads: parameter_count() with only num_experts_per_tok of the
  // routed experts of each sparse layer (equal to it for a dense model).
  int64_t active_parameter_count() const;

  static ModelConfig from_json(const nlohmann::json& j, const std::string& source);
  static ModelConfig load(const std::string& dir);  // <dir>/config.json
  nlohmann::json to_json() const;                   // raw with our fields updated
};

}  // namespace awq
