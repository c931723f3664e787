// AVX-512 (F/BW/VL/DQ) + VNNI kernels. Compiled with those -m flags (CMakeLists: *_avx512.cpp)
// and only called after dispatch (isa.cpp) has checked the CPU. See the ODR note in isa.cpp:
// this file uses intrinsics and its own static helpers only.
//
// Register budget (32 zmm) sets the token blocking: w4a8 keeps 3 accumulators per token (the
// running output, the group's partial sum, the block's int32 dot), so 8 tokens use 24 registers;
// w4a16 keeps 4 partial sums per token per group (to hide the 4-cycle FMA latency when one token
// is all there is), so 4 tokens use 16 + 4.

#include "kernels/avx512_intrinsics.h"

#include <cstdint>
#include <cstring>

#include "kernels/decode_stream.h"
#include "kernels/kernel_table.h"

namespace awq::kernels::detail {
namespace {

inline int64_t min64(int64_t a, int64_t b) {
  return a < b ? a : b;
}

inline __mmask16 row_mask(int64_t rows) {
  return rows >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << rows) - 1);  // rows in [0, 16]
}

inline int32_t load_i32(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Stores the 16 rows of acc (+ bias) for one token, masked to the rows that exist.
inline void store_rows(__m512 acc, const float* bias, int64_t o0, __mmask16 m, float* y) {
  if (bias) acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(m, bias + o0));
  _mm512_mask_storeu_ps(y + o0, m, acc);
}

inline __m512 tile_zeros(const uint8_t* zeros, int64_t j) {
  const __m128i z = _mm_loadu_si128(reinterpret_cast<const __m128i*>(zeros + kTileRows * j));
  return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(z));
}

// ---------------------------------------------------------------------------------------------
// w4a8: NT tiles of 16 rows x T tokens. Per 64-byte chunk: lo = v & 15 holds columns k..k+3 of
// the 16 rows, hi = (v >> 4) & 15 columns k+4..k+7; one vpdpbusd each against the 4 broadcast
// int8 codes. Several tiles at once (NT > 1, decode) read several streams of memory at once.
template <int T, int NT>
void w4a8_tiles(const W4View& w, const Q8Acts& a, int64_t t0, int64_t tile, const float* bias,
                float* y, const uint8_t* end) {
  // With few tokens, two int32 chains per token (lo / hi) halve the dependent-VNNI latency.
  constexpr bool kSplit = T * NT <= 4;
  constexpr bool kPrefetch = T <= 2;
  const int64_t ahead = NT * w.tile_stride + kPrefetchExtra;
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  const int64_t bpg = w.group / kQBlock;
  const uint8_t* c[NT];
  for (int u = 0; u < NT; ++u) c[u] = w.data + (tile + u) * w.tile_stride;
  const int8_t* q[T];
  const float* d[T];
  const float* gs[T];
  for (int t = 0; t < T; ++t) {
    q[t] = a.q + (t0 + t) * a.in;
    d[t] = a.d + (t0 + t) * a.blocks;
    gs[t] = a.gsum + (t0 + t) * a.groups;
  }
  __m512 acc[NT][T];
  for (int u = 0; u < NT; ++u)
    for (int t = 0; t < T; ++t) acc[u][t] = _mm512_setzero_ps();
  for (int64_t j = 0; j < w.groups; ++j) {
    __m512 g[NT][T];
    for (int u = 0; u < NT; ++u)
      for (int t = 0; t < T; ++t) g[u][t] = _mm512_setzero_ps();
    for (int64_t b = j * bpg; b < (j + 1) * bpg; ++b) {
      __m512i s0[NT][T], s1[NT][T];
      for (int u = 0; u < NT; ++u)
        for (int t = 0; t < T; ++t) {
          s0[u][t] = _mm512_setzero_si512();
          if (kSplit) s1[u][t] = _mm512_setzero_si512();
        }
      for (int cc = 0; cc < 4; ++cc) {
        const int64_t k = b * kQBlock + 8 * cc;
        for (int u = 0; u < NT; ++u) {
          if (kPrefetch && c[u] + ahead < end)
            _mm_prefetch(reinterpret_cast<const char*>(c[u] + ahead), _MM_HINT_T0);
          const __m512i v = _mm512_load_si512(c[u]);
          c[u] += kChunkBytes;
          const __m512i lo = _mm512_and_si512(v, m4);
          const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
          for (int t = 0; t < T; ++t) {
            const __m512i xa = _mm512_set1_epi32(load_i32(q[t] + k));
            const __m512i xb = _mm512_set1_epi32(load_i32(q[t] + k + 4));
            s0[u][t] = _mm512_dpbusd_epi32(s0[u][t], lo, xa);
            if (kSplit)
              s1[u][t] = _mm512_dpbusd_epi32(s1[u][t], hi, xb);
            else
              s0[u][t] = _mm512_dpbusd_epi32(s0[u][t], hi, xb);
          }
        }
      }
      for (int u = 0; u < NT; ++u)
        for (int t = 0; t < T; ++t) {
          const __m512i dot = kSplit ? _mm512_add_epi32(s0[u][t], s1[u][t]) : s0[u][t];
          g[u][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_set1_ps(d[t][b]), g[u][t]);
        }
    }
    for (int u = 0; u < NT; ++u) {
      const uint8_t* base = w.data + (tile + u) * w.tile_stride;
      const __m512 s =
          _mm512_loadu_ps(reinterpret_cast<const float*>(base + w.scales_offset) + kTileRows * j);
      const __m512 z = tile_zeros(base + w.zeros_offset, j);
      for (int t = 0; t < T; ++t)
        acc[u][t] =
            _mm512_fmadd_ps(s, _mm512_fnmadd_ps(z, _mm512_set1_ps(gs[t][j]), g[u][t]), acc[u][t]);
    }
  }
  for (int u = 0; u < NT; ++u) {
    const int64_t o0 = (tile + u) * kTileRows;
    const __mmask16 m = row_mask(w.out - o0);
    for (int t = 0; t < T; ++t) store_rows(acc[u][t], bias, o0, m, y + (t0 + t) * w.out);
  }
}

void w4a8(const W4View& w, const Q8Acts& a, int64_t n, int64_t tile0, int64_t tile1,
          const float* bias, float* y) {
  int64_t tile = tile0;
  const uint8_t* end = w.data + w.tiles * w.tile_stride;  // prefetch limit
  // Decode: one thread streaming one tile at a time keeps too few cache misses in flight to
  // reach the memory bandwidth; 4 tiles (4 streams 8*in bytes apart) measured ~25% faster from
  // DRAM (and in cache). Each tile's arithmetic is the same, so the results do not change.
  // Decode: one tile at a time keeps too few cache misses in flight; NT tiles side by side are NT
  // streams (see decode_tiles). Each tile's arithmetic is the same, so the results do not change.
  const int nt = decode_tiles(w.tile_stride);
  if (n == 1 && nt == 4)
    for (; tile + 4 <= tile1; tile += 4) w4a8_tiles<1, 4>(w, a, 0, tile, bias, y, end);
  if (n == 1 && nt >= 2)
    for (; tile + 2 <= tile1; tile += 2) w4a8_tiles<1, 2>(w, a, 0, tile, bias, y, end);
  if (n == 2)
    for (; tile + 2 <= tile1; tile += 2) w4a8_tiles<2, 2>(w, a, 0, tile, bias, y, end);
  for (; tile < tile1; ++tile) {
    for (int64_t t0 = 0; t0 < n; t0 += 8) {
      switch (min64(8, n - t0)) {
        case 1:
          w4a8_tiles<1, 1>(w, a, t0, tile, bias, y, end);
          break;
        case 2:
          w4a8_tiles<2, 1>(w, a, t0, tile, bias, y, end);
          break;
        case 3:
          w4a8_tiles<3, 1>(w, a, t0, tile, bias, y, end);
          break;
        case 4:
          w4a8_tiles<4, 1>(w, a, t0, tile, bias, y, end);
          break;
        case 5:
          w4a8_tiles<5, 1>(w, a, t0, tile, bias, y, end);
          break;
        case 6:
          w4a8_tiles<6, 1>(w, a, t0, tile, bias, y, end);
          break;
        case 7:
          w4a8_tiles<7, 1>(w, a, t0, tile, bias, y, end);
          break;
        default:
          w4a8_tiles<8, 1>(w, a, t0, tile, bias, y, end);
          break;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// w4a16: vpermps with the table 0..15 turns the low nibble of each lane into its float value
// (it reads only index bits 0-3), so after a shift by 4*jj one instruction yields column
// k0 + jj/2 + 4*(jj%2) of all 16 rows as floats.
template <int T, int NT>
void w4a16_tiles(const W4View& w, const float* x, const float* xsum, int64_t t0, int64_t tile,
                 const float* bias, float* y, const uint8_t* end) {
  const __m512 table = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const uint8_t* c[NT];
  for (int u = 0; u < NT; ++u) c[u] = w.data + (tile + u) * w.tile_stride;
  constexpr bool kPrefetch = T <= 2;
  constexpr int64_t ahead = 32768;  // one stream (NT = 1 here): 32 KiB ahead in it
  const float* xt[T];
  for (int t = 0; t < T; ++t) xt[t] = x + (t0 + t) * w.in;
  __m512 acc[NT][T];
  for (int u = 0; u < NT; ++u)
    for (int t = 0; t < T; ++t) acc[u][t] = _mm512_setzero_ps();
  for (int64_t j = 0; j < w.groups; ++j) {
    __m512 g[NT][T][4];
    for (int u = 0; u < NT; ++u)
      for (int t = 0; t < T; ++t)
        for (int p = 0; p < 4; ++p) g[u][t][p] = _mm512_setzero_ps();
    for (int64_t k0 = j * w.group; k0 < (j + 1) * w.group; k0 += 8) {
      for (int u = 0; u < NT; ++u) {
        if (kPrefetch && c[u] + ahead < end)
          _mm_prefetch(reinterpret_cast<const char*>(c[u] + ahead), _MM_HINT_T0);
        const __m512i v = _mm512_load_si512(c[u]);
        c[u] += kChunkBytes;
        for (int jj = 0; jj < 8; ++jj) {
          const __m512i idx = jj == 0 ? v : _mm512_srli_epi32(v, 4 * jj);
          const __m512 wv = _mm512_permutexvar_ps(idx, table);
          const int64_t k = k0 + (jj >> 1) + 4 * (jj & 1);
          for (int t = 0; t < T; ++t)
            g[u][t][jj & 3] = _mm512_fmadd_ps(wv, _mm512_set1_ps(xt[t][k]), g[u][t][jj & 3]);
        }
      }
    }
    for (int u = 0; u < NT; ++u) {
      const uint8_t* base = w.data + (tile + u) * w.tile_stride;
      const __m512 s =
          _mm512_loadu_ps(reinterpret_cast<const float*>(base + w.scales_offset) + kTileRows * j);
      const __m512 z = tile_zeros(base + w.zeros_offset, j);
      for (int t = 0; t < T; ++t) {
        const __m512 gsum = _mm512_add_ps(_mm512_add_ps(g[u][t][0], g[u][t][1]),
                                          _mm512_add_ps(g[u][t][2], g[u][t][3]));
        const __m512 xs = _mm512_set1_ps(xsum[(t0 + t) * w.groups + j]);
        acc[u][t] = _mm512_fmadd_ps(s, _mm512_fnmadd_ps(z, xs, gsum), acc[u][t]);
      }
    }
  }
  for (int u = 0; u < NT; ++u) {
    const int64_t o0 = (tile + u) * kTileRows;
    const __mmask16 m = row_mask(w.out - o0);
    for (int t = 0; t < T; ++t) store_rows(acc[u][t], bias, o0, m, y + (t0 + t) * w.out);
  }
}

void w4a16(const W4View& w, const float* x, const float* xsum, int64_t n, int64_t tile0,
           int64_t tile1, const float* bias, float* y) {
  int64_t tile = tile0;
  const uint8_t* end = w.data + w.tiles * w.tile_stride;  // prefetch limit
  for (; tile < tile1; ++tile) {
    for (int64_t t0 = 0; t0 < n; t0 += 4) {
      switch (min64(4, n - t0)) {
        case 1:
          w4a16_tiles<1, 1>(w, x, xsum, t0, tile, bias, y, end);
          break;
        case 2:
          w4a16_tiles<2, 1>(w, x, xsum, t0, tile, bias, y, end);
          break;
        case 3:
          w4a16_tiles<3, 1>(w, x, xsum, t0, tile, bias, y, end);
          break;
        default:
          w4a16_tiles<4, 1>(w, x, xsum, t0, tile, bias, y, end);
          break;
      }
    }
  }
}

// Exact: (code - zero) is an exact small integer in f32, times the scale rounds once, as the
// source formula does.
void w4_dequant(const W4View& w, int64_t tile0, int64_t tile1, float* dst, int64_t ld) {
  const __m512 table = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int64_t tile = tile0; tile < tile1; ++tile) {
    const uint8_t* c = w.data + tile * w.tile_stride;
    const auto* scales = reinterpret_cast<const float*>(c + w.scales_offset);
    const uint8_t* zeros = c + w.zeros_offset;
    float* col = dst + kTileRows * (tile - tile0);
    for (int64_t j = 0; j < w.groups; ++j) {
      const __m512 s = _mm512_loadu_ps(scales + kTileRows * j);
      const __m512 z = tile_zeros(zeros, j);
      for (int64_t k0 = j * w.group; k0 < (j + 1) * w.group; k0 += 8, c += kChunkBytes) {
        const __m512i v = _mm512_load_si512(c);
        for (int jj = 0; jj < 8; ++jj) {
          const __m512 q = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4 * jj), table);
          const int64_t k = k0 + (jj >> 1) + 4 * (jj & 1);
          _mm512_storeu_ps(col + k * ld, _mm512_mul_ps(_mm512_sub_ps(q, z), s));
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// panel32: 32 rows (two zmm) x T tokens of accumulators, 24 of the 32 registers for T = 12; per
// input column two panel loads feed 2T FMAs with x broadcast from memory. This is the classic
// register-blocked GEMM microkernel shape: FMA-bound, not load-bound, with the panel (in x 128 B)
// streaming from L2 and the 12 token rows from L1/L2.
template <int T>
void panel32_t(const float* panel, int64_t in, const float* x, __mmask16 m0, __mmask16 m1,
               const float* bias, float* y, int64_t ldy) {
  __m512 a0[T], a1[T];
  for (int t = 0; t < T; ++t) a0[t] = a1[t] = _mm512_setzero_ps();
  for (int64_t k = 0; k < in; ++k) {
    const __m512 w0 = _mm512_load_ps(panel + 32 * k);
    const __m512 w1 = _mm512_load_ps(panel + 32 * k + 16);
    for (int t = 0; t < T; ++t) {
      const __m512 xb = _mm512_set1_ps(x[t * in + k]);
      a0[t] = _mm512_fmadd_ps(w0, xb, a0[t]);
      a1[t] = _mm512_fmadd_ps(w1, xb, a1[t]);
    }
  }
  const __m512 b0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
  const __m512 b1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
  for (int t = 0; t < T; ++t) {
    _mm512_mask_storeu_ps(y + t * ldy, m0, bias ? _mm512_add_ps(a0[t], b0) : a0[t]);
    _mm512_mask_storeu_ps(y + t * ldy + 16, m1, bias ? _mm512_add_ps(a1[t], b1) : a1[t]);
  }
}

void panel32(const float* panel, int64_t in, const float* x, int64_t n, int64_t rows,
             const float* bias, float* y, int64_t ldy) {
  const __mmask16 m0 = row_mask(rows), m1 = row_mask(rows - 16 < 0 ? 0 : rows - 16);
  for (int64_t t0 = 0; t0 < n; t0 += 12) {
    const float* xt = x + t0 * in;
    float* yt = y + t0 * ldy;
    switch (min64(12, n - t0)) {
      case 1:
        panel32_t<1>(panel, in, xt, m0, m1, bias, yt, ldy);
        break;
      case 2:
        panel32_t<2>(panel, in, xt, m0, m1, bias, yt, ldy);
        break;
      case 3:
        panel32_t<3>(panel, in, xt, m0, m1, bias, yt, ldy);
        break;
      case 4:
        panel32_t<4>(panel, in, xt, m0, m1, bias, yt, ldy);
        break;
      case 5:
        panel32_t<5>(panel, in, xt, m0, m1, bias, yt, ldy);
        break;
      case 6:
        panel32_t<6>(panel, in, xt, m0, m1, bias, yt, ldy);
        break;
      case 7:
        panel32_t<7>(panel, in, xt, m0, m1, bias, yt, ldy);
        break;
      case 8:
        panel32_t<8>(panel, in, xt, m0, m1, bias, yt, ldy);
        break;
      case 9:
        panel32_t<9>(panel, in, xt, m0, m1, bias, yt, ldy);
        break;
      case 10:
        panel32_t<10>(panel, in, xt, m0, m1, bias, yt, ldy);
        break;
      case 11:
        panel32_t<11>(panel, in, xt, m0, m1, bias, yt, ldy);
        break;
      default:
        panel32_t<12>(panel, in, xt, m0, m1, bias, yt, ldy);
        break;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The same float operations as the scalar reference (max, one division, one multiply, round to
// nearest even via the default MXCSR mode), so the codes are bit-identical.
void quantize_q8(const float* x, int64_t in, int8_t* q, float* d, int32_t* sums) {
  for (int64_t b = 0; b < in / kQBlock; ++b) {
    const __m512 x0 = _mm512_loadu_ps(x + b * kQBlock);
    const __m512 x1 = _mm512_loadu_ps(x + b * kQBlock + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    const __m512i i0 = _mm512_cvtps_epi32(_mm512_mul_ps(x0, _mm512_set1_ps(id)));
    const __m512i i1 = _mm512_cvtps_epi32(_mm512_mul_ps(x1, _mm512_set1_ps(id)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + b * kQBlock), _mm512_cvtepi32_epi8(i0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + b * kQBlock + 16), _mm512_cvtepi32_epi8(i1));
    d[b] = amax / 127.0f;
    sums[b] = _mm512_reduce_add_epi32(_mm512_add_epi32(i0, i1));
  }
}

// ---------------------------------------------------------------------------------------------
// f32 / f16 / bf16 rows: R rows x T tokens of 16-lane partial sums, reduced across lanes at the
// end.
template <bool kBf16>
inline __m512 load_half(const uint16_t* p, __mmask16 m) {
  const __m256i h = _mm256_maskz_loadu_epi16(m, p);
  if (kBf16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  return _mm512_cvtph_ps(h);
}

template <bool kBf16>
inline __m512 load_row(const uint16_t* p, __mmask16 m) {
  return load_half<kBf16>(p, m);
}
template <bool kBf16>
inline __m512 load_row(const float* p, __mmask16 m) {
  return _mm512_maskz_loadu_ps(m, p);
}

// Decode (T <= 2) prefetches the same columns of the next R rows, R rows ahead (R * in
// elements, 16 KiB for 4 f16 rows of 2048), while those rows lie in this call's range [.., o1):
// each row is its own 4 KiB stream, which the hardware prefetcher does not follow across rows.
template <typename W, bool kBf16, int R, int T>
void half_block(const float* x, int64_t in, const W* w, int64_t o, int64_t o1, const float* bias,
                float* y, int64_t ldy) {
  constexpr bool kPrefetch = T <= 2;
  constexpr int64_t kLine = 64 / int64_t(sizeof(W));  // elements per cache line
  const bool prefetch = kPrefetch && o + 2 * R <= o1;
  __m512 acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
  for (int64_t k = 0; k < in; k += 16) {
    const __mmask16 m = in - k >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (in - k)) - 1);
    if (prefetch && k % kLine == 0)
      for (int r = 0; r < R; ++r)
        _mm_prefetch(reinterpret_cast<const char*>(w + (o + R + r) * in + k), _MM_HINT_T0);
    __m512 xv[T];
    for (int t = 0; t < T; ++t) xv[t] = _mm512_maskz_loadu_ps(m, x + t * in + k);
    for (int r = 0; r < R; ++r) {
      const __m512 wv = load_row<kBf16>(w + (o + r) * in + k, m);
      for (int t = 0; t < T; ++t) acc[r][t] = _mm512_fmadd_ps(wv, xv[t], acc[r][t]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) {
      const float v = _mm512_reduce_add_ps(acc[r][t]);
      y[t * ldy + o + r] = bias ? v + bias[o + r] : v;
    }
}

template <typename W, bool kBf16, int T>
void half_rows_t(const float* x, int64_t in, const W* w, int64_t o0, int64_t o1, const float* bias,
                 float* y, int64_t ldy) {
  int64_t o = o0;
  for (; o + 4 <= o1; o += 4) half_block<W, kBf16, 4, T>(x, in, w, o, o1, bias, y, ldy);
  for (; o < o1; ++o) half_block<W, kBf16, 1, T>(x, in, w, o, o1, bias, y, ldy);
}

// Rows of f32 (W = float) or half / bfloat16 (W = uint16_t) weights.
template <typename W, bool kBf16>
void half_rows(const float* x, int64_t n, const W* w, int64_t in, int64_t o0, int64_t o1,
               const float* bias, float* y, int64_t ldy) {
  for (int64_t t0 = 0; t0 < n; t0 += 4) {
    const float* xt = x + t0 * in;
    float* yt = y + t0 * ldy;
    switch (min64(4, n - t0)) {
      case 1:
        half_rows_t<W, kBf16, 1>(xt, in, w, o0, o1, bias, yt, ldy);
        break;
      case 2:
        half_rows_t<W, kBf16, 2>(xt, in, w, o0, o1, bias, yt, ldy);
        break;
      case 3:
        half_rows_t<W, kBf16, 3>(xt, in, w, o0, o1, bias, yt, ldy);
        break;
      default:
        half_rows_t<W, kBf16, 4>(xt, in, w, o0, o1, bias, yt, ldy);
        break;
    }
  }
}

// 16 x 16 f32 transpose in registers: r[i] holds row i; afterwards r[j] holds column j.
// Three rounds: 32-bit and 64-bit interleaves within 128-bit lanes, then a 4 x 4 transpose of
// the 128-bit lanes (64 shuffles in all).
inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  __m512 u[16];  // u[4q + m], lane L: rows 4q..4q+3 of column 4L + m
  for (int q = 0; q < 4; ++q) {
    const __m512d a = _mm512_castps_pd(t[4 * q]), b = _mm512_castps_pd(t[4 * q + 2]);
    const __m512d c = _mm512_castps_pd(t[4 * q + 1]), d = _mm512_castps_pd(t[4 * q + 3]);
    u[4 * q + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
    u[4 * q + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
    u[4 * q + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
    u[4 * q + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
  }
  for (int m = 0; m < 4; ++m) {
    const __m512 v0 = _mm512_shuffle_f32x4(u[m], u[4 + m], 0x44);
    const __m512 v1 = _mm512_shuffle_f32x4(u[m], u[4 + m], 0xEE);
    const __m512 v2 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0x44);
    const __m512 v3 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0xEE);
    r[m] = _mm512_shuffle_f32x4(v0, v2, 0x88);
    r[4 + m] = _mm512_shuffle_f32x4(v0, v2, 0xDD);
    r[8 + m] = _mm512_shuffle_f32x4(v1, v3, 0x88);
    r[12 + m] = _mm512_shuffle_f32x4(v1, v3, 0xDD);
  }
}

// Load(row pointer, mask) gives 16 columns of a row as f32.
template <typename T, typename Load>
void to_panel32(const T* w, int64_t in, int64_t rows, float* panel, Load load) {
  for (int64_t k = 0; k < in; k += 16) {
    const int64_t cols = min64(16, in - k);
    const __mmask16 m = row_mask(cols);
    for (int g = 0; g < 2; ++g) {
      __m512 r[16];
      for (int i = 0; i < 16; ++i) {
        const int64_t row = 16 * g + i;
        r[i] = row < rows ? load(w + row * in + k, m) : _mm512_setzero_ps();
      }
      transpose16(r);
      for (int j = 0; j < cols; ++j) _mm512_storeu_ps(panel + (k + j) * 32 + 16 * g, r[j]);
    }
  }
}

template <bool kBf16>
void half_panel32(const uint16_t* w, int64_t in, int64_t rows, float* panel) {
  to_panel32(w, in, rows, panel,
             [](const uint16_t* p, __mmask16 m) { return load_half<kBf16>(p, m); });
}

void f32_panel32(const float* w, int64_t in, int64_t rows, float* panel) {
  to_panel32(w, in, rows, panel,
             [](const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); });
}

template <bool kBf16>
void half_to_f32(const uint16_t* src, float* dst, int64_t count) {
  for (int64_t i = 0; i < count; i += 16) {
    const __mmask16 m = count - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (count - i)) - 1);
    _mm512_mask_storeu_ps(dst + i, m, load_half<kBf16>(src + i, m));
  }
}

// The bandwidth probe's loop: one sequential stream with a software prefetch 1 KiB ahead, read
// with 256-bit loads (p is 32-byte aligned), as the AVX2 probe. On the 2-core Xeon (huge pages)
// the same loop with 512-bit loads read 13.5 GB/s on one core against 18.2 for this one (`awq
// bench -t 1`, AWQ_ISA=avx512 vs avx2, at a56a8b7), so the decode kernels' roofline is what a
// core can read, not what one particular loop reads.
float sum_f32(const float* p, int64_t n) {
  constexpr int64_t kAhead = 256;  // floats = 1 KiB
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    if (i + kAhead < n)
      for (int l = 0; l < 4; ++l)
        _mm_prefetch(reinterpret_cast<const char*>(p + i + kAhead + 16 * l), _MM_HINT_T0);
    a0 = _mm256_add_ps(a0, _mm256_add_ps(_mm256_load_ps(p + i), _mm256_load_ps(p + i + 8)));
    a1 = _mm256_add_ps(a1, _mm256_add_ps(_mm256_load_ps(p + i + 16), _mm256_load_ps(p + i + 24)));
    a2 = _mm256_add_ps(a2, _mm256_add_ps(_mm256_load_ps(p + i + 32), _mm256_load_ps(p + i + 40)));
    a3 = _mm256_add_ps(a3, _mm256_add_ps(_mm256_load_ps(p + i + 48), _mm256_load_ps(p + i + 56)));
  }
  const __m256 s = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
  float lanes[8];
  _mm256_storeu_ps(lanes, s);
  float sum = 0;
  for (float v : lanes) sum += v;
  for (; i < n; ++i) sum += p[i];
  return sum;
}

}  // namespace

const KernelTable kAvx512Table = {
    w4a8,
    w4a16,
    w4_dequant,
    panel32,
    quantize_q8,
    half_rows<uint16_t, false>,
    half_rows<uint16_t, true>,
    half_rows<float, false>,
    f32_panel32,
    half_panel32<false>,
    half_panel32<true>,
    half_to_f32<false>,
    half_to_f32<true>,
    sum_f32,
    q8a8_avx512,
};

}  // namespace awq::kernels::detail
