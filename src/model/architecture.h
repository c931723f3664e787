// The architecture table: everything that differs between Llama-family model types, as data —
// tensor names, which biases exist, and AWQ's scaling groups (which op absorbs 1/s, which linears
// are multiplied by s, which module's output the search inspects). Adding a family that shares the
// Llama block is a table entry in architecture.cpp, not new code.
#pragma once
#include <string>
#include <vector>

namespace awq {

// The seven linears of a Llama block, in forward order.
enum class LinearRole { Q, K, V, O, Gate, Up, Down };
constexpr int kNumLinearRoles = 7;
constexpr LinearRole kAllLinearRoles[] = {LinearRole::Q,   LinearRole::K,    LinearRole::V,
                                          LinearRole::O,   LinearRole::Gate, LinearRole::Up,
                                          LinearRole::Down};

enum class NormRole { Attn, Mlp };

// What a scaling group's search measures its loss on.
enum class InspectKind {
  Attention,  // the whole attention (q, k, v, RoPE, softmax, o) on the normed input
  Mlp,        // the whole MLP (gate, up, SiLU, down) on the normed input
  Linear,     // the single consumer linear alone
};

struct ScalingGroup {
  std::string name;                // for reports: "attn.qkv", "attn.o", "mlp.gate_up", "mlp.down"
  bool prev_is_norm;               // 1/s folds into a norm weight ...
  NormRole prev_norm;              // ... this one
  LinearRole prev_linear;          // ... or into the last len(s) output rows of this linear
  std::vector<LinearRole> layers;  // consumers whose columns are multiplied by s
  InspectKind inspect;
  bool only_if_square;  // v→o only when v's output width equals o's input (no GQA)
};

struct Architecture {
  std::string model_type;
  std::string hf_class;  // "LlamaForCausalLM", for config.json "architectures"
  bool qkv_bias;         // Qwen2: q/k/v have biases regardless of config flags
  bool default_tie_embeddings;
  std::string embed_name, final_norm_name, lm_head_name;
  std::string layer_prefix;                   // "model.layers.{}." with {} the block index
  std::string linear_names[kNumLinearRoles];  // relative to the layer prefix
  std::string norm_names[2];                  // attn, mlp
  std::vector<ScalingGroup> scaling_groups;
  std::vector<LinearRole> clip_skip;  // linears whose clipping is not searched (q, k)

  std::string layer_name(int64_t layer, const std::string& rel) const;
  std::string linear_name(int64_t layer, LinearRole r) const;  // without ".weight"
  std::string norm_name(int64_t layer, NormRole r) const;      // with ".weight"
};

const Architecture* find_architecture(const std::string& model_type);
std::string supported_model_types();         // "llama, mistral, qwen2"
const char* linear_role_name(LinearRole r);  // "q_proj", ...

}  // namespace awq
