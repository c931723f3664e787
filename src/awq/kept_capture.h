// The AWQ steps of one dense block (block_search.h) on captured inputs kept as ActMats
// (--act-dtype bf16/f16): only the input the current group or linear reads is f32 at a time.
// At llama-3.1-70b's shape and 128 x 512 tokens that is at most down_proj's 7 GiB instead of all
// 17 GiB of captures in f32.
//
// The captured outputs (the search's reference) are not kept: each group recomputes its
// reference from the same rounded input its candidates read, so the loss measures the weights'
// error only, not the rounding of the activations.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "awq/act_store.h"
#include "awq/block_search.h"

namespace awq {

struct KeptCapture {
  ActMat attn_in, o_in, mlp_in, down_in;
  // Each input's per-channel mean |x| (the scale search's statistic), taken from f32 before the
  // rounding: indexed by the input's first reader (Q, O, Gate, Down).
  std::array<std::vector<float>, kNumLinearRoles> mean;

  explicit KeptCapture(ActDtype d) : attn_in(d), o_in(d), mlp_in(d), down_in(d) {}
  ActMat& input(LinearRole r);
  size_t bytes() const { return attn_in.bytes() + o_in.bytes() + mlp_in.bytes() + down_in.bytes(); }
};

// Sets cap's hook (BlockCapture::on_captured) so that block_forward moves each captured input
// into `kept` (with its mean |x|) as soon as it is complete and drops the captured outputs.
// Errors name the layer.
void keep_capture(BlockCapture& cap, KeptCapture& kept, int64_t layer);

// search_block_scales, one group at a time with only that group's input in f32.
std::vector<GroupResult> search_kept_scales(const ModelConfig& cfg, const Architecture& arch,
                                            int64_t layer, const BlockWeights& w, KeptCapture& kept,
                                            int64_t n_seq, int64_t T,
                                            const ScaleSearchOptions& opt);

// apply_block_scales on the weights; each scaled group's kept input is divided by its scales
// (in f32) and rounded again.
void apply_kept_scales(const Architecture& arch, int64_t layer, BlockWeights& w, KeptCapture& kept,
                       const std::vector<GroupResult>& groups);

// search_block_clips, one captured input at a time; each input is released once its linears are
// done (nothing reads the captures after the clip search).
std::vector<ClipResult> search_kept_clips(const Architecture& arch, int64_t layer,
                                          const BlockWeights& w, KeptCapture& kept,
                                          const QuantSpec& spec, const ClipOptions& copt,
                                          int64_t n_tokens);

}  // namespace awq
