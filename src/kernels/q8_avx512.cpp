// AVX-512 (F/BW/VL) + VNNI + F16C q8a8 kernel. Compiled with those -m flags (CMakeLists:
// *_avx512.cpp) and only called after dispatch (isa.cpp) has checked the CPU. See the ODR note in
// isa.cpp: this file uses intrinsics and its own static helpers only.

#include "kernels/avx512_intrinsics.h"

#include <cstdint>
#include <cstring>

#include "kernels/decode_stream.h"
#include "kernels/q8_layout.h"

namespace awq::kernels::detail {
namespace {

int32_t load_i32(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// NT tiles of 16 rows x T tokens. Per block of 32 inputs and token, one int32 dot per row from 8
// vpdpbusd (code ^ 0x80 is code + 128 as unsigned; 128 * the block's sum of q comes off after),
// then acc = fma(scale, float(dot) * d, acc): the scalar kernel's float operations, lane by lane.
template <int T, int NT>
void q8_tiles(const Q8View& w, const Q8Inputs& a, int64_t t0, int64_t tile, const float* bias,
              float* y, const uint8_t* end) {
  // With few tokens, two int32 chains per token (even / odd chunks) halve the dependent-VNNI
  // latency per block; with more, the tokens' chains are independent already.
  constexpr bool kSplit = T * NT <= 4;
  constexpr bool kPrefetch = T <= 2;
  const int64_t ahead = NT * w.tile_stride + kPrefetchExtra;
  const __m512i flip = _mm512_set1_epi8(char(0x80));
  const uint8_t* c[NT];
  const uint16_t* sc[NT];
  for (int u = 0; u < NT; ++u) {
    c[u] = w.data + (tile + u) * w.tile_stride;
    sc[u] = reinterpret_cast<const uint16_t*>(c[u] + w.scales_offset);
  }
  const int8_t* q[T];
  for (int t = 0; t < T; ++t) q[t] = a.q + (t0 + t) * a.in;
  __m512 acc[NT][T];
  for (int u = 0; u < NT; ++u)
    for (int t = 0; t < T; ++t) acc[u][t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < w.blocks; ++b) {
    __m512i s0[NT][T], s1[NT][T];
    for (int u = 0; u < NT; ++u)
      for (int t = 0; t < T; ++t) {
        s0[u][t] = _mm512_setzero_si512();
        if (kSplit) s1[u][t] = _mm512_setzero_si512();
      }
    for (int cc = 0; cc < 8; ++cc) {
      const int64_t k = b * kQ8Block + 4 * cc;
      for (int u = 0; u < NT; ++u) {
        if (kPrefetch && c[u] + ahead < end)
          _mm_prefetch(reinterpret_cast<const char*>(c[u] + ahead), _MM_HINT_T0);
        const __m512i v = _mm512_xor_si512(_mm512_load_si512(c[u]), flip);
        c[u] += kQ8ChunkBytes;
        for (int t = 0; t < T; ++t) {
          const __m512i x = _mm512_set1_epi32(load_i32(q[t] + k));
          if (kSplit && (cc & 1))
            s1[u][t] = _mm512_dpbusd_epi32(s1[u][t], v, x);
          else
            s0[u][t] = _mm512_dpbusd_epi32(s0[u][t], v, x);
        }
      }
    }
    for (int u = 0; u < NT; ++u) {
      const __m512 s = _mm512_cvtph_ps(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(sc[u] + kQ8TileRows * b)));
      for (int t = 0; t < T; ++t) {
        const int64_t at = (t0 + t) * a.blocks + b;
        __m512i dot = kSplit ? _mm512_add_epi32(s0[u][t], s1[u][t]) : s0[u][t];
        dot = _mm512_sub_epi32(dot, _mm512_set1_epi32(128 * a.sums[at]));
        const __m512 p = _mm512_mul_ps(_mm512_cvtepi32_ps(dot), _mm512_set1_ps(a.d[at]));
        acc[u][t] = _mm512_fmadd_ps(s, p, acc[u][t]);
      }
    }
  }
  for (int u = 0; u < NT; ++u) {
    const int64_t o0 = (tile + u) * kQ8TileRows;
    const int64_t rows = w.out - o0;
    const __mmask16 m = rows >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << rows) - 1);
    for (int t = 0; t < T; ++t) {
      __m512 r = acc[u][t];
      if (bias) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(m, bias + o0));
      _mm512_mask_storeu_ps(y + (t0 + t) * w.out + o0, m, r);
    }
  }
}

using TileFn = void (*)(const Q8View&, const Q8Inputs&, int64_t, int64_t, const float*, float*,
                        const uint8_t*);
// One tile with T = 1..8 tokens (8 tokens: 8 accumulators + 8 int32 dots of the 32 zmm).
constexpr TileFn kOneTile[8] = {q8_tiles<1, 1>, q8_tiles<2, 1>, q8_tiles<3, 1>, q8_tiles<4, 1>,
                                q8_tiles<5, 1>, q8_tiles<6, 1>, q8_tiles<7, 1>, q8_tiles<8, 1>};

}  // namespace

void q8a8_avx512(const Q8View& w, const Q8Inputs& a, int64_t n, int64_t tile0, int64_t tile1,
                 const float* bias, float* y) {
  const uint8_t* end = w.data + w.tiles * w.tile_stride;  // prefetch limit
  int64_t tile = tile0;
  // Several tiles per call only change which rows are in flight, never a row's arithmetic.
  const int nt = decode_tiles(w.tile_stride);
  if (n == 1 && nt == 4)
    for (; tile + 4 <= tile1; tile += 4) q8_tiles<1, 4>(w, a, 0, tile, bias, y, end);
  if (n == 1 && nt >= 2)
    for (; tile + 2 <= tile1; tile += 2) q8_tiles<1, 2>(w, a, 0, tile, bias, y, end);
  if (n == 2)
    for (; tile + 2 <= tile1; tile += 2) q8_tiles<2, 2>(w, a, 0, tile, bias, y, end);
  for (; tile < tile1; ++tile)
    for (int64_t t0 = 0; t0 < n; t0 += 8) {
      const int64_t tokens = n - t0 < 8 ? n - t0 : 8;
      kOneTile[tokens - 1](w, a, t0, tile, bias, y, end);
    }
}

}  // namespace awq::kernels::detail
