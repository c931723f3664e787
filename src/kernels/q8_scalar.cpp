// The portable q8a8 kernel: the fallback without AVX2, and the plainest statement of what the SIMD
// variants compute on the packed layout (q8_layout.h), in the same order of float operations.
#include <cmath>
#include <cstdint>

#include "base/half.h"
#include "kernels/q8_layout.h"

namespace awq::kernels::detail {

void q8a8_scalar(const Q8View& w, const Q8Inputs& a, int64_t n, int64_t tile0, int64_t tile1,
                 const float* bias, float* y) {
  for (int64_t tile = tile0; tile < tile1; ++tile) {
    const uint8_t* codes = w.data + tile * w.tile_stride;
    const auto* scales = reinterpret_cast<const uint16_t*>(codes + w.scales_offset);
    for (int64_t r = 0; r < kQ8TileRows && tile * kQ8TileRows + r < w.out; ++r) {
      const int64_t o = tile * kQ8TileRows + r;
      for (int64_t t = 0; t < n; ++t) {
        const int8_t* q = a.q + t * a.in;
        float acc = 0.0f;
        for (int64_t b = 0; b < w.blocks; ++b) {
          int32_t dot = 0;
          for (int64_t k = b * kQ8Block; k < (b + 1) * kQ8Block; ++k)
            dot += int32_t(int8_t(codes[(k / 4) * kQ8ChunkBytes + 4 * r + k % 4])) * q[k];
          const float p = float(dot) * a.d[t * a.blocks + b];
          acc = std::fma(f16_to_f32(scales[kQ8TileRows * b + r]), p, acc);
        }
        y[t * w.out + o] = bias ? acc + bias[o] : acc;
      }
    }
  }
}

}  // namespace awq::kernels::detail
