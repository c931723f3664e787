// Reading an AutoAWQ "GEMM" linear (qweight/qzeros/scales, see quant/awq_gemm_pack.h) from a
// checkpoint: as the quantizer's codes/scales/zeros (for the W4 kernels) or as an f32 [out, in]
// weight (the working form for calibration, the f32 and native evaluation modes, and tests).
#pragma once
#include <cstdint>
#include <string>

#include "base/mat.h"
#include "formats/checkpoint.h"
#include "model/config.h"
#include "quant/quantized_matrix.h"

namespace awq {

// `name` is the linear's prefix ("model.layers.0.self_attn.q_proj"); tensor shapes and dtypes are
// checked against [out, in] and the quantization config; errors name the file and the tensor.
QuantizedMatrix read_awq_linear(const Checkpoint& ck, const std::string& name,
                                const AwqQuantConfig& q, int64_t out, int64_t in);
Mat dequantize_awq_linear(const Checkpoint& ck, const std::string& name, const AwqQuantConfig& q,
                          int64_t out, int64_t in);

}  // namespace awq
