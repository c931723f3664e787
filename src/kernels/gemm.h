// Dense matrix products for f32, f16 and bf16 weights.
//
// All of them compute y[n, out] = x[n, in] · W[out, in]^T (+ bias[out] when bias != nullptr), with
// x, W and y row-major and W as Hugging Face stores it (one row per output feature). Activations
// and results are always f32. Work is split over fixed chunks of output rows (awq::parallel_for),
// so the result is bit-identical for any thread count.
#pragma once
#include <cstdint>

namespace awq::kernels {

// With AVX2 / AVX-512: up to 8 tokens stream W once through a SIMD dot-product kernel (decode is
// memory-bound); more tokens multiply 32-row panels of W (transposed to k-major, in L2) with
// blocks of tokens in a register-blocked FMA microkernel. Scalar ISA: OpenBLAS sgemm,
// single-threaded inside, parallel over fixed chunks of `out`.
void gemm_f32(const float* x, int64_t n, const float* w, int64_t out, int64_t in, const float* bias,
              float* y);

// W holds IEEE half / bfloat16 bits and may point straight into an mmapped file (2-byte aligned
// is enough). Small n streams W once with a SIMD dot-product kernel (decode is memory-bound);
// large n converts 32-row panels of W to f32 for the same microkernel as gemm_f32.
void gemm_f16(const float* x, int64_t n, const uint16_t* w, int64_t out, int64_t in,
              const float* bias, float* y);
void gemm_bf16(const float* x, int64_t n, const uint16_t* w, int64_t out, int64_t in,
               const float* bias, float* y);

// y = x · W^T (+ bias) with every element of x and W rounded to bfloat16 (to nearest even) and
// the products summed in f32: the AWQ scale search's products with --search-precision bf16
// (awq/pipeline.h). Needs bf16_products_available() (throws awq::Error otherwise): AVX512-BF16's
// vdpbf16ps does twice the multiply-adds per instruction of an f32 FMA. Each output is one chain
// over pairs of columns in order, so the result is bit-identical for any thread count.
void gemm_f32_in_bf16(const float* x, int64_t n, const float* w, int64_t out, int64_t in,
                      const float* bias, float* y);
// True when the CPU has AVX512-BF16 and the active ISA (AWQ_ISA, force_isa) is avx512.
bool bf16_products_available();

}  // namespace awq::kernels
