// The sparse mixture-of-experts feed-forward of Mixtral, Qwen2-MoE and Qwen3-MoE, computed as
// transformers 4.52 does (models/{mixtral,qwen2_moe,qwen3_moe}/modeling_*.py; families.md §6):
//
//   logits = router · x                      (per token, over all E experts)
//   p      = softmax(logits)                  (f32, over all E)
//   (w, e) = the k largest p, largest first   (ties: the lower expert index first)
//   w     /= sum(w)                           (iff norm_topk_prob; Mixtral always)
//   out    = Σ over the selected experts, in ascending expert index: w · down(act(gate x) ⊙ up x)
//   out   += sigmoid(shared_gate · x) · shared_expert(x)     (Qwen2-MoE only)
//
// Each expert runs only on the tokens routed to it (decode reads only k experts' weights), and
// the sum over experts is taken in ascending expert index, the order of transformers' loop of
// index_add_, so prefill, chunked prefill and decode agree and the result is the same for any
// thread count. Selecting on the probabilities rather than the logits follows transformers;
// with exactly equal probabilities torch.topk's order is unspecified, ours is the lower index.
#pragma once
#include <cstdint>
#include <vector>

#include "base/mat.h"
#include "model/config.h"
#include "model/linear.h"

namespace awq {

// One gated feed-forward (an expert, or the shared expert): down(act(gate x) ⊙ up x).
struct FfnWeights {
  Linear gate, up, down;
  bool present() const { return down.has_weight(); }
};

// A sparse layer's weights in working form. The router stays f32 whatever the weight form
// (it is small, and the top-k choice must not move with the linears' format).
struct MoeWeights {
  Mat router;                       // [num_experts, hidden]
  std::vector<FfnWeights> experts;  // num_experts routed experts, moe_intermediate_size wide
  FfnWeights shared;                // Qwen2-MoE's shared expert, or empty
  std::vector<float> shared_gate;   // [hidden]: sigmoid(shared_gate · x) scales it; empty: 1
  bool empty() const { return experts.empty(); }
};

// What the AWQ calibration of a sparse layer needs besides the MoE input (BlockCapture::mlp_in:
// all tokens feed the router, every expert's gate/up and the shared expert).
struct MoeCapture {
  std::vector<std::vector<int32_t>> tokens;  // [expert]: the input rows routed to it, ascending
  std::vector<std::vector<float>> weights;   // [expert]: their routing weights (as applied)
  std::vector<Mat> down_in;                  // [expert]: its down projection's input, [tokens, I]
  Mat shared_down_in;                        // the shared expert's down input, all tokens
};

// Routing of n tokens: for token t, the k experts expert[t*k + j] (largest weight first) with
// weights weight[t*k + j].
struct MoeRouting {
  int64_t k = 0;
  std::vector<int32_t> expert;
  std::vector<float> weight;
};
MoeRouting moe_route(const ModelConfig& cfg, const MoeWeights& w, const Mat& xn);

// The MoE feed-forward on normed input xn [n, hidden] -> out [n, hidden] (out must not be xn).
void moe_forward(const ModelConfig& cfg, const MoeWeights& w, const Mat& xn, Mat& out,
                 MoeCapture* cap = nullptr);

// Bytes of weights one token's forward reads: the router, the shared expert and k experts (of
// the average size).
int64_t moe_active_weight_bytes(const ModelConfig& cfg, const MoeWeights& w);
// Multiply-accumulates per token, as moe_active_weight_bytes counts weights.
double moe_active_macs(const ModelConfig& cfg, const MoeWeights& w);

}  // namespace awq
