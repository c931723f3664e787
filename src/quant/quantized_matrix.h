// QuantizedMatrix: a weight [out, in] as the quantizer chose it — integer codes, per-group f16
// scales and integer zero points — from which every file format is an exact re-layout.
#pragma once
#include <cstdint>
#include <vector>

#include "quant/quant_spec.h"

namespace awq {

struct QuantizedMatrix {
  int64_t out = 0, in = 0;
  QuantSpec spec;
  int group = 0;  // resolved group length (spec.group_for(in))

  std::vector<uint8_t>
      codes;  // [out, in], each in [0, 2^bits - 1]; symmetric codes are q + 2^(bits-1)
  std::vector<float> scales;   // [out, in/group], values exactly representable in f16
  std::vector<uint8_t> zeros;  // [out, in/group]; symmetric: all 2^(bits-1)

  int64_t n_groups() const { return group > 0 ? in / group : 0; }

  // (code - zero) * scale: the weight every consumer reconstructs.
  float dequant(int64_t o, int64_t i) const {
    const int64_t g = o * n_groups() + i / group;
    return float(int(codes[size_t(o * in + i)]) - int(zeros[size_t(g)])) * scales[size_t(g)];
  }
  void dequantize(float* w_out) const;  // all of it, row-major [out, in]
};

}  // namespace awq
