// Scalar references: the plainest code that computes what each kernel promises, single-threaded,
// accumulating in double. Tests hold every ISA's kernels against these; nothing else uses them.
#pragma once
#include <cstdint>

#include "kernels/q8.h"
#include "kernels/w4.h"

namespace awq::kernels::ref {

void gemm_f32(const float* x, int64_t n, const float* w, int64_t out, int64_t in, const float* bias,
              float* y);
void gemm_f16(const float* x, int64_t n, const uint16_t* w, int64_t out, int64_t in,
              const float* bias, float* y);
void gemm_bf16(const float* x, int64_t n, const uint16_t* w, int64_t out, int64_t in,
               const float* bias, float* y);
// gemm_f32_in_bf16's promise: x and W rounded to bfloat16 (to nearest even), the products of the
// rounded values summed in double.
void gemm_f32_in_bf16(const float* x, int64_t n, const float* w, int64_t out, int64_t in,
                      const float* bias, float* y);

// Dequantize each row (W4Matrix::dequantize_row), then the f32 product.
void gemm_w4a16(const float* x, int64_t n, const W4Matrix& w, const float* bias, float* y);

// The int8 activation quantization every ISA reproduces bit for bit: per block of 32,
// d = max|x| / 127, q = nearbyint(x * (127 / max|x|)) (0 for an all-zero block), sum = sum of q.
void quantize_row_q8(const float* x, int64_t in, int8_t* q, float* d, int32_t* sums);

// w4a8 from its definition: y = sum over blocks b of s * d_b * sum_k (code_k - z) * q_k, with the
// integer dot products exact and the rest in double.
void gemm_w4a8(const float* x, int64_t n, const W4Matrix& w, const float* bias, float* y);

// q8a8 from its definition: y = sum over blocks b of d_w[o][b] * d_x[b] * sum_k code_k * q_k, with
// the integer dot products exact and the rest in double.
void gemm_q8a8(const float* x, int64_t n, const Q8Matrix& w, const float* bias, float* y);

}  // namespace awq::kernels::ref
