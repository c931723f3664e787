// GPTQ (Frantar et al., ICLR 2023): error-compensating rounding of a weight W [out, in] given the
// Gram matrix G = X^T X of the inputs it reads. Columns are quantized in order; each column's
// rounding error is spread over the columns not yet quantized through the upper Cholesky factor
// U of H^-1, H = G + damp·mean(diag G)·I, so that the layer's output error on the calibration
// inputs, tr((W - Q) G (W - Q)^T), is what the rounding minimizes instead of |W - Q|.
//
// As the reference implementations (IST-DASLab gptq, AutoGPTQ, GPTQModel):
//  - input channels that never fire (G_jj = 0) get H_jj = 1 and their weights are zeroed;
//  - lazy batches: a block of columns is quantized with updates inside the block, then the rest
//    of the row is updated once with the block's errors (a matrix product);
//  - a group's scale and zero are taken when the group is entered, from the weights as updated so
//    far (here with every earlier update applied: the reference reads the group from a copy that
//    misses the current block's updates when a group starts inside a block, i.e. for groups
//    smaller than the block; for groups of the block's size the two are the same);
//  - act_order: columns in order of decreasing H_jj, with "static groups" (each group's scale and
//    zero taken from the unmodified weights, so that the groups stay contiguous runs of input
//    channels and the AutoAWQ layout, which has no g_idx, holds the result).
// The quantizer is awq.cpp's (quantize.h: min/max range, scale rounded to f16 when spec says so),
// identical to GPTQ's own for every group whose values span zero.
//
// Every row's arithmetic is independent of the others and of the thread count: the result is
// bit-identical for any number of threads.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "quant/clip_search.h"
#include "quant/quant_spec.h"
#include "quant/quantized_matrix.h"

namespace awq {

struct GptqOptions {
  double damp = 0.01;      // fraction of the mean of diag(G) added to the diagonal
  int block = 128;         // columns per lazy batch (rounded to fit the group size)
  bool act_order = false;  // descending diag(G) order with static groups
};

struct GptqStats {
  int64_t dead = 0;     // input channels with G_jj = 0
  double damp = 0;      // the damping used (raised x10 while H was not positive definite)
  int64_t rows = 0;     // rows the losses were measured on (every k-th row, at most kLossRows)
  double rtn_loss = 0;  // mean over those rows of (w - q) G (w - q)^T: plain rounding (of the
                        // clipped weights, over the same ranges, when clipping)
  double loss = 0;      // the same for GPTQ's codes
};

// Rows the loss statistics sample (evaluating them costs in^2 per row, as much as GPTQ itself).
inline constexpr int64_t kGptqLossRows = 256;

// Clipping inside GPTQ (awq-gptq): each group's range is the clamp interval its chosen clip
// candidate (clip_search.h) gives on the group's weights when the group is entered, instead of
// their min and max. The weights themselves are not clipped first: a weight outside the range
// rounds to the nearest end, and that error, like every other, is compensated by the columns
// after it.
struct GptqClip {
  const ClipChoice* choice = nullptr;  // [out, n_groups]
  int n_grid = 20;
};

// w [out, in] row-major, gram [in, in] row-major (both triangles), spec as quantize(). Throws
// awq::Error naming `tensor` for a bad spec, NaN/Inf in w or gram, a gram of the wrong size, or
// a matrix that stays indefinite after damping.
QuantizedMatrix gptq_quantize(const float* w, int64_t out, int64_t in,
                              const std::vector<double>& gram, const QuantSpec& spec,
                              const GptqOptions& opts, const std::string& tensor,
                              GptqStats* stats = nullptr, const GptqClip& clip = {});

// The columns' processing order: identity, or with act_order the channels by decreasing G_jj
// (ties by index).
std::vector<int64_t> gptq_order(const std::vector<double>& gram, int64_t in, bool act_order);

// The lazy-batch width for groups of `group` columns: `block` rounded so that every group starts
// at a block boundary or wholly inside one block.
int gptq_block(int block, int group);

}  // namespace awq
