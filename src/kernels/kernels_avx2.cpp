// AVX2 + FMA + F16C kernels: the fallback for x86-64 CPUs without AVX-512 (most CI machines).
// Compiled with those -m flags (CMakeLists: *_avx2.cpp); see the ODR note in isa.cpp.
//
// A 16-row tile is two 8-row halves here (8 int32 / f32 lanes per ymm register): bytes 0..31 of
// each 64-byte chunk hold rows 0..7, bytes 32..63 rows 8..15. With 16 ymm registers the token
// blocking is smaller than on AVX-512; when few tokens leave room, both halves go in one pass
// over the nibbles (H = 2), otherwise each half takes its own pass (H = 1, the second from cache).
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/kernel_table.h"

namespace awq::kernels::detail {
namespace {

// Software prefetch distance for decode (see kernels_avx512.cpp).
constexpr int64_t kPrefetchBytes = 32768;

inline int64_t min64(int64_t a, int64_t b) {
  return a < b ? a : b;
}

inline int32_t load_i32(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Stores 8 rows of one token (+ bias), only the rows < rows.
inline void store_rows(__m256 acc, const float* bias, int64_t o0, int64_t rows, float* y) {
  if (rows >= 8) {
    if (bias) acc = _mm256_add_ps(acc, _mm256_loadu_ps(bias + o0));
    _mm256_storeu_ps(y + o0, acc);
    return;
  }
  alignas(32) float tmp[8];
  _mm256_store_ps(tmp, acc);
  for (int64_t r = 0; r < rows; ++r) y[o0 + r] = bias ? tmp[r] + bias[o0 + r] : tmp[r];
}

inline __m256 half_zeros(const uint8_t* zeros, int64_t j, int h) {
  const __m128i z =
      _mm_loadl_epi64(reinterpret_cast<const __m128i*>(zeros + kTileRows * j + 8 * h));
  return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(z));
}

// ---------------------------------------------------------------------------------------------
// w4a8: pmaddubsw (u8 x s8 -> pairs summed in int16) then pmaddwd with ones (-> int32 per row).
// The int16 pair sums of a whole 32-block stay below 2^15: 8 x 2 x 15 x 127 = 30480, so they
// are added in int16 and widened once per block.
template <int T, int H>
void w4a8_tile(const W4View& w, const Q8Acts& a, int64_t t0, const uint8_t* tile, int h0,
               int64_t o0, int64_t rows, const float* bias, float* y) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i ones = _mm256_set1_epi16(1);
  const int64_t bpg = w.group / kQBlock;
  const auto* scales = reinterpret_cast<const float*>(tile + w.scales_offset);
  const uint8_t* zeros = tile + w.zeros_offset;
  __m256 acc[T][H];
  for (int t = 0; t < T; ++t)
    for (int h = 0; h < H; ++h) acc[t][h] = _mm256_setzero_ps();
  const uint8_t* c = tile;
  const uint8_t* end = w.data + w.tiles * w.tile_stride;  // prefetch limit
  constexpr bool kPrefetch = T <= 2 && H == 2;            // decode: one pass over the tile
  for (int64_t j = 0; j < w.groups; ++j) {
    __m256 g[T][H];
    for (int t = 0; t < T; ++t)
      for (int h = 0; h < H; ++h) g[t][h] = _mm256_setzero_ps();
    for (int64_t b = j * bpg; b < (j + 1) * bpg; ++b) {
      __m256i s16[T][H];
      for (int t = 0; t < T; ++t)
        for (int h = 0; h < H; ++h) s16[t][h] = _mm256_setzero_si256();
      for (int cc = 0; cc < 4; ++cc, c += kChunkBytes) {
        const int64_t k = b * kQBlock + 8 * cc;
        if (kPrefetch && c + kPrefetchBytes < end)
          _mm_prefetch(reinterpret_cast<const char*>(c + kPrefetchBytes), _MM_HINT_T0);
        for (int h = 0; h < H; ++h) {
          const __m256i v = _mm256_load_si256(reinterpret_cast<const __m256i*>(c + 32 * (h0 + h)));
          const __m256i lo = _mm256_and_si256(v, m4);
          const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
          for (int t = 0; t < T; ++t) {
            const int8_t* q = a.q + (t0 + t) * a.in + k;
            const __m256i plo = _mm256_maddubs_epi16(lo, _mm256_set1_epi32(load_i32(q)));
            const __m256i phi = _mm256_maddubs_epi16(hi, _mm256_set1_epi32(load_i32(q + 4)));
            s16[t][h] = _mm256_add_epi16(s16[t][h], _mm256_add_epi16(plo, phi));
          }
        }
      }
      for (int t = 0; t < T; ++t) {
        const __m256 d = _mm256_set1_ps(a.d[(t0 + t) * a.blocks + b]);
        for (int h = 0; h < H; ++h) {
          const __m256i dot = _mm256_madd_epi16(s16[t][h], ones);
          g[t][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), d, g[t][h]);
        }
      }
    }
    for (int h = 0; h < H; ++h) {
      const __m256 s = _mm256_loadu_ps(scales + kTileRows * j + 8 * (h0 + h));
      const __m256 z = half_zeros(zeros, j, h0 + h);
      for (int t = 0; t < T; ++t) {
        const __m256 gs = _mm256_set1_ps(a.gsum[(t0 + t) * a.groups + j]);
        acc[t][h] = _mm256_fmadd_ps(s, _mm256_fnmadd_ps(z, gs, g[t][h]), acc[t][h]);
      }
    }
  }
  for (int t = 0; t < T; ++t)
    for (int h = 0; h < H; ++h)
      store_rows(acc[t][h], bias, o0 + 8 * (h0 + h), rows - 8 * (h0 + h), y + (t0 + t) * w.out);
}

template <int T, int H>
void w4a8_halves(const W4View& w, const Q8Acts& a, int64_t t0, const uint8_t* tile, int64_t o0,
                 int64_t rows, const float* bias, float* y) {
  for (int h0 = 0; h0 < 2 && 8 * h0 < rows; h0 += H)
    w4a8_tile<T, H>(w, a, t0, tile, h0, o0, rows, bias, y);
}

void w4a8(const W4View& w, const Q8Acts& a, int64_t n, int64_t tile0, int64_t tile1,
          const float* bias, float* y) {
  for (int64_t tile = tile0; tile < tile1; ++tile) {
    const uint8_t* base = w.data + tile * w.tile_stride;
    const int64_t o0 = tile * kTileRows, rows = min64(kTileRows, w.out - o0);
    for (int64_t t0 = 0; t0 < n; t0 += 4) {
      switch (min64(4, n - t0)) {
        case 1:
          w4a8_halves<1, 2>(w, a, t0, base, o0, rows, bias, y);
          break;
        case 2:
          w4a8_halves<2, 2>(w, a, t0, base, o0, rows, bias, y);
          break;
        case 3:
          w4a8_halves<3, 1>(w, a, t0, base, o0, rows, bias, y);
          break;
        default:
          w4a8_halves<4, 1>(w, a, t0, base, o0, rows, bias, y);
          break;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// w4a16: shift, mask and convert one column of 8 rows at a time; two partial sums per token and
// half to hide the FMA latency.
inline __m256 nibble_column(__m256i v, int jj) {
  const __m256i m = _mm256_set1_epi32(0x0F);
  return _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(v, 4 * jj), m));
}

template <int T, int H>
void w4a16_tile(const W4View& w, const float* x, const float* xsum, int64_t t0, const uint8_t* tile,
                int h0, int64_t o0, int64_t rows, const float* bias, float* y) {
  const auto* scales = reinterpret_cast<const float*>(tile + w.scales_offset);
  const uint8_t* zeros = tile + w.zeros_offset;
  __m256 acc[T][H];
  for (int t = 0; t < T; ++t)
    for (int h = 0; h < H; ++h) acc[t][h] = _mm256_setzero_ps();
  const uint8_t* c = tile;
  const uint8_t* end = w.data + w.tiles * w.tile_stride;  // prefetch limit
  constexpr bool kPrefetch = T <= 2;
  for (int64_t j = 0; j < w.groups; ++j) {
    __m256 g[T][H][2];
    for (int t = 0; t < T; ++t)
      for (int h = 0; h < H; ++h) g[t][h][0] = g[t][h][1] = _mm256_setzero_ps();
    for (int64_t k0 = j * w.group; k0 < (j + 1) * w.group; k0 += 8, c += kChunkBytes) {
      if (kPrefetch && c + kPrefetchBytes < end)
        _mm_prefetch(reinterpret_cast<const char*>(c + kPrefetchBytes), _MM_HINT_T0);
      for (int h = 0; h < H; ++h) {
        const __m256i v = _mm256_load_si256(reinterpret_cast<const __m256i*>(c + 32 * (h0 + h)));
        for (int jj = 0; jj < 8; ++jj) {
          const __m256 wv = nibble_column(v, jj);
          const int64_t k = k0 + (jj >> 1) + 4 * (jj & 1);
          for (int t = 0; t < T; ++t)
            g[t][h][jj & 1] =
                _mm256_fmadd_ps(wv, _mm256_set1_ps(x[(t0 + t) * w.in + k]), g[t][h][jj & 1]);
        }
      }
    }
    for (int h = 0; h < H; ++h) {
      const __m256 s = _mm256_loadu_ps(scales + kTileRows * j + 8 * (h0 + h));
      const __m256 z = half_zeros(zeros, j, h0 + h);
      for (int t = 0; t < T; ++t) {
        const __m256 xs = _mm256_set1_ps(xsum[(t0 + t) * w.groups + j]);
        const __m256 gsum = _mm256_add_ps(g[t][h][0], g[t][h][1]);
        acc[t][h] = _mm256_fmadd_ps(s, _mm256_fnmadd_ps(z, xs, gsum), acc[t][h]);
      }
    }
  }
  for (int t = 0; t < T; ++t)
    for (int h = 0; h < H; ++h)
      store_rows(acc[t][h], bias, o0 + 8 * (h0 + h), rows - 8 * (h0 + h), y + (t0 + t) * w.out);
}

template <int T, int H>
void w4a16_halves(const W4View& w, const float* x, const float* xsum, int64_t t0,
                  const uint8_t* tile, int64_t o0, int64_t rows, const float* bias, float* y) {
  for (int h0 = 0; h0 < 2 && 8 * h0 < rows; h0 += H)
    w4a16_tile<T, H>(w, x, xsum, t0, tile, h0, o0, rows, bias, y);
}

void w4a16(const W4View& w, const float* x, const float* xsum, int64_t n, int64_t tile0,
           int64_t tile1, const float* bias, float* y) {
  for (int64_t tile = tile0; tile < tile1; ++tile) {
    const uint8_t* base = w.data + tile * w.tile_stride;
    const int64_t o0 = tile * kTileRows, rows = min64(kTileRows, w.out - o0);
    for (int64_t t0 = 0; t0 < n; t0 += 2) {
      if (n - t0 >= 2)
        w4a16_halves<2, 1>(w, x, xsum, t0, base, o0, rows, bias, y);
      else
        w4a16_halves<1, 2>(w, x, xsum, t0, base, o0, rows, bias, y);
    }
  }
}

void w4_dequant(const W4View& w, int64_t tile0, int64_t tile1, float* dst, int64_t ld) {
  for (int64_t tile = tile0; tile < tile1; ++tile) {
    const uint8_t* c = w.data + tile * w.tile_stride;
    const auto* scales = reinterpret_cast<const float*>(c + w.scales_offset);
    const uint8_t* zeros = c + w.zeros_offset;
    float* col = dst + kTileRows * (tile - tile0);
    for (int64_t j = 0; j < w.groups; ++j) {
      const __m256 s0 = _mm256_loadu_ps(scales + kTileRows * j);
      const __m256 s1 = _mm256_loadu_ps(scales + kTileRows * j + 8);
      const __m256 z0 = half_zeros(zeros, j, 0), z1 = half_zeros(zeros, j, 1);
      for (int64_t k0 = j * w.group; k0 < (j + 1) * w.group; k0 += 8, c += kChunkBytes) {
        const __m256i v0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(c));
        const __m256i v1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(c + 32));
        for (int jj = 0; jj < 8; ++jj) {
          float* dst_k = col + (k0 + (jj >> 1) + 4 * (jj & 1)) * ld;
          _mm256_storeu_ps(dst_k, _mm256_mul_ps(_mm256_sub_ps(nibble_column(v0, jj), z0), s0));
          _mm256_storeu_ps(dst_k + 8, _mm256_mul_ps(_mm256_sub_ps(nibble_column(v1, jj), z1), s1));
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// panel32: 32 rows (four ymm) x 3 tokens = 12 accumulators, 3 broadcasts and one panel vector
// in flight: all 16 ymm registers.
template <int T>
void panel32_t(const float* panel, int64_t in, const float* x, int64_t rows, const float* bias,
               float* y, int64_t ldy) {
  __m256 acc[4][T];
  for (int r = 0; r < 4; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  for (int64_t k = 0; k < in; ++k) {
    __m256 xb[T];
    for (int t = 0; t < T; ++t) xb[t] = _mm256_broadcast_ss(x + t * in + k);
    for (int r = 0; r < 4; ++r) {
      const __m256 w = _mm256_load_ps(panel + 32 * k + 8 * r);
      for (int t = 0; t < T; ++t) acc[r][t] = _mm256_fmadd_ps(w, xb[t], acc[r][t]);
    }
  }
  for (int t = 0; t < T; ++t)
    for (int r = 0; r < 4 && 8 * r < rows; ++r)
      store_rows(acc[r][t], bias ? bias + 8 * r : nullptr, 0, rows - 8 * r, y + t * ldy + 8 * r);
}

void panel32(const float* panel, int64_t in, const float* x, int64_t n, int64_t rows,
             const float* bias, float* y, int64_t ldy) {
  for (int64_t t0 = 0; t0 < n; t0 += 3) {
    const float* xt = x + t0 * in;
    float* yt = y + t0 * ldy;
    switch (min64(3, n - t0)) {
      case 1:
        panel32_t<1>(panel, in, xt, rows, bias, yt, ldy);
        break;
      case 2:
        panel32_t<2>(panel, in, xt, rows, bias, yt, ldy);
        break;
      default:
        panel32_t<3>(panel, in, xt, rows, bias, yt, ldy);
        break;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Same float operations as the scalar reference, so the int8 codes are bit-identical.
void quantize_q8(const float* x, int64_t in, int8_t* q, float* d, int32_t* sums) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t b = 0; b < in / kQBlock; ++b) {
    const float* xb = x + b * kQBlock;
    __m256 v[4];
    __m256 mx = _mm256_setzero_ps();
    for (int i = 0; i < 4; ++i) {
      v[i] = _mm256_loadu_ps(xb + 8 * i);
      mx = _mm256_max_ps(mx, _mm256_and_ps(v[i], abs_mask));
    }
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    const float amax = _mm_cvtss_f32(m);
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    __m256i iv[4];
    for (int i = 0; i < 4; ++i) iv[i] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], _mm256_set1_ps(id)));
    const __m256i p =
        _mm256_packs_epi16(_mm256_packs_epi32(iv[0], iv[1]), _mm256_packs_epi32(iv[2], iv[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + b * kQBlock),
                        _mm256_permutevar8x32_epi32(p, order));
    const __m256i s =
        _mm256_add_epi32(_mm256_add_epi32(iv[0], iv[1]), _mm256_add_epi32(iv[2], iv[3]));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
    d[b] = amax / 127.0f;
    sums[b] = _mm_cvtsi128_si32(s4);
  }
}

// ---------------------------------------------------------------------------------------------
template <bool kBf16>
inline __m256 load_half(const uint16_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  if (kBf16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  return _mm256_cvtph_ps(h);
}

template <bool kBf16>
inline __m256 load_row(const uint16_t* p) {
  return load_half<kBf16>(p);
}
template <bool kBf16>
inline __m256 load_row(const float* p) {
  return _mm256_loadu_ps(p);
}

// The last in % 8 columns go through a zero-padded copy (AVX2 has no 16-bit masked load).
template <typename W, bool kBf16, int R, int T>
void half_block(const float* x, int64_t in, const W* w, int64_t o, const float* bias, float* y,
                int64_t ldy) {
  __m256 acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  const int64_t full = in / 8 * 8;
  for (int64_t k = 0; k < full; k += 8) {
    __m256 xv[T];
    for (int t = 0; t < T; ++t) xv[t] = _mm256_loadu_ps(x + t * in + k);
    for (int r = 0; r < R; ++r) {
      const __m256 wv = load_row<kBf16>(w + (o + r) * in + k);
      for (int t = 0; t < T; ++t) acc[r][t] = _mm256_fmadd_ps(wv, xv[t], acc[r][t]);
    }
  }
  if (full < in) {
    const int64_t rest = in - full;
    alignas(32) float xpad[T][8] = {};
    alignas(32) W wpad[8] = {};
    for (int t = 0; t < T; ++t)
      for (int64_t i = 0; i < rest; ++i) xpad[t][i] = x[t * in + full + i];
    for (int r = 0; r < R; ++r) {
      for (int64_t i = 0; i < rest; ++i) wpad[i] = w[(o + r) * in + full + i];
      const __m256 wv = load_row<kBf16>(wpad);
      for (int t = 0; t < T; ++t)
        acc[r][t] = _mm256_fmadd_ps(wv, _mm256_load_ps(xpad[t]), acc[r][t]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) {
      const float v = hsum(acc[r][t]);
      y[t * ldy + o + r] = bias ? v + bias[o + r] : v;
    }
}

template <typename W, bool kBf16, int T>
void half_rows_t(const float* x, int64_t in, const W* w, int64_t o0, int64_t o1, const float* bias,
                 float* y, int64_t ldy) {
  int64_t o = o0;
  for (; o + 4 <= o1; o += 4) half_block<W, kBf16, 4, T>(x, in, w, o, bias, y, ldy);
  for (; o < o1; ++o) half_block<W, kBf16, 1, T>(x, in, w, o, bias, y, ldy);
}

// Rows of f32 (W = float) or half / bfloat16 (W = uint16_t) weights.
template <typename W, bool kBf16>
void half_rows(const float* x, int64_t n, const W* w, int64_t in, int64_t o0, int64_t o1,
               const float* bias, float* y, int64_t ldy) {
  for (int64_t t0 = 0; t0 < n; t0 += 2) {
    if (n - t0 >= 2)
      half_rows_t<W, kBf16, 2>(x + t0 * in, in, w, o0, o1, bias, y + t0 * ldy, ldy);
    else
      half_rows_t<W, kBf16, 1>(x + t0 * in, in, w, o0, o1, bias, y + t0 * ldy, ldy);
  }
}

// 8 x 8 f32 transpose in registers: r[i] holds row i; afterwards r[j] holds column j.
inline void transpose8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int h = 0; h < 2; ++h) {  // rows 4h..4h+3: u[4h + m] lane L holds column 4L + m
    u[4 * h + 0] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0x44);
    u[4 * h + 1] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0xEE);
    u[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
    u[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xEE);
  }
  for (int m = 0; m < 4; ++m) {
    r[m] = _mm256_permute2f128_ps(u[m], u[4 + m], 0x20);
    r[4 + m] = _mm256_permute2f128_ps(u[m], u[4 + m], 0x31);
  }
}

template <bool kBf16>
inline float half_scalar(uint16_t h) {
  if (kBf16) {
    const uint32_t bits = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }
  return _cvtsh_ss(h);
}

// Load(p) gives 8 columns of a row as f32, Scalar(v) one element.
template <typename T, typename Load, typename Scalar>
void to_panel32(const T* w, int64_t in, int64_t rows, float* panel, Load load, Scalar scalar) {
  const int64_t full = in / 8 * 8;
  for (int64_t k = 0; k < full; k += 8)
    for (int g = 0; g < 4; ++g) {
      __m256 r[8];
      for (int i = 0; i < 8; ++i) {
        const int64_t row = 8 * g + i;
        r[i] = row < rows ? load(w + row * in + k) : _mm256_setzero_ps();
      }
      transpose8(r);
      for (int j = 0; j < 8; ++j) _mm256_storeu_ps(panel + (k + j) * 32 + 8 * g, r[j]);
    }
  for (int64_t k = full; k < in; ++k)  // the last in % 8 columns, one at a time
    for (int64_t row = 0; row < 32; ++row)
      panel[k * 32 + row] = row < rows ? scalar(w[row * in + k]) : 0.0f;
}

template <bool kBf16>
void half_panel32(const uint16_t* w, int64_t in, int64_t rows, float* panel) {
  to_panel32(
      w, in, rows, panel, [](const uint16_t* p) { return load_half<kBf16>(p); },
      [](uint16_t v) { return half_scalar<kBf16>(v); });
}

void f32_panel32(const float* w, int64_t in, int64_t rows, float* panel) {
  to_panel32(
      w, in, rows, panel, [](const float* p) { return _mm256_loadu_ps(p); },
      [](float v) { return v; });
}

template <bool kBf16>
void half_to_f32(const uint16_t* src, float* dst, int64_t count) {
  int64_t i = 0;
  for (; i + 8 <= count; i += 8) _mm256_storeu_ps(dst + i, load_half<kBf16>(src + i));
  if (i < count) {
    alignas(16) uint16_t pad[8] = {};
    alignas(32) float out[8];
    for (int64_t k = i; k < count; ++k) pad[k - i] = src[k];
    _mm256_store_ps(out, load_half<kBf16>(pad));
    for (int64_t k = i; k < count; ++k) dst[k] = out[k - i];
  }
}

// As the AVX-512 probe loop: one stream, software prefetch 1 KiB ahead. p is 32-byte aligned.
float sum_f32(const float* p, int64_t n) {
  constexpr int64_t kAhead = 256;  // floats = 1 KiB
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    if (i % 64 == 0 && i + kAhead < n) {
      _mm_prefetch(reinterpret_cast<const char*>(p + i + kAhead), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(p + i + kAhead + 16), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(p + i + kAhead + 32), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(p + i + kAhead + 48), _MM_HINT_T0);
    }
    a0 = _mm256_add_ps(a0, _mm256_load_ps(p + i));
    a1 = _mm256_add_ps(a1, _mm256_load_ps(p + i + 8));
    a2 = _mm256_add_ps(a2, _mm256_load_ps(p + i + 16));
    a3 = _mm256_add_ps(a3, _mm256_load_ps(p + i + 24));
  }
  float sum = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  for (; i < n; ++i) sum += p[i];
  return sum;
}

}  // namespace

const KernelTable kAvx2Table = {
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
    q8a8_avx2,
};

}  // namespace awq::kernels::detail
