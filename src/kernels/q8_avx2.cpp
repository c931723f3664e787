// AVX2 + FMA + F16C q8a8 kernel: the fallback for x86-64 CPUs without AVX-512. Compiled with those
// -m flags (CMakeLists: *_avx2.cpp); see the ODR note in isa.cpp.
//
// A 16-row tile is two 8-row halves here: bytes 0..31 of each 64-byte chunk hold rows 0..7, bytes
// 32..63 rows 8..15. No VNNI: pmaddubsw (u8 x s8, pairs summed in int16) with the sign trick,
// |code| x (q with code's sign), whose pair sums stay below 2 x 127 x 127 = 32258 (no code is
// -128, no q is -128), then pmaddwd with ones to int32 per row.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/q8_layout.h"

namespace awq::kernels::detail {
namespace {

// Software prefetch distance for decode (as the AVX2 W4 kernels).
constexpr int64_t kPrefetchBytes = 32768;

int32_t load_i32(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Half h0 (H = 1) or both halves (H = 2) of one tile for T tokens; the scalar kernel's float
// operations, lane by lane.
template <int T, int H>
void q8_halves(const Q8View& w, const Q8Inputs& a, int64_t t0, const uint8_t* tile, int h0,
               int64_t o0, int64_t rows, const float* bias, float* y) {
  const __m256i ones = _mm256_set1_epi16(1);
  const auto* scales = reinterpret_cast<const uint16_t*>(tile + w.scales_offset);
  const uint8_t* end = w.data + w.tiles * w.tile_stride;  // prefetch limit
  constexpr bool kPrefetch = T <= 2 && H == 2;            // decode: one pass over the tile
  __m256 acc[T][H];
  for (int t = 0; t < T; ++t)
    for (int h = 0; h < H; ++h) acc[t][h] = _mm256_setzero_ps();
  const uint8_t* c = tile;
  for (int64_t b = 0; b < w.blocks; ++b) {
    __m256i s[T][H];
    for (int t = 0; t < T; ++t)
      for (int h = 0; h < H; ++h) s[t][h] = _mm256_setzero_si256();
    for (int cc = 0; cc < 8; ++cc, c += kQ8ChunkBytes) {
      const int64_t k = b * kQ8Block + 4 * cc;
      if (kPrefetch && c + kPrefetchBytes < end)
        _mm_prefetch(reinterpret_cast<const char*>(c + kPrefetchBytes), _MM_HINT_T0);
      for (int h = 0; h < H; ++h) {
        const __m256i v = _mm256_load_si256(reinterpret_cast<const __m256i*>(c + 32 * (h0 + h)));
        const __m256i mag = _mm256_abs_epi8(v);
        for (int t = 0; t < T; ++t) {
          const __m256i x = _mm256_set1_epi32(load_i32(a.q + (t0 + t) * a.in + k));
          const __m256i p16 = _mm256_maddubs_epi16(mag, _mm256_sign_epi8(x, v));
          s[t][h] = _mm256_add_epi32(s[t][h], _mm256_madd_epi16(p16, ones));
        }
      }
    }
    for (int h = 0; h < H; ++h) {
      const __m256 sc = _mm256_cvtph_ps(_mm_loadu_si128(
          reinterpret_cast<const __m128i*>(scales + kQ8TileRows * b + 8 * (h0 + h))));
      for (int t = 0; t < T; ++t) {
        const __m256 p = _mm256_mul_ps(_mm256_cvtepi32_ps(s[t][h]),
                                       _mm256_set1_ps(a.d[(t0 + t) * a.blocks + b]));
        acc[t][h] = _mm256_fmadd_ps(sc, p, acc[t][h]);
      }
    }
  }
  for (int t = 0; t < T; ++t)
    for (int h = 0; h < H; ++h) {
      const int64_t r0 = o0 + 8 * (h0 + h), n_rows = rows - 8 * (h0 + h);
      if (n_rows <= 0) continue;
      alignas(32) float v[8];
      _mm256_store_ps(v, acc[t][h]);
      float* yt = y + (t0 + t) * w.out + r0;
      for (int64_t r = 0; r < 8 && r < n_rows; ++r) yt[r] = bias ? v[r] + bias[r0 + r] : v[r];
    }
}

template <int T, int H>
void q8_tile(const Q8View& w, const Q8Inputs& a, int64_t t0, const uint8_t* tile, int64_t o0,
             int64_t rows, const float* bias, float* y) {
  for (int h0 = 0; h0 < 2 && 8 * h0 < rows; h0 += H)
    q8_halves<T, H>(w, a, t0, tile, h0, o0, rows, bias, y);
}

}  // namespace

void q8a8_avx2(const Q8View& w, const Q8Inputs& a, int64_t n, int64_t tile0, int64_t tile1,
               const float* bias, float* y) {
  for (int64_t tile = tile0; tile < tile1; ++tile) {
    const uint8_t* base = w.data + tile * w.tile_stride;
    const int64_t o0 = tile * kQ8TileRows;
    const int64_t rows = w.out - o0 < kQ8TileRows ? w.out - o0 : kQ8TileRows;
    for (int64_t t0 = 0; t0 < n; t0 += 4) {
      switch (n - t0 < 4 ? n - t0 : 4) {
        case 1:
          q8_tile<1, 2>(w, a, t0, base, o0, rows, bias, y);
          break;
        case 2:
          q8_tile<2, 2>(w, a, t0, base, o0, rows, bias, y);
          break;
        case 3:
          q8_tile<3, 1>(w, a, t0, base, o0, rows, bias, y);
          break;
        default:
          q8_tile<4, 1>(w, a, t0, base, o0, rows, bias, y);
          break;
      }
    }
  }
}

}  // namespace awq::kernels::detail
