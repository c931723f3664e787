// The AVX512-BF16 pieces of gemm_f32_in_bf16 (internal; kernels_avx512bf16.cpp). Call them only
// when bf16_products_available() holds.
//
// Layout: two bfloat16 values share one 32-bit "pair", the one of the even column in the low
// half, as vdpbf16ps reads them. A panel holds 32 rows of W pair-major: panel[p * 32 + r] is the
// pair (W[r][2p], W[r][2p + 1]), zero beyond `rows` and beyond column `in` (odd in).
#pragma once
#include <cstdint>

namespace awq::kernels::detail {

// Rounds (to nearest even) rows [0, rows) (rows <= 32, row stride in) of W into a pair panel
// (64-byte aligned, (in + 1) / 2 * 32 pairs).
void bf16_pair_panel32(const float* w, int64_t in, int64_t rows, uint32_t* panel);

// Rounds n rows of x (row stride in) to rows of (in + 1) / 2 pairs, the odd tail paired with 0.
void bf16_pair_rows(const float* x, int64_t n, int64_t in, uint32_t* dst);

// y[t * ldy + r] = sum over pairs p of the panel's pair (r, p) dotted with x's pair (t, p)
// (+ bias[r]) for t < n, r < rows: one vdpbf16ps chain per output, in order of p. x holds
// `pairs` pairs per row.
void bf16_dot_panel32(const uint32_t* panel, int64_t pairs, const uint32_t* x, int64_t n,
                      int64_t rows, const float* bias, float* y, int64_t ldy);

}  // namespace awq::kernels::detail
