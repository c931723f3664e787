// Portable kernels: the fallback on CPUs without AVX2, and the plainest statement of what the
// SIMD variants compute on the packed layout (w4_layout.h). They follow the same order of
// operations as the SIMD kernels (per-group partial sums, zero point folded through the group's
// activation sum), so the two differ only by how partial sums are split across vector lanes.
#include <cmath>
#include <cstdint>

#include "base/half.h"
#include "kernels/kernel_table.h"

namespace awq::kernels::detail {
namespace {

// The 4-bit code of row r (in its tile) and column k.
int code_at(const uint8_t* tile, int64_t r, int64_t k) {
  const uint8_t byte = tile[(k / 8) * kChunkBytes + 4 * r + (k % 4)];
  return (k % 8) < 4 ? (byte & 0x0F) : (byte >> 4);
}
const float* tile_scales(const W4View& w, const uint8_t* tile) {
  return reinterpret_cast<const float*>(tile + w.scales_offset);
}
const uint8_t* tile_zeros(const W4View& w, const uint8_t* tile) {
  return tile + w.zeros_offset;
}

// y = sum over groups j of s_j * (sum_b d_b * dot(codes_b, q_b) - z_j * gsum_j).
void w4a8(const W4View& w, const Q8Acts& a, int64_t n, int64_t tile0, int64_t tile1,
          const float* bias, float* y) {
  const int64_t blocks_per_group = w.group / kQBlock;
  for (int64_t tile = tile0; tile < tile1; ++tile) {
    const uint8_t* codes = w.data + tile * w.tile_stride;
    const float* scales = tile_scales(w, codes);
    const uint8_t* zeros = tile_zeros(w, codes);
    for (int64_t r = 0; r < kTileRows && tile * kTileRows + r < w.out; ++r) {
      const int64_t o = tile * kTileRows + r;
      for (int64_t t = 0; t < n; ++t) {
        const int8_t* q = a.q + t * a.in;
        const float* d = a.d + t * a.blocks;
        float acc = 0.0f;
        for (int64_t j = 0; j < w.groups; ++j) {
          float g = 0.0f;
          for (int64_t b = j * blocks_per_group; b < (j + 1) * blocks_per_group; ++b) {
            int32_t dot = 0;
            for (int64_t k = b * kQBlock; k < (b + 1) * kQBlock; ++k)
              dot += code_at(codes, r, k) * int32_t(q[k]);
            g += d[b] * float(dot);
          }
          const float z = float(zeros[kTileRows * j + r]);
          acc += scales[kTileRows * j + r] * (g - z * a.gsum[t * a.groups + j]);
        }
        y[t * w.out + o] = bias ? acc + bias[o] : acc;
      }
    }
  }
}

// y = sum over groups j of s_j * (sum_k code_k * x_k - z_j * sum_k x_k).
void w4a16(const W4View& w, const float* x, const float* xsum, int64_t n, int64_t tile0,
           int64_t tile1, const float* bias, float* y) {
  for (int64_t tile = tile0; tile < tile1; ++tile) {
    const uint8_t* codes = w.data + tile * w.tile_stride;
    const float* scales = tile_scales(w, codes);
    const uint8_t* zeros = tile_zeros(w, codes);
    for (int64_t r = 0; r < kTileRows && tile * kTileRows + r < w.out; ++r) {
      const int64_t o = tile * kTileRows + r;
      for (int64_t t = 0; t < n; ++t) {
        const float* xt = x + t * w.in;
        float acc = 0.0f;
        for (int64_t j = 0; j < w.groups; ++j) {
          float g = 0.0f;
          for (int64_t k = j * w.group; k < (j + 1) * w.group; ++k)
            g += float(code_at(codes, r, k)) * xt[k];
          const float z = float(zeros[kTileRows * j + r]);
          acc += scales[kTileRows * j + r] * (g - z * xsum[t * w.groups + j]);
        }
        y[t * w.out + o] = bias ? acc + bias[o] : acc;
      }
    }
  }
}

void w4_dequant(const W4View& w, int64_t tile0, int64_t tile1, float* dst, int64_t ld) {
  for (int64_t tile = tile0; tile < tile1; ++tile) {
    const uint8_t* codes = w.data + tile * w.tile_stride;
    const float* scales = tile_scales(w, codes);
    const uint8_t* zeros = tile_zeros(w, codes);
    float* col = dst + kTileRows * (tile - tile0);
    for (int64_t k = 0; k < w.in; ++k) {
      const int64_t j = k / w.group;
      for (int64_t r = 0; r < kTileRows; ++r)
        col[k * ld + r] =
            float(code_at(codes, r, k) - int(zeros[kTileRows * j + r])) * scales[kTileRows * j + r];
    }
  }
}

// d = max|x| / 127; q = round-half-even(x * (127 / max|x|)). Every ISA computes exactly these
// float operations, so the int8 codes are identical everywhere.
void quantize_q8(const float* x, int64_t in, int8_t* q, float* d, int32_t* sums) {
  for (int64_t b = 0; b < in / kQBlock; ++b) {
    const float* xb = x + b * kQBlock;
    float amax = 0.0f;
    for (int k = 0; k < kQBlock; ++k) amax = std::fmax(amax, std::fabs(xb[k]));
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    int32_t sum = 0;
    for (int k = 0; k < kQBlock; ++k) {
      const int v = int(std::nearbyint(xb[k] * id));
      q[b * kQBlock + k] = int8_t(v);
      sum += v;
    }
    d[b] = amax / 127.0f;
    sums[b] = sum;
  }
}

template <float (*Convert)(uint16_t)>
void half_rows(const float* x, int64_t n, const uint16_t* w, int64_t in, int64_t o0, int64_t o1,
               const float* bias, float* y, int64_t ldy) {
  for (int64_t o = o0; o < o1; ++o) {
    const uint16_t* row = w + o * in;
    for (int64_t t = 0; t < n; ++t) {
      float acc = 0.0f;
      for (int64_t k = 0; k < in; ++k) acc += Convert(row[k]) * x[t * in + k];
      y[t * ldy + o] = bias ? acc + bias[o] : acc;
    }
  }
}

template <float (*Convert)(uint16_t)>
void half_to_f32(const uint16_t* src, float* dst, int64_t count) {
  for (int64_t i = 0; i < count; ++i) dst[i] = Convert(src[i]);
}

float sum_f32(const float* p, int64_t n) {
  float acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += p[i + j];
  float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) sum += p[i];
  return sum;
}

}  // namespace

const KernelTable kScalarTable = {
    w4a8,
    w4a16,
    w4_dequant,
    nullptr,  // panel32: without SIMD, OpenBLAS's sgemm is faster than anything plain C++ here
    quantize_q8,
    half_rows<f16_to_f32>,
    half_rows<bf16_to_f32>,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
    half_to_f32<f16_to_f32>,
    half_to_f32<bf16_to_f32>,
    sum_f32,
    q8a8_scalar,
};

}  // namespace awq::kernels::detail
