// Folding AWQ scales into the weights (awq-spec §1.10). For a scaling group with scale s:
//   the op before the group absorbs 1/s — a norm's weight (w_j /= s_j), or the LAST len(s) output
//   rows of the previous linear (and their bias), so a fused qkv prev-op would scale only its V;
//   every consumer's input columns are multiplied by s (W[:, j] *= s_j).
// The composition computes the same function in exact arithmetic; in floating point it agrees to
// rounding (tests check 1e-5 relative on whole blocks).
#pragma once
#include <span>
#include <vector>

#include "base/mat.h"
#include "model/linear.h"

namespace awq {

void scale_columns(Mat& w, std::span<const float> s);                 // w[:, j] *= s_j
void divide_columns(Mat& x, std::span<const float> s);                // x[:, j] /= s_j
void divide_vector(std::vector<float>& v, std::span<const float> s);  // v_j /= s_j
// The last len(s) output rows of `prev` (and of its bias) divided by s.
void divide_tail_rows(Linear& prev, std::span<const float> s);

}  // namespace awq
