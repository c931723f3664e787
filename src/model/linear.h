// Linear: y[n, out] = x[n, in] · W^T + b, with the weight in one of three forms:
//   - w:   f32 [out, in], the working form (calibration and the AWQ search modify it in place);
//   - w16/w32: f16/bf16 or f32 rows straight from an mmapped checkpoint (nothing copied);
//   - w4:  the 4-bit run-time form repacked for the W4 kernels;
//   - q8:  an int8 copy made at load (the lm_head for decode: to_q8), int8 activations.
// Exactly one form is set; forward() uses whichever it is.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/mat.h"
#include "formats/dtype.h"

namespace awq {
namespace kernels {
class W4Matrix;
class Q8Matrix;
}  // namespace kernels

// Linears that read the same input (q|k|v, gate|up) may share one W4 matrix holding their rows
// stacked (fuse_w4), so that decode runs one kernel call (one parallel_for, one quantization of
// the activations) for all of them.
struct W4Fused {
  std::shared_ptr<const kernels::W4Matrix> w4;  // the parts' rows, stacked in order
  std::vector<float> bias;                      // stacked, or empty when no part has one
};

struct Linear {
  int64_t in = 0, out = 0;
  Mat w;                          // f32 [out, in], or empty
  std::vector<float> bias;        // [out], or empty when the linear has none
  const uint16_t* w16 = nullptr;  // f16/bf16 [out, in] inside a mapping
  DType w16_type = DType::F16;
  const float* w32 = nullptr;  // f32 [out, in] inside a mapping
  std::shared_ptr<const kernels::W4Matrix> w4;
  bool w4a8 = false;  // w4 with activations quantized to 8 bits on the fly
  // Set by fuse_w4: w4 is then a view of rows [fused_row0, fused_row0 + out) of fused->w4.
  std::shared_ptr<const W4Fused> fused;
  int64_t fused_row0 = 0;
  std::shared_ptr<const kernels::Q8Matrix> q8;  // int8 rows (an lm_head under --lm-head q8)
  // The AWQ scale search's candidates (--search-precision bf16): an f32 form (w, w32) multiplies
  // with x and W rounded to bfloat16 and f32 sums (kernels::gemm_f32_in_bf16). Off everywhere
  // else: calibration, the written weights and evaluation stay f32.
  bool bf16_products = false;

  bool has_weight() const { return !w.empty() || w16 || w32 || w4 || q8; }
  // Bytes of weight the form reads per forward (for bandwidth reports).
  int64_t weight_bytes() const;
  void forward(const float* x, int64_t n, float* y) const;
  void forward(const Mat& x, Mat& y) const;  // y resized to [x.rows, out]
  // The weight as an f32 [out, in] matrix, whatever its form (a copy).
  Mat weight_f32() const;
};

// A linear reading a [out, in] float matrix of `dtype` at `data` in place (f16/bf16 as w16, f32 as
// w32: nothing copied, the mapping must outlive it), or an f32 copy when misaligned (or another
// type that convert_to_f32 reads).
Linear linear_in_place(const void* data, DType dtype, int64_t out, int64_t in);

// The int8 copy of a float linear (w, w16 or w32; its bias kept): a separate allocation, so that
// whatever else reads the source rows (tied embeddings) still reads them. `name` (the tensor)
// goes into errors: a W4 or empty linear, a width not a multiple of 32, a non-finite weight.
Linear to_q8(const Linear& l, const std::string& name);

// Stacks W4 linears that read the same input into one matrix; each part's w4 becomes a view into
// it (the packed bytes are not duplicated). Returns false, changing nothing, when they cannot be
// fused: a part not W4, different input widths or group sizes, bias on some parts only, or a
// part other than the last whose row count is not a multiple of 16 (the W4 tile).
bool fuse_w4(std::span<Linear* const> parts);
// True when `parts` are exactly the linears of one fuse_w4 group, in order.
bool is_fused_group(std::span<const Linear* const> parts);

// Up to this many tokens, forward_group runs fused parts as one kernel call (decode and small
// batches, where the call overhead matters); beyond, each part runs alone.
inline constexpr int64_t kFusedMaxTokens = 8;

// *ys[i] = parts[i]->forward(x) for every i, bit-identical to calling them one by one: when the
// parts are the whole of one fuse_w4 group with the same activation form and x has at most
// kFusedMaxTokens rows, one product over the stacked matrix whose columns are split after.
void forward_group(std::span<const Linear* const> parts, const Mat& x, std::span<Mat* const> ys);

}  // namespace awq
