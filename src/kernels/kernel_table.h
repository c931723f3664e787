// The per-ISA kernel entry points (internal). Each instruction set provides one KernelTable of
// plain function pointers, defined as constant data in its own translation unit (kernels_*.cpp)
// so that choosing a table never runs code compiled for a CPU we may not have.
#pragma once
#include <cstdint>

#include "kernels/isa.h"
#include "kernels/q8_layout.h"
#include "kernels/w4_layout.h"

namespace awq::kernels::detail {

struct KernelTable {
  // y[t, o] for t < n and rows o of tiles [tile0, tile1); y has row stride w.out.
  void (*w4a8)(const W4View& w, const Q8Acts& a, int64_t n, int64_t tile0, int64_t tile1,
               const float* bias, float* y);
  // Same for f32 activations; xsum[t * groups + j] = sum of x[t] over the columns of group j.
  void (*w4a16)(const W4View& w, const float* x, const float* xsum, int64_t n, int64_t tile0,
                int64_t tile1, const float* bias, float* y);
  // Dequantizes tiles [tile0, tile1) column-major: dst[k * ld + 16 * (tile - tile0) + r].
  void (*w4_dequant)(const W4View& w, int64_t tile0, int64_t tile1, float* dst, int64_t ld);
  // An f32 microkernel on a dequantized panel of 32 rows (w4a16 with many tokens): for t < n,
  // r < rows (<= 32): y[t * ldy + r] = sum_k panel[k * 32 + r] * x[t * in + k] (+ bias[r]),
  // one FMA chain per output in k order. nullptr: the ISA has none (dequantize + sgemm instead).
  void (*panel32)(const float* panel, int64_t in, const float* x, int64_t n, int64_t rows,
                  const float* bias, float* y, int64_t ldy);
  // One token's row of in (a multiple of 32) activations to int8 blocks (see Q8Acts).
  void (*quantize_q8)(const float* x, int64_t in, int8_t* q, float* d, int32_t* sums);
  // y[t, o] for t < n and o in [o0, o1) from half / bfloat16 / f32 rows; y has row stride ldy.
  // f32_rows is nullptr for the scalar ISA (OpenBLAS instead).
  void (*f16_rows)(const float* x, int64_t n, const uint16_t* w, int64_t in, int64_t o0, int64_t o1,
                   const float* bias, float* y, int64_t ldy);
  void (*bf16_rows)(const float* x, int64_t n, const uint16_t* w, int64_t in, int64_t o0,
                    int64_t o1, const float* bias, float* y, int64_t ldy);
  void (*f32_rows)(const float* x, int64_t n, const float* w, int64_t in, int64_t o0, int64_t o1,
                   const float* bias, float* y, int64_t ldy);
  // Rows [0, rows) (rows <= 32, row stride in) of an f32 / half / bfloat16 matrix as a panel for
  // panel32: panel[k * 32 + r], zero for r >= rows. nullptr where panel32 is.
  void (*f32_panel32)(const float* w, int64_t in, int64_t rows, float* panel);
  void (*f16_panel32)(const uint16_t* w, int64_t in, int64_t rows, float* panel);
  void (*bf16_panel32)(const uint16_t* w, int64_t in, int64_t rows, float* panel);
  void (*f16_to_f32)(const uint16_t* src, float* dst, int64_t count);
  void (*bf16_to_f32)(const uint16_t* src, float* dst, int64_t count);
  // Sum of p[0..n) (p 64-byte aligned, any n): the bandwidth probe's inner loop.
  float (*sum_f32)(const float* p, int64_t n);
  // Q8 weights x int8 activations (q8_layout.h); the kernels live in q8_*.cpp.
  Q8A8Fn q8a8;
};

extern const KernelTable kScalarTable;
extern const KernelTable kAvx2Table;
extern const KernelTable kAvx512Table;

const KernelTable& table(Isa isa);
const KernelTable& active_table();

}  // namespace awq::kernels::detail
