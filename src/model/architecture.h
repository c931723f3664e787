// The architecture table: everything that differs between the supported model types, as data —
// tensor names, which norms and biases exist, the norm's form, the activation, the attention's
// extras (q/k norms, soft-capping, sliding-window layers), fused projections, and AWQ's scaling
// groups (which op absorbs 1/s, which linears are multiplied by s, which module's output the
// search inspects). Adding a family is a table entry in architecture.cpp; a forward feature is a
// field here that block.cpp reads, never a per-model code path.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace awq {

// The seven linears of a decoder block, in forward order. Fused checkpoints (Phi-3's qkv_proj,
// gate_up_proj) are split into these roles on load and stacked again on write.
enum class LinearRole { Q, K, V, O, Gate, Up, Down };
constexpr int kNumLinearRoles = 7;
constexpr LinearRole kAllLinearRoles[] = {LinearRole::Q,   LinearRole::K,    LinearRole::V,
                                          LinearRole::O,   LinearRole::Gate, LinearRole::Up,
                                          LinearRole::Down};

// The norms that feed linears: Attn normalizes the block input for q/k/v, Mlp normalizes the
// residual stream for gate/up (post_attention_layernorm in Llama, pre_feedforward_layernorm in
// Gemma-2/3).
enum class NormRole { Attn, Mlp };

// RMSNorm's weight form. Plain: x̂·w (Llama). OneOffset: x̂·(1 + w) in f32 (Gemma; the stored
// weight is w, initialized to 0). In memory every norm holds its effective multiplier (1 + w for
// Gemma), so folding AWQ's 1/s is one division for every family; load adds and write subtracts
// norm_offset.
enum class NormKind { Plain, OneOffset };

// The MLP's gate activation: SwiGLU (silu) or GeGLU with the tanh approximation of GELU.
enum class Activation { Silu, GeluTanh };

// Which layers use the sliding window when the config sets one.
enum class SlidingLayers {
  None,       // the family has no sliding window (a config that sets one is an error)
  All,        // every layer (Mistral, Phi-3)
  FromLayer,  // layers >= max_window_layers when use_sliding_window is true (Qwen2, Qwen3)
  Even,       // layers 0, 2, 4, ... (Gemma-2)
  Pattern,    // all but every sliding_window_pattern-th layer, or config.layer_types (Gemma-3)
};

// What a scaling group's search measures its loss on.
enum class InspectKind {
  Attention,  // the whole attention (q, k, v, q/k norms, RoPE, softmax, o) on the normed input
  Mlp,        // the whole MLP (gate, up, activation, down) on the normed input
  Linear,     // the single consumer linear alone
};

struct ScalingGroup {
  std::string name;                // for reports: "attn.qkv", "attn.o", "mlp.gate_up", "mlp.down"
  bool prev_is_norm;               // 1/s folds into a norm weight ...
  NormRole prev_norm;              // ... this one
  LinearRole prev_linear;          // ... or into the output rows of this linear
  std::vector<LinearRole> layers;  // consumers whose columns are multiplied by s
  InspectKind inspect;
  bool only_if_square;  // v→o only when v's output width equals o's input (no GQA)
  // Not searched unless asked for (awq quantize --group-on NAME): for a group whose fold is exact
  // but that measured worse than leaving it out. No family sets it today (Gemma-3's attn.qkv was
  // measured and kept: architecture.cpp).
  bool off_by_default = false;
};

// A family's sparse mixture-of-experts feed-forward (Mixtral, Qwen2-MoE, Qwen3-MoE), as names
// relative to the layer prefix. The forward is model/moe.h; which layers are sparse is
// ModelConfig::is_moe_layer (the others keep the dense linear_names).
struct MoeSpec {
  std::string router;  // the [E, hidden] router linear, without ".weight"
  std::string expert;  // expert e's prefix, {} the index: "block_sparse_moe.experts.{}."
  // gate, up, down of an expert (and of the shared expert), relative to its prefix: Mixtral's
  // w1 (gate), w3 (up), w2 (down); Qwen's gate_proj, up_proj, down_proj.
  std::string expert_linears[3];
  std::string shared_expert;  // the shared expert's prefix (Qwen2-MoE), or empty
  std::string shared_gate;    // its [1, hidden] sigmoid gate, without ".weight", or empty
  std::string experts_key;    // config key of the expert count: num_local_experts / num_experts
  // Mixtral renormalizes the top-k weights to sum 1 always; Qwen only when norm_topk_prob.
  bool always_renormalize = false;
  // Qwen: decoder_sparse_step and mlp_only_layers choose dense layers (Mixtral: every layer
  // sparse, the routed experts are intermediate_size wide).
  bool dense_layers = false;
};

struct Architecture {
  std::string model_type;
  std::string hf_class;   // "LlamaForCausalLM", for config.json "architectures"
  bool qkv_bias = false;  // Qwen2: q/k/v have biases regardless of config flags
  bool default_tie_embeddings = false;
  std::string embed_name, final_norm_name, lm_head_name;
  std::string layer_prefix;                   // "model.layers.{}." with {} the block index
  std::string linear_names[kNumLinearRoles];  // relative to the layer prefix
  std::string norm_names[2];                  // attn, mlp
  // Fused checkpoint tensors (relative, without ".weight"): rows q|k|v and gate|up. Empty when
  // the checkpoint has separate linears.
  std::string fused_qkv_name, fused_gate_up_name;

  // Forward features.
  NormKind norm = NormKind::Plain;  // every RMSNorm of the model (block, q/k, final)
  Activation activation = Activation::Silu;
  std::string activation_key = "hidden_act";  // Gemma-2/3: "hidden_activation"
  std::string q_norm_name, k_norm_name;       // per-head RMSNorm before RoPE (Qwen3, Gemma-3)
  // Gemma-2/3's extra norms on the attention's and the MLP's outputs, before each residual add.
  std::string post_attn_norm_name, post_mlp_norm_name;
  bool embed_scale = false;            // embeddings × sqrt(hidden), rounded to the model's dtype
  bool attn_softcap = false;           // accepts attn_logit_softcapping
  bool final_softcap = false;          // accepts final_logit_softcapping
  bool query_pre_attn_scalar = false;  // attention scale query_pre_attn_scalar^-0.5
  bool partial_rotary = false;         // accepts partial_rotary_factor
  bool local_rope = false;             // sliding layers use rope_local_base_freq, unscaled
  SlidingLayers sliding = SlidingLayers::None;
  int64_t default_sliding_window_pattern = 6;

  // Qwen2-MoE: head_dim is always hidden_size / num_attention_heads (its attention reads no
  // head_dim key), so a config's head_dim that differs is refused.
  bool head_dim_from_hidden = false;
  MoeSpec moe;  // empty router: a dense family

  std::vector<ScalingGroup> scaling_groups;
  std::vector<LinearRole> clip_skip;  // linears whose clipping is not searched (q, k)

  float norm_offset() const { return norm == NormKind::OneOffset ? 1.0f : 0.0f; }
  bool has_qk_norm() const { return !q_norm_name.empty(); }
  bool has_post_norms() const { return !post_attn_norm_name.empty(); }
  bool fused_qkv() const { return !fused_qkv_name.empty(); }
  bool fused_gate_up() const { return !fused_gate_up_name.empty(); }
  bool is_moe() const { return !moe.router.empty(); }

  std::string layer_name(int64_t layer, const std::string& rel) const;
  std::string linear_name(int64_t layer, LinearRole r) const;  // without ".weight"
  std::string norm_name(int64_t layer, NormRole r) const;      // with ".weight"
  // The tensor a role is stored in: its own, or the fused one (without ".weight").
  std::string stored_linear_name(int64_t layer, LinearRole r) const;
  bool is_fused(LinearRole r) const;
  // MoE tensors (without ".weight"); r is Gate, Up or Down.
  std::string router_name(int64_t layer) const;
  std::string expert_linear_name(int64_t layer, int64_t expert, LinearRole r) const;
  std::string shared_expert_linear_name(int64_t layer, LinearRole r) const;
  std::string shared_gate_name(int64_t layer) const;
};

const Architecture* find_architecture(const std::string& model_type);
std::string supported_model_types();         // "llama, mistral, qwen2, ..."
const char* linear_role_name(LinearRole r);  // "q_proj", ...
const char* activation_name(Activation a);   // "silu", "gelu_pytorch_tanh"

}  // namespace awq
