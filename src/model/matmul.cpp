#include "model/matmul.h"

#include "kernels/gemm.h"

namespace awq::model_detail {

void matmul_f32(const float* x, int64_t n, const float* w, int64_t out, int64_t in,
                const float* bias, float* y) {
  kernels::gemm_f32(x, n, w, out, in, bias, y);
}

void matmul_f32_in_bf16(const float* x, int64_t n, const float* w, int64_t out, int64_t in,
                        const float* bias, float* y) {
  kernels::gemm_f32_in_bf16(x, n, w, out, in, bias, y);
}

void matmul_half(const float* x, int64_t n, const uint16_t* w, DType type, int64_t out, int64_t in,
                 const float* bias, float* y) {
  if (type == DType::BF16) {
    kernels::gemm_bf16(x, n, w, out, in, bias, y);
  } else {
    kernels::gemm_f16(x, n, w, out, in, bias, y);
  }
}

}  // namespace awq::model_detail
