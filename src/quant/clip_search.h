// Clip search (awq-spec §1.11, llm-awq/AutoAWQ auto_clip): per (output row, group), the clamp
// interval [lo, hi] that minimizes the error of the group's partial outputs on calibration inputs,
//     sum_t (x_t,g . Q(clamp(w_g, lo, hi)) - x_t,g . w_g)^2
// (the reference's mean over t has the same argmin), among candidates built from the shrink
// factors f_i = 1 - i / n_grid, i = 0 .. n_grid * max_shrink - 1:
//   symmetric (the reference's): [-m0 f_i, m0 f_i], m0 = max|w_group|;
//   asymmetric (with a zero point): [min f_i, max f_j], every pair (i, j): a lopsided group can
//   clip its outlying side alone, which the zero point's range then follows.
// Ties keep the candidate that clips least (the lower index).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "base/row_source.h"
#include "quant/quant_spec.h"

namespace awq {

struct ClipOptions {
  int n_grid = 20;
  float max_shrink = 0.5f;
  bool asymmetric = false;  // separate lower and upper bounds (only with a zero point)
};

// Shrink factor i: f_i = 1 - i / n_grid, in double then rounded to f32 (the search's candidates).
float clip_shrink(int index, int n_grid);
// Shrink factors per side: int(max_shrink * n_grid), at least 1.
int clip_steps(const ClipOptions& opts);
// Whether `opts` asks for asymmetric bounds and `spec` has the zero point they need.
bool clip_asymmetric(const ClipOptions& opts, const QuantSpec& spec);

// The chosen candidate of every (row, group) of one weight [out, n_groups], as shrink indices:
// hi[i] for the upper side (both sides when lo is empty: symmetric), lo[i] for the lower side.
struct ClipChoice {
  std::vector<uint8_t> hi, lo;
};

// Widest group the objective is factored for (the factors take in * group floats); wider groups
// (whole rows of wide layers) use X itself.
inline constexpr int kClipMaxFactoredGroup = 1024;

// The clip objective's matrix per input group of one layer input x [t, in]: U (g x g, upper
// triangular, G = X_g^T X_g = U^T U, factored in double) when that is cheaper than X_g itself
// (t x g), else X_g. Built once per captured input and shared by every weight that reads it.
struct ClipInputs {
  int64_t in = 0, t = 0;
  int group = 0;
  bool triangular = false;
  std::vector<float> u;      // [in / group][group][group] when triangular
  std::vector<float> x_own;  // a scaled copy of X (not triangular, after scaled())
  const float* x = nullptr;  // X [t, in] (not triangular): the caller's, or x_own

  // The inputs x / s (each channel j divided by s_j, s > 0): for the triangular form exactly
  // U·diag(1/s), which is the Cholesky factor of diag(1/s)·G·diag(1/s), so no new Gram matrix;
  // otherwise a divided copy of X.
  ClipInputs scaled(const std::vector<float>& s) const;
};

// Checks x for NaN/Inf (naming `tensor`) and builds the per-group matrices. The groups are
// spec.group_for(in); x must outlive the result when it is not triangular.
ClipInputs prepare_clip_inputs(const float* x, int64_t t, int64_t in, const QuantSpec& spec,
                               const std::string& tensor = "clip search");
// Whether prepare_clip_inputs takes the factored (triangular) form for t tokens of width `in`.
bool clip_inputs_factored(int64_t t, int64_t in, const QuantSpec& spec);
// The factored form from rows read a chunk at a time (x is never whole in f32): the per-group Gram
// sums in the same order as the pointer version's chunked branch. Needs clip_inputs_factored.
// `read_bytes`: f32 bytes read at a time (rounded to whole Gram chunks).
ClipInputs prepare_clip_inputs(const RowSource& x, const QuantSpec& spec,
                               const std::string& tensor = "clip search",
                               int64_t read_bytes = int64_t(64) << 20);

// w [out, in] and its inputs. Returns the chosen candidates [out, n_groups]. Results are
// bit-identical for any thread count.
//
// How: for each group the objective is d^T G d with d = Q(clamp(w)) - w and G = X_g^T X_g, so the
// search evaluates ||U d||^2: group^2/2 multiply-adds per candidate instead of t * group, and the
// cost of the search does not grow with the number of tokens once U is built. When the group is
// wider than 2t (or 1024) it uses X_g itself (t * group). Rows are processed in batches, one row
// per SIMD lane.
ClipChoice search_clip(const float* w, int64_t out, int64_t in, const ClipInputs& inputs,
                       const QuantSpec& spec, const ClipOptions& opts = {},
                       const std::string& tensor = "clip search");

// The same from x [t, in] directly (prepare_clip_inputs, then search_clip).
ClipChoice search_clip(const float* w, int64_t out, int64_t in, const float* x, int64_t t,
                       const QuantSpec& spec, const ClipOptions& opts = {},
                       const std::string& tensor = "clip search");

// Clamps every group of W [out, in] (group -1: the whole row) to the interval its chosen
// candidate gives on the group's current min and max (qk::clip_bounds): the floats the search
// evaluated. Indices must be below n_grid.
void apply_clip(float* w, int64_t out, int64_t in, const ClipChoice& choice, int group, int n_grid,
                const std::string& tensor = "clip");

}  // namespace awq
