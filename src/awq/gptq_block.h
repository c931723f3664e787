// GPTQ for every linear of one decoder block (quant/gptq.h), from the block's captured inputs.
#pragma once
#include <cstdint>
#include <vector>

#include "awq/search_result.h"
#include "model/architecture.h"
#include "model/block.h"
#include "quant/gptq.h"
#include "quant/quantized_matrix.h"

namespace awq {

// The block's linears rounded by GPTQ, in kAllLinearRoles order (an empty matrix for a sparse
// layer's dense feed-forward roles). Each linear's Hessian is the Gram matrix of the input it
// reads in `cap` (already divided by the AWQ scales when those were folded): one per distinct
// input, built once in double and shared by the linears that read it (q, k, v; gate and up). The
// weights are w's as they stand (scaled for awq-gptq); a linear with an entry in `clips` (role;
// expert for gptq_experts) takes its groups' ranges from it (GptqClip) instead of being clipped
// first. Appends one record per linear to `stats`.
std::vector<QuantizedMatrix> gptq_block(const Architecture& arch, int64_t layer,
                                        const BlockWeights& w, const BlockCapture& cap,
                                        const QuantSpec& spec, const GptqOptions& opts,
                                        const std::vector<ClipResult>& clips, int clip_grid,
                                        std::vector<GptqLinearResult>& stats);

// The experts of sparse block w (then its shared expert) rounded by GPTQ, in the pipeline's
// expert_linears order (gate, up, down of each), each on the inputs the MoE search calibrates it
// with (moe_search.h, expert_inputs: routed rows, or every row under min_tokens). An expert with
// no calibration row at all (min_tokens 0) is rounded to nearest.
std::vector<QuantizedMatrix> gptq_experts(const ModelConfig& cfg, const Architecture& arch,
                                          int64_t layer, const BlockWeights& w,
                                          const BlockCapture& cap, const QuantSpec& spec,
                                          const GptqOptions& opts, int64_t min_tokens,
                                          const std::vector<ClipResult>& clips, int clip_grid,
                                          std::vector<GptqLinearResult>& stats);

}  // namespace awq
