// The model layer's matrix products, y[n, out] = x[n, in] · W[out, in]^T (+ bias[out]), in one
// place: they forward to the kernels layer (kernels/gemm.h: OpenBLAS for f32, streaming or
// convert-then-sgemm for f16/bf16). W is row-major [out, in], as Hugging Face stores linears.
#pragma once
#include <cstdint>

#include "formats/dtype.h"

namespace awq::model_detail {

void matmul_f32(const float* x, int64_t n, const float* w, int64_t out, int64_t in,
                const float* bias, float* y);
// x and W rounded to bfloat16, f32 sums (Linear::bf16_products; kernels::gemm_f32_in_bf16).
void matmul_f32_in_bf16(const float* x, int64_t n, const float* w, int64_t out, int64_t in,
                        const float* bias, float* y);

// W holds f16 or bf16 bits (`type` says which), e.g. rows straight from an mmapped checkpoint.
void matmul_half(const float* x, int64_t n, const uint16_t* w, DType type, int64_t out, int64_t in,
                 const float* bias, float* y);

}  // namespace awq::model_detail
