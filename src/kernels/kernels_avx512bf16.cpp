// AVX512-BF16 kernels for gemm_f32_in_bf16 (bf16_dot.h). Compiled with the AVX-512 flags plus
// -mavx512bf16 (CMakeLists: *_avx512bf16.cpp) and only called after bf16_products_available()
// has checked the CPU. As the other ISA files (isa.cpp's ODR note): intrinsics and this file's
// own static helpers only.
//
// vdpbf16ps multiplies 16 pairs of bfloat16 and adds both products to 16 f32 accumulators: twice
// the multiply-adds of one vfmadd231ps per instruction at the same issue rate on Zen 4 (two
// 256-bit halves per zmm either way), so the same register-blocked panel kernel as panel32
// (kernels_avx512.cpp) with pairs of k in place of k does twice the work per cycle.
#include "kernels/avx512_intrinsics.h"

#include <cstdint>

#include "kernels/bf16_dot.h"

namespace awq::kernels::detail {
namespace {

inline __mmask16 lane_mask(int64_t count) {
  return count >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (count < 0 ? 0 : count)) - 1);
}

// Columns [k, k + cols) (cols <= 32) of one f32 row as 16 pairs, rounded to nearest even;
// columns at or beyond cols read as zero.
inline __m512i row_pairs(const float* p, int64_t cols) {
  const __m512 lo = _mm512_maskz_loadu_ps(lane_mask(cols), p);
  const __m512 hi = _mm512_maskz_loadu_ps(lane_mask(cols - 16), p + 16);
  // vcvtne2ps2bf16 puts its second operand in the low 16 bfloat16: column order.
  return reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo));
}

// 16 x 16 transpose of 32-bit lanes: r[i] holds row i; afterwards r[j] holds column j. Rounds
// of 32-bit and 64-bit interleaves within 128-bit lanes, then a 4 x 4 transpose of those lanes.
inline void transpose16(__m512i r[16]) {
  __m512i t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  for (int q = 0; q < 4; ++q) {
    u[4 * q + 0] = _mm512_unpacklo_epi64(t[4 * q], t[4 * q + 2]);
    u[4 * q + 1] = _mm512_unpackhi_epi64(t[4 * q], t[4 * q + 2]);
    u[4 * q + 2] = _mm512_unpacklo_epi64(t[4 * q + 1], t[4 * q + 3]);
    u[4 * q + 3] = _mm512_unpackhi_epi64(t[4 * q + 1], t[4 * q + 3]);
  }
  for (int m = 0; m < 4; ++m) {
    const __m512i v0 = _mm512_shuffle_i32x4(u[m], u[4 + m], 0x44);
    const __m512i v1 = _mm512_shuffle_i32x4(u[m], u[4 + m], 0xEE);
    const __m512i v2 = _mm512_shuffle_i32x4(u[8 + m], u[12 + m], 0x44);
    const __m512i v3 = _mm512_shuffle_i32x4(u[8 + m], u[12 + m], 0xEE);
    r[m] = _mm512_shuffle_i32x4(v0, v2, 0x88);
    r[4 + m] = _mm512_shuffle_i32x4(v0, v2, 0xDD);
    r[8 + m] = _mm512_shuffle_i32x4(v1, v3, 0x88);
    r[12 + m] = _mm512_shuffle_i32x4(v1, v3, 0xDD);
  }
}

// 32 rows (two zmm of accumulators) x T tokens, 24 of the 32 registers for T = 12, as panel32:
// per pair two panel loads feed 2T vdpbf16ps with the token's pair broadcast.
template <int T>
void dot_t(const uint32_t* panel, int64_t pairs, const uint32_t* x, __mmask16 m0, __mmask16 m1,
           const float* bias, float* y, int64_t ldy) {
  __m512 a0[T], a1[T];
  for (int t = 0; t < T; ++t) a0[t] = a1[t] = _mm512_setzero_ps();
  for (int64_t p = 0; p < pairs; ++p) {
    const __m512bh w0 = reinterpret_cast<__m512bh>(_mm512_load_si512(panel + 32 * p));
    const __m512bh w1 = reinterpret_cast<__m512bh>(_mm512_load_si512(panel + 32 * p + 16));
    for (int t = 0; t < T; ++t) {
      const __m512bh xb = reinterpret_cast<__m512bh>(_mm512_set1_epi32(int(x[t * pairs + p])));
      a0[t] = _mm512_dpbf16_ps(a0[t], w0, xb);
      a1[t] = _mm512_dpbf16_ps(a1[t], w1, xb);
    }
  }
  const __m512 b0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
  const __m512 b1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
  for (int t = 0; t < T; ++t) {
    _mm512_mask_storeu_ps(y + t * ldy, m0, bias ? _mm512_add_ps(a0[t], b0) : a0[t]);
    _mm512_mask_storeu_ps(y + t * ldy + 16, m1, bias ? _mm512_add_ps(a1[t], b1) : a1[t]);
  }
}

using DotFn = void (*)(const uint32_t*, int64_t, const uint32_t*, __mmask16, __mmask16,
                       const float*, float*, int64_t);
constexpr DotFn kDot[13] = {nullptr,  dot_t<1>, dot_t<2>, dot_t<3>,  dot_t<4>,  dot_t<5>, dot_t<6>,
                            dot_t<7>, dot_t<8>, dot_t<9>, dot_t<10>, dot_t<11>, dot_t<12>};

}  // namespace

void bf16_pair_panel32(const float* w, int64_t in, int64_t rows, uint32_t* panel) {
  for (int64_t k = 0; k < in; k += 32) {
    const int64_t cols = in - k < 32 ? in - k : 32, pairs = (cols + 1) / 2;
    for (int g = 0; g < 2; ++g) {
      __m512i r[16];
      for (int i = 0; i < 16; ++i) {
        const int64_t row = 16 * g + i;
        r[i] = row < rows ? row_pairs(w + row * in + k, cols) : _mm512_setzero_si512();
      }
      transpose16(r);
      for (int64_t j = 0; j < pairs; ++j)
        _mm512_store_si512(panel + (k / 2 + j) * 32 + 16 * g, r[j]);
    }
  }
}

void bf16_pair_rows(const float* x, int64_t n, int64_t in, uint32_t* dst) {
  const int64_t pairs = (in + 1) / 2;
  for (int64_t t = 0; t < n; ++t)
    for (int64_t k = 0; k < in; k += 32) {
      const int64_t cols = in - k < 32 ? in - k : 32;
      _mm512_mask_storeu_epi32(dst + t * pairs + k / 2, lane_mask((cols + 1) / 2),
                               row_pairs(x + t * in + k, cols));
    }
}

void bf16_dot_panel32(const uint32_t* panel, int64_t pairs, const uint32_t* x, int64_t n,
                      int64_t rows, const float* bias, float* y, int64_t ldy) {
  const __mmask16 m0 = lane_mask(rows), m1 = lane_mask(rows - 16);
  for (int64_t t0 = 0; t0 < n; t0 += 12) {
    const int64_t nt = n - t0 < 12 ? n - t0 : 12;
    kDot[nt](panel, pairs, x + t0 * pairs, m0, m1, bias, y + t0 * ldy, ldy);
  }
}

}  // namespace awq::kernels::detail
