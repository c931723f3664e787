// Q8Matrix: quantization of float rows to int8 blocks and the packing into the tile layout of
// q8_layout.h.
#include <cmath>
#include <cstring>
#include <vector>

#include "base/error.h"
#include "base/half.h"
#include "base/thread_pool.h"
#include "kernels/q8.h"
#include "kernels/q8_layout.h"
#include "kernels/weight_memory.h"

namespace awq::kernels {

using detail::kQ8Block;
using detail::kQ8ChunkBytes;
using detail::kQ8TileRows;

namespace {

float row_value(const void* rows, Q8RowType type, int64_t at) {
  switch (type) {
    case Q8RowType::F32:
      return static_cast<const float*>(rows)[at];
    case Q8RowType::F16:
      return f16_to_f32(static_cast<const uint16_t*>(rows)[at]);
    case Q8RowType::BF16:
      return bf16_to_f32(static_cast<const uint16_t*>(rows)[at]);
  }
  return 0.0f;
}

}  // namespace

Q8Matrix Q8Matrix::pack(const void* rows, Q8RowType type, int64_t out, int64_t in,
                        const std::string& name) {
  AWQ_CHECK(out > 0 && in > 0, "int8 copy of '{}': shape [{} x {}] must be positive", name, out,
            in);
  AWQ_CHECK(in % kQ8Block == 0,
            "int8 copy of '{}' [{} x {}]: the input width must be a multiple of {}", name, out, in,
            kQ8Block);
  AWQ_CHECK(rows != nullptr, "int8 copy of '{}': no rows", name);

  Q8Matrix m;
  m.out_ = out;
  m.in_ = in;
  m.tiles_ = (out + kQ8TileRows - 1) / kQ8TileRows;
  const int64_t blocks = in / kQ8Block;
  const int64_t raw = kQ8TileRows * in + 2 * kQ8TileRows * blocks;
  m.tile_stride_ = (raw + 63) / 64 * 64;
  m.storage_ = alloc_weight_bytes(m.bytes());
  m.data_ = m.storage_.get();

  // Any bad row is reported by the lowest failing index, whatever the thread count: each chunk
  // records its first failure and the first chunk's failure wins.
  std::vector<int64_t> bad(size_t(m.tiles_), -1);
  uint8_t* base = m.storage_.get();
  const int64_t stride = m.tile_stride_;
  parallel_for(m.tiles_, 16, [&](int64_t t0, int64_t t1) {
    std::vector<float> w(static_cast<size_t>(kQ8Block));
    for (int64_t t = t0; t < t1; ++t) {
      uint8_t* tile = base + t * stride;
      auto* scales = reinterpret_cast<uint16_t*>(tile + kQ8TileRows * in);
      for (int64_t r = 0; r < kQ8TileRows; ++r) {
        const int64_t o = t * kQ8TileRows + r;
        if (o >= out) break;  // padding rows stay zero
        for (int64_t b = 0; b < blocks; ++b) {
          float amax = 0.0f;
          for (int64_t k = 0; k < kQ8Block; ++k) {
            const float v = row_value(rows, type, o * in + b * kQ8Block + k);
            if (!std::isfinite(v) && bad[size_t(t)] < 0) bad[size_t(t)] = o * in + b * kQ8Block + k;
            w[size_t(k)] = v;
            amax = std::fmax(amax, std::fabs(v));
          }
          // The smallest half >= max|w| / 127 (rounded up, not to nearest): then no code needs
          // clamping and every weight is within half a step, even where the scale is a subnormal
          // half (max|w| < 127 x 2^-14) or would round to 0.
          const float want = amax / 127.0f;
          uint16_t d16 = f32_to_f16(want);
          if (f16_to_f32(d16) < want) ++d16;  // positive halves order as their bits
          const float d = f16_to_f32(d16);
          if (!std::isfinite(d) && bad[size_t(t)] < 0) bad[size_t(t)] = o * in + b * kQ8Block;
          scales[kQ8TileRows * b + r] = d16;
          // Codes against the stored scale, so that code * d is the nearest step. The clamp only
          // keeps the cast defined for a non-finite weight (reported below).
          const float id = d > 0.0f && std::isfinite(d) ? 1.0f / d : 0.0f;
          for (int64_t k = 0; k < kQ8Block; ++k) {
            const int64_t i = b * kQ8Block + k;
            const float c =
                std::fmin(127.0f, std::fmax(-127.0f, std::nearbyint(w[size_t(k)] * id)));
            tile[(i / 4) * kQ8ChunkBytes + 4 * r + i % 4] = uint8_t(int8_t(c));
          }
        }
      }
    }
  });
  for (int64_t at : bad) {
    if (at < 0) continue;
    const float v = row_value(rows, type, at);
    AWQ_CHECK(std::isfinite(v), "int8 copy of '{}' [{} x {}]: weight at row {}, column {} is {}",
              name, out, in, at / in, at % in, v);
    fail(
        "int8 copy of '{}' [{} x {}]: row {}, columns {}..{} hold a weight beyond 127 x 65504, "
        "too large for an f16 block scale",
        name, out, in, at / in, at % in, at % in + kQ8Block - 1);
  }
  return m;
}

int8_t Q8Matrix::code(int64_t o, int64_t i) const {
  const uint8_t* tile = data_ + (o / kQ8TileRows) * tile_stride_;
  return int8_t(tile[(i / 4) * kQ8ChunkBytes + 4 * (o % kQ8TileRows) + i % 4]);
}

float Q8Matrix::scale(int64_t o, int64_t b) const {
  const uint8_t* tile = data_ + (o / kQ8TileRows) * tile_stride_;
  uint16_t h;
  std::memcpy(&h, tile + kQ8TileRows * in_ + 2 * (kQ8TileRows * b + o % kQ8TileRows), sizeof h);
  return f16_to_f32(h);
}

void Q8Matrix::dequantize_row(int64_t o, float* dst) const {
  AWQ_CHECK(o >= 0 && o < out_, "Q8 matrix [{} x {}]: row {} out of range", out_, in_, o);
  for (int64_t b = 0; b < blocks(); ++b) {
    const float d = scale(o, b);
    for (int64_t i = b * kQ8Block; i < (b + 1) * kQ8Block; ++i) dst[i] = float(code(o, i)) * d;
  }
}

}  // namespace awq::kernels
