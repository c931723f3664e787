// How llama.cpp lays out the families awq.cpp runs: GGUF architecture names and what each one
// stores (fused projections, q/k norms, Gemma's 1 + w norms, ...), tensor names, and the Q/K row
// permutation between Hugging Face's rotate-half RoPE and llama.cpp's adjacent-pair RoPE.
// Sources: llama.cpp c392e509 src/llama-arch.cpp, src/llama-model.cpp, convert_hf_to_gguf.py, and
// for qwen3/gemma3 (added later) the newer files (families.md §9).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "base/mat.h"
#include "model/architecture.h"
#include "model/config.h"
#include "quant/quantized_matrix.h"

namespace awq::gguf {

// What a GGUF architecture holds beyond the Llama tensors, as llama.cpp's loader expects it.
struct GgufArch {
  std::string name;               // general.architecture
  std::string model_type;         // the awq.cpp model_type it reads back as
  bool permute_qk = false;        // adjacent-pair RoPE: q/k rows permuted (llama only)
  bool fused = false;             // phi3: blk.N.attn_qkv (q|k|v rows), blk.N.ffn_up holds gate|up
  bool qk_norm = false;           // blk.N.attn_q_norm / attn_k_norm [head_dim] (qwen3, gemma3)
  bool post_norms = false;        // blk.N.post_attention_norm / post_ffw_norm (gemma2, gemma3)
  float norm_offset = 0;          // every *norm.weight is stored as 1 + w (the Gemma family)
  bool output_is_embd = false;    // the graph always reuses token_embd (gemma*): no output tensor
  bool output_required = false;   // the loader needs output.weight (phi3 at c392e509)
  bool known_at_c392e509 = true;  // qwen3, gemma3 and qwen3moe came later
  // Sparse MoE: every layer holds the router blk.N.ffn_gate_inp [E, hidden] and the experts
  // stacked as blk.N.ffn_{gate,up,down}_exps [E, out, in] (expert e's matrix at index e); the
  // metadata says <arch>.expert_count and expert_used_count. llama.cpp has no dense layer in
  // these architectures (Qwen's mlp_only_layers / decoder_sparse_step cannot be expressed).
  bool moe = false;
  bool moe_expert_ffn_key = false;  // <arch>.expert_feed_forward_length (else feed_forward_length)
  // Qwen2-MoE's shared expert: blk.N.ffn_{gate,up,down}_shexp and its sigmoid gate
  // blk.N.ffn_gate_inp_shexp [hidden]; <arch>.expert_shared_feed_forward_length.
  bool shared_expert = false;
  // Whether the graph renormalizes the top-k routing weights to sum 1: hard-coded per
  // architecture (llama.cpp's norm_w), not a key, so a config that differs cannot be exported.
  bool moe_renormalizes = false;
};

// The GGUF architecture of a config.json model_type ("llama", "mistral" and "mixtral" -> llama,
// "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text" -> gemma3, "phi3", "qwen2_moe" -> qwen2moe,
// "qwen3_moe" -> qwen3moe); awq::Error for others.
const GgufArch& gguf_arch_for(const std::string& model_type);
// The table entry of a general.architecture value; awq::Error naming `file` for others. A
// "llama" file with experts (<arch>.expert_count > 0) is Mixtral: pass experts = true.
const GgufArch& gguf_arch_named(const std::string& arch, const std::string& file,
                                bool experts = false);
// general.architecture for a config.json model_type (gguf_arch_for(...).name).
std::string gguf_arch_for_model_type(const std::string& model_type);
// The model_type awq.cpp runs a GGUF architecture as; awq::Error naming `file` for others.
std::string model_type_for_gguf_arch(const std::string& arch, const std::string& file);

// llama.cpp's "llama" architecture uses adjacent-pair RoPE (ggml's normal mode), so the converter
// permutes the rows of q and k; "qwen2" runs rotate-half (NeoX mode) and keeps HF's order.
bool gguf_arch_permutes_qk(const std::string& arch);

// "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down".
const char* gguf_linear_name(LinearRole r);
// An expert linear (r: Gate, Up or Down): "ffn_gate_exps", ... (the stacked routed experts) or,
// shared, "ffn_gate_shexp", ...; awq::Error for other roles.
std::string gguf_expert_name(LinearRole r, bool shared);
// "blk.<layer>.<what>.<suffix>", e.g. blk.3.attn_q.weight.
std::string gguf_block_tensor(int64_t layer, const std::string& what,
                              const std::string& suffix = "weight");
std::string gguf_linear_tensor(int64_t layer, LinearRole r, const std::string& suffix = "weight");

inline constexpr const char* kTokenEmbd = "token_embd.weight";
inline constexpr const char* kOutputNorm = "output_norm.weight";
inline constexpr const char* kOutput = "output.weight";
inline constexpr const char* kAttnNorm = "attn_norm";
inline constexpr const char* kFfnNorm = "ffn_norm";
inline constexpr const char* kAttnQNorm = "attn_q_norm";
inline constexpr const char* kAttnKNorm = "attn_k_norm";
inline constexpr const char* kPostAttnNorm = "post_attention_norm";
inline constexpr const char* kPostFfwNorm = "post_ffw_norm";
inline constexpr const char* kAttnQkv = "attn_qkv";
// MoE tensors (blk.N.<name>.weight).
inline constexpr const char* kFfnGateInp = "ffn_gate_inp";             // router [E, hidden]
inline constexpr const char* kFfnGateInpShexp = "ffn_gate_inp_shexp";  // shared gate [hidden]
inline constexpr const char* kRopeFreqs = "rope_freqs.weight";  // llama3: per-frequency divisors
inline constexpr const char* kRopeFactorsLong = "rope_factors_long.weight";  // phi3 longrope
inline constexpr const char* kRopeFactorsShort = "rope_factors_short.weight";

// The GGUF tensor that holds linear `r` of `layer` under arch `a` (fused: attn_qkv for q/k/v,
// ffn_up for gate/up), and where the role's rows start in it and how many rows it has.
struct GgufLinearSlot {
  std::string tensor;
  int64_t row0 = 0, rows = 0;
};
GgufLinearSlot gguf_linear_slot(const GgufArch& a, const ModelConfig& c, int64_t layer,
                                LinearRole r);

// The RoPE row permutation for a [n_head * head_dim, ...] q or k matrix: row r of the llama.cpp
// layout is row perm[r] of the Hugging Face layout. Within each head, HF rows are reshaped
// [2, head_dim / 2] and transposed to [head_dim / 2, 2]: (j, i) -> 2i + j. For k, n_head is the
// number of key/value heads. awq::Error unless rows = n_head * head_dim with head_dim even.
std::vector<int64_t> rope_row_permutation(int64_t rows, int64_t n_head);
// The inverse (llama.cpp layout -> HF layout).
std::vector<int64_t> inverse_permutation(const std::vector<int64_t>& perm);

// dst row r = src row perm[r]. Whole rows move, so per-row group quantization commutes with it.
Mat permute_rows(const Mat& m, const std::vector<int64_t>& perm);
std::vector<float> permute_rows(const std::vector<float>& v, const std::vector<int64_t>& perm);
QuantizedMatrix permute_rows(const QuantizedMatrix& q, const std::vector<int64_t>& perm);
// Rows [row0, row0 + n) of a matrix (a role's part of a fused tensor).
Mat slice_rows(const Mat& m, int64_t row0, int64_t n);
QuantizedMatrix slice_rows(const QuantizedMatrix& q, int64_t row0, int64_t n);

}  // namespace awq::gguf
