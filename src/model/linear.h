// Linear: y[n, out] = x[n, in] · W^T + b, with the weight in one of three forms:
//   - w:   f32 [out, in], the working form (calibration and the AWQ search modify it in place);
//   - w16/w32: f16/bf16 or f32 rows straight from an mmapped checkpoint (nothing copied);
//   - w4:  the 4-bit run-time form repacked for the W4 kernels.
// Exactly one form is set; forward() uses whichever it is.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "base/mat.h"
#include "formats/dtype.h"

namespace awq {
namespace kernels {
class W4Matrix;
}

struct Linear {
  int64_t in = 0, out = 0;
  Mat w;                          // f32 [out, in], or empty
  std::vector<float> bias;        // [out], or empty when the linear has none
  const uint16_t* w16 = nullptr;  // f16/bf16 [out, in] inside a mapping
  DType w16_type = DType::F16;
  const float* w32 = nullptr;  // f32 [out, in] inside a mapping
  std::shared_ptr<const kernels::W4Matrix> w4;
  bool w4a8 = false;  // w4 with activations quantized to 8 bits on the fly

  bool has_weight() const { return !w.empty() || w16 || w32 || w4; }
  // Bytes of weight the form reads per forward (for bandwidth reports).
  int64_t weight_bytes() const;
  void forward(const float* x, int64_t n, float* y) const;
  void forward(const Mat& x, Mat& y) const;  // y resized to [x.rows, out]
  // The weight as an f32 [out, in] matrix, whatever its form (a copy).
  Mat weight_f32() const;
};

}  // namespace awq
