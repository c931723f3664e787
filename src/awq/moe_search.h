// AWQ on a sparse (mixture-of-experts) feed-forward: Mixtral, Qwen2-MoE, Qwen3-MoE. The
// attention's groups are the dense block's (block_search.h); the feed-forward has these:
//
//   moe.gate_up           post-attention norm → every expert's gate and up (and the shared
//                         expert's): ONE s, searched on all tokens (every token reaches the router
//                         and some experts), w̄ over all of those weights, loss = the MoE output
//                         with full-precision routing (AutoAWQ's module2inspect = the MoE block).
//                         Folding multiplies the router's and the shared-expert gate's columns by
//                         s too, so routing is unchanged (AutoAWQ leaves the router out and
//                         changes routing; llm-compressor balances it).
//   moe.down, expert e    e's up → e's down, on the tokens routed to e (its down input).
//   moe.down, shared      the shared expert's up → down, on every token.
//
// Clipping is per expert: gate/up on the rows of the MoE input routed to the expert, down on its
// down input. An expert that received fewer than `min_tokens` calibration tokens is calibrated on
// every token passed through it (the MoE input through its gate/up: llm-compressor's
// moe_calibrate_all_experts) instead of on almost nothing; the report names each such expert.
// The router and the shared-expert gate are never quantized.
#pragma once
#include <cstdint>
#include <vector>

#include "awq/block_search.h"

namespace awq {

struct MoeSearchOptions {
  ScaleSearchOptions scale;  // grid, mode, screening (clip-aware scoring is not used here)
  int64_t min_tokens = 16;   // experts with fewer routed tokens use every token
};

// The routed tokens of each expert in `cap` (cap.moe.tokens sizes).
std::vector<int64_t> expert_token_counts(const BlockCapture& cap, int64_t n_experts);

// Searches the MoE groups of sparse block `w` (unmodified) with its capture.
std::vector<GroupResult> search_moe_scales(const ModelConfig& cfg, const Architecture& arch,
                                           int64_t layer, const BlockWeights& w,
                                           const BlockCapture& cap, int64_t n_seq, int64_t T,
                                           const MoeSearchOptions& opt);

// Folds the MoE groups into w (norm, experts, router, shared gate) and, when `cap` is given,
// divides the captured inputs accordingly. Checks the result is finite.
void apply_moe_scales(int64_t layer, BlockWeights& w, BlockCapture* cap,
                      const std::vector<GroupResult>& groups);

// Clip search of every expert linear (and the shared expert's) on its calibration rows.
std::vector<ClipResult> search_moe_clips(const ModelConfig& cfg, const Architecture& arch,
                                         int64_t layer, const BlockWeights& w,
                                         const BlockCapture& cap, const QuantSpec& spec,
                                         const ClipOptions& copt, int64_t min_tokens,
                                         int64_t clip_tokens = 0);
void apply_moe_clips(int64_t layer, BlockWeights& w, std::vector<ClipResult>& clips,
                     const QuantSpec& spec, int n_grid);

// The calibration inputs of expert e (or kSharedExpert) as the MoE search and clip search use
// them: gate/up read the MoE input rows routed to it (every row for the shared expert and for
// experts under min_tokens), down its down input (recomputed on every row through the current
// gate/up for experts under min_tokens). The pointers address `cap` or the owned copies.
struct ExpertInputs {
  Mat gate_up_own, down_own;
  const Mat* gate_up = nullptr;
  const Mat* down = nullptr;
};
void expert_inputs(const ModelConfig& cfg, const BlockWeights& w, const BlockCapture& cap,
                   int expert, int64_t min_tokens, ExpertInputs& in);
// The experts of sparse block w in storage order, then kSharedExpert if it has one.
std::vector<int> experts_of(const BlockWeights& w);

// The linear of a sparse block that a group or clip addresses (expert e or kSharedExpert; role
// Gate, Up or Down).
Linear& moe_linear(BlockWeights& w, int expert, LinearRole role);
const Linear& moe_linear(const BlockWeights& w, int expert, LinearRole role);

}  // namespace awq
