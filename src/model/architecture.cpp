#include "model/architecture.h"

#include <fmt/format.h>

namespace awq {
namespace {

// AWQ's four scaling groups for the Llama block (awq-spec §1.5; identical in llm-awq and AutoAWQ).
std::vector<ScalingGroup> llama_groups() {
  using L = LinearRole;
  return {
      {"attn.qkv", true, NormRole::Attn, L::Q, {L::Q, L::K, L::V}, InspectKind::Attention, false},
      {"attn.o", false, NormRole::Attn, L::V, {L::O}, InspectKind::Linear, true},
      {"mlp.gate_up", true, NormRole::Mlp, L::Q, {L::Gate, L::Up}, InspectKind::Mlp, false},
      {"mlp.down", false, NormRole::Mlp, L::Up, {L::Down}, InspectKind::Linear, false},
  };
}

Architecture llama_like(std::string type, std::string cls, bool qkv_bias, bool tie) {
  Architecture a;
  a.model_type = std::move(type);
  a.hf_class = std::move(cls);
  a.qkv_bias = qkv_bias;
  a.default_tie_embeddings = tie;
  a.embed_name = "model.embed_tokens.weight";
  a.final_norm_name = "model.norm.weight";
  a.lm_head_name = "lm_head.weight";
  a.layer_prefix = "model.layers.{}.";
  a.linear_names[0] = "self_attn.q_proj";
  a.linear_names[1] = "self_attn.k_proj";
  a.linear_names[2] = "self_attn.v_proj";
  a.linear_names[3] = "self_attn.o_proj";
  a.linear_names[4] = "mlp.gate_proj";
  a.linear_names[5] = "mlp.up_proj";
  a.linear_names[6] = "mlp.down_proj";
  a.norm_names[0] = "input_layernorm";
  a.norm_names[1] = "post_attention_layernorm";
  a.scaling_groups = llama_groups();
  a.clip_skip = {LinearRole::Q, LinearRole::K};  // "due to qk bmm, it is hard to clip precisely"
  return a;
}

const std::vector<Architecture>& table() {
  static const std::vector<Architecture> t = {
      llama_like("llama", "LlamaForCausalLM", false, false),
      llama_like("mistral", "MistralForCausalLM", false, false),
      llama_like("qwen2", "Qwen2ForCausalLM", true, false),
  };
  return t;
}

}  // namespace

std::string Architecture::layer_name(int64_t layer, const std::string& rel) const {
  return fmt::format(fmt::runtime(layer_prefix), layer) + rel;
}

std::string Architecture::linear_name(int64_t layer, LinearRole r) const {
  return layer_name(layer, linear_names[int(r)]);
}

std::string Architecture::norm_name(int64_t layer, NormRole r) const {
  return layer_name(layer, norm_names[int(r)]) + ".weight";
}

const Architecture* find_architecture(const std::string& model_type) {
  for (const auto& a : table())
    if (a.model_type == model_type) return &a;
  return nullptr;
}

std::string supported_model_types() {
  std::string s;
  for (const auto& a : table()) s += (s.empty() ? "" : ", ") + a.model_type;
  return s;
}

const char* linear_role_name(LinearRole r) {
  static const char* names[] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                "gate_proj", "up_proj", "down_proj"};
  return names[int(r)];
}

}  // namespace awq
