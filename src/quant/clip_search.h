// Clip search (awq-spec §1.11, llm-awq/AutoAWQ auto_clip): per (output row, group), the max-abs
// clip value m = m0 * (1 - i / n_grid), i = 0 .. n_grid * max_shrink - 1, m0 = max|w_group|, that
// minimizes the error of the group's partial outputs on calibration inputs,
//     sum_t (x_t,g . Q(clamp(w_g, -m, m)) - x_t,g . w_g)^2
// (the reference's mean over t has the same argmin). Ties keep the larger m.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "quant/quant_spec.h"

namespace awq {

struct ClipOptions {
  int n_grid = 20;
  float max_shrink = 0.5f;
};

// w [out, in], x [t, in] (the layer's inputs, already subsampled to ~512 tokens). Returns the
// chosen max_val [out, n_groups]. Results are bit-identical for any thread count.
//
// How: for each group the objective is d^T G d with d = Q(clamp(w)) - w and G = X_g^T X_g, so the
// search factors G = U^T U once per group (Gram matrix and Cholesky in double) and evaluates
// ||U d||^2: group^2/2 multiply-adds per candidate instead of t * group. When the group is wider
// than 2t it uses X_g itself (t * group). Rows are processed in batches, one row per SIMD lane.
std::vector<float> search_clip(const float* w, int64_t out, int64_t in, const float* x, int64_t t,
                               const QuantSpec& spec, const ClipOptions& opts = {},
                               const std::string& tensor = "clip search");

// Clamps every group of W [out, in] to [-max_val, max_val] (max_val [out, in/group]); group -1
// means the whole row.
void apply_clip(float* w, int64_t out, int64_t in, const std::vector<float>& max_val, int group);

}  // namespace awq
