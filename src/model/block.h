// The Llama-family decoder block, data-oriented: weights are plain structs, the forward is free
// functions. One block_forward serves calibration (with a capture of every linear's input), the
// AWQ search (which calls attention_forward / mlp_forward on normed inputs), evaluation and
// generation (Model, which adds the KV-cache variant block_forward_cached).
#pragma once
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "base/mat.h"
#include "formats/checkpoint.h"
#include "model/architecture.h"
#include "model/config.h"
#include "model/linear.h"
#include "model/moe.h"
#include "model/ops.h"

namespace awq {

// [out, in] of each linear role under `c` (the shapes load_block reads and block_forward checks).
std::pair<int64_t, int64_t> linear_shape(const ModelConfig& c, LinearRole r);
// Whether linear `r` has a bias: q/k/v when attention_bias or the architecture says so (Qwen2),
// o when o_bias, the MLP's when mlp_bias.
bool linear_has_bias(const ModelConfig& c, LinearRole r);

// How a model's linears are held at run time.
enum class WeightForm {
  F32,     // every linear copied to f32 (the working form)
  Native,  // f16/bf16/f32 linears used in place from the mapping; AWQ linears dequantized to f32
  W4,      // AWQ linears repacked for the 4-bit kernels; float linears as Native
};

struct LoadOptions {
  WeightForm weights = WeightForm::Native;
  bool w4a8 = false;  // with W4: quantize activations to 8 bits on the fly
  // The lm_head as a run-time int8 copy (kernels::Q8Matrix, int8 activations) instead of the
  // checkpoint's float rows: ~half the bytes a decoded token reads for it (--lm-head q8).
  bool lm_head_q8 = false;

  // The run-time default for 4-bit models (awq eval / generate / bench, and Model::load /
  // load_any_model without options, through weight_form_for; also what "w4a8" names): AWQ linears
  // on the W4 kernels with activations in int8 (W4A8), the lm_head as its int8 copy, float linears
  // in place. The fastest path; it costs <= 0.08% perplexity on stories260K and <= 0.1% on the
  // families' outlier models (docs/benchmarks.md). "w4" (W4A16, float lm_head) is the exact one.
  static LoadOptions fastest() { return {WeightForm::W4, true, true}; }
};

// A block's weights in working form. Every norm holds its effective multiplier (1 + w for Gemma's
// norms: Architecture::norm_offset), so that the forward and AWQ's folding treat all families
// alike; the writers subtract the offset again.
struct BlockWeights {  // NOLINT(bugprone-reserved-identifier): clang names the array copy's index
  int64_t layer = 0;   // its index: the sliding window and RoPE of the layer depend on it
  std::vector<float> attn_norm, mlp_norm;  // [hidden]: feed q/k/v and gate/up
  std::vector<float> q_norm, k_norm;       // [head_dim] per-head norms before RoPE, or empty
  std::vector<float> post_attn_norm, post_mlp_norm;  // [hidden] on the outputs, or empty
  Linear lin[kNumLinearRoles];                       // indexed by LinearRole
  // A sparse layer (ModelConfig::is_moe_layer): the MoE feed-forward, and gate/up/down of lin
  // are empty (no weight, [0 x 0]).
  MoeWeights moe;
  Linear& operator[](LinearRole r) { return lin[int(r)]; }
  const Linear& operator[](LinearRole r) const { return lin[int(r)]; }
  bool is_moe() const { return !moe.empty(); }
};

// Where role `r` sits in the tensor it is stored in: its first row and the stored tensor's row
// count (a fused q|k|v or gate|up tensor, or its own: row 0 of its own rows).
struct StoredRows {
  int64_t row0 = 0, rows = 0;
};
StoredRows stored_rows(const ModelConfig& c, const Architecture& a, LinearRole r);

// Stacks q|k|v and gate|up into one W4 matrix each (fuse_w4: decode then makes one kernel call
// per group; see forward_group), as load_block does for W4. Groups that cannot be fused stay as
// they are. Returns the number of groups fused (already fused ones count).
int fuse_block_w4(BlockWeights& b);

// Loads block `layer` with every linear as f32 working weights: from F32/F16/BF16 tensors, or
// dequantized from an AutoAWQ GEMM checkpoint (qweight/qzeros/scales). Shapes are checked; errors
// name the file and the tensor.
BlockWeights load_block_f32(const Checkpoint& ck, const ModelConfig& cfg, const Architecture& arch,
                            int64_t layer);

// As load_block_f32 but float linears stay in the mapping (f16/bf16/f32 rows used in place, no
// copy); AWQ-quantized linears are dequantized to f32.
BlockWeights load_block_native(const Checkpoint& ck, const ModelConfig& cfg,
                               const Architecture& arch, int64_t layer);

// Any form (the two above, or W4: AWQ linears packed for the 4-bit kernels).
BlockWeights load_block(const Checkpoint& ck, const ModelConfig& cfg, const Architecture& arch,
                        int64_t layer, const LoadOptions& opts);

// The inputs of each linear, [n_tokens, in]: q/k/v (normed), o, gate/up (normed), down. In a
// sparse layer mlp_in is the MoE input (router, experts' gate/up, shared expert), down_in stays
// empty and moe holds the routing and the experts' down inputs.
// Receives rows [r0, r0 + rows.rows) of a [total, rows.cols] matrix as they are computed.
using RowSink = std::function<void(int64_t r0, int64_t total, const Mat& rows)>;

struct BlockCapture {
  Mat attn_in, o_in, mlp_in, down_in;  // every linear's input
  MoeCapture moe;
  // The attention's output (after o_proj) and the MLP's, before the residual adds: the scale
  // search's reference outputs, so it need not recompute them.
  Mat attn_out, mlp_out;
  // Optional: called with each of the six matrices above as soon as the forward has finished it
  // (dense blocks), so that a caller can keep it in a compact form and release it while the rest
  // of the block runs (awq/kept_capture.h: 16-bit captures of a 70B-shaped block).
  std::function<void(Mat&)> on_captured;
  // Optional: down_proj's input handed over a chunk of rows at a time as the MLP computes it
  // (row r0 of `total`), instead of stored in down_in, which then stays empty: at a 70B block's
  // width and 128 x 512 tokens it is 7 GiB in f32.
  RowSink down_in_rows;
  void captured(Mat& m) const {
    if (on_captured) on_captured(m);
  }
};

// x: [n_seq*T, hidden] holding n_seq independent sequences of T tokens at positions 0..T-1
// (causal). out may be the same object as x. With cap set, every linear's input is stored there
// too.
void block_forward(const ModelConfig& cfg, const BlockWeights& w, const Mat& x, int64_t n_seq,
                   int64_t T, Mat& out, BlockCapture* cap = nullptr);

// Attention on normed input xn [n_seq*T, hidden] -> out [n_seq*T, hidden] (o_proj applied); o_in,
// if set, receives o_proj's input [n_seq*T, q_dim].
void attention_forward(const ModelConfig& cfg, const BlockWeights& w, const Mat& xn, int64_t n_seq,
                       int64_t T, Mat& out, Mat* o_in = nullptr);

// SwiGLU MLP on normed input xn -> out; down_in, if set, receives silu(gate)*up. Dense layers
// only (a sparse layer's feed-forward is moe_forward, model/moe.h).
// With `down_in_rows` set, down_in's rows go there a chunk at a time instead (BlockCapture).
void mlp_forward(const ModelConfig& cfg, const BlockWeights& w, const Mat& xn, Mat& out,
                 Mat* down_in = nullptr, const RowSink* down_in_rows = nullptr);
// The same gated feed-forward for any three linears (an MoE expert): down(act(gate x) ⊙ up x).
void ffn_forward(const ModelConfig& cfg, const Linear& gate, const Linear& up, const Linear& down,
                 const Mat& xn, Mat& out, Mat* down_in = nullptr,
                 const RowSink* down_in_rows = nullptr);

// The block on x [n, hidden]: n consecutive tokens of one sequence at positions pos..pos+n-1, whose
// earlier keys/values are in cache rows 0..pos-1; this call stores rows pos..pos+n-1.
void block_forward_cached(const ModelConfig& cfg, const BlockWeights& w, const Mat& x, int64_t pos,
                          KvCache& cache, Mat& out);

}  // namespace awq
