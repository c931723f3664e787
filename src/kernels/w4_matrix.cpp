// W4Matrix: validation of the quantizer's output and the repacking into the tile layout
// described in w4_layout.h.
#include <cstdlib>
#include <cstring>

#include "base/error.h"
#include "base/thread_pool.h"
#include "kernels/w4.h"
#include "kernels/w4_layout.h"
#include "kernels/weight_memory.h"

namespace awq::kernels {

using detail::kChunkBytes;
using detail::kTileRows;

namespace {

std::shared_ptr<uint8_t> alloc_zeroed(size_t bytes) {
  return alloc_weight_bytes(bytes);
}

}  // namespace

W4Matrix W4Matrix::pack(const W4Source& src) {
  AWQ_CHECK(src.out > 0 && src.in > 0, "W4 matrix: shape [{} x {}] must be positive", src.out,
            src.in);
  AWQ_CHECK(src.in % detail::kQBlock == 0,
            "W4 matrix [{} x {}]: the input width must be a multiple of 32", src.out, src.in);
  const int64_t g = src.group == -1 ? src.in : src.group;
  AWQ_CHECK(g > 0 && g % 32 == 0 && src.in % g == 0,
            "W4 matrix [{} x {}]: group size {} must be -1 or a multiple of 32 dividing {}",
            src.out, src.in, src.group, src.in);
  AWQ_CHECK(src.codes && src.scales, "W4 matrix [{} x {}]: codes and scales are required", src.out,
            src.in);

  W4Matrix m;
  m.out_ = src.out;
  m.in_ = src.in;
  m.group_ = g;
  m.groups_ = src.in / g;
  m.tiles_ = (src.out + kTileRows - 1) / kTileRows;
  const int64_t raw = 8 * src.in + (4 + 1) * kTileRows * m.groups_;
  m.tile_stride_ = (raw + 63) / 64 * 64;
  m.storage_ = alloc_zeroed(m.bytes());
  m.data_ = m.storage_.get();

  // Range checks first, so that a bad tensor is reported rather than silently truncated.
  const int64_t n_codes = src.out * src.in;
  uint8_t bad = 0;
  for (int64_t i = 0; i < n_codes; ++i) bad |= src.codes[i];
  if (bad & 0xF0) {
    for (int64_t i = 0; i < n_codes; ++i)
      AWQ_CHECK(src.codes[i] <= 15,
                "W4 matrix [{} x {}]: code {} at row {}, column {} is not in [0, 15]", src.out,
                src.in, int(src.codes[i]), i / src.in, i % src.in);
  }
  if (src.zeros) {
    for (int64_t i = 0; i < src.out * m.groups_; ++i)
      AWQ_CHECK(src.zeros[i] <= 15,
                "W4 matrix [{} x {}]: zero point {} at row {}, group {} is not in [0, 15]", src.out,
                src.in, int(src.zeros[i]), i / m.groups_, i % m.groups_);
  }

  const int64_t in = src.in, groups = m.groups_;
  uint8_t* base = m.storage_.get();
  const int64_t stride = m.tile_stride_;
  parallel_for(m.tiles_, 16, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      uint8_t* tile = base + t * stride;
      auto* scales = reinterpret_cast<float*>(tile + 8 * in);
      uint8_t* zeros = tile + 8 * in + 4 * kTileRows * groups;
      for (int64_t r = 0; r < kTileRows; ++r) {
        const int64_t o = t * kTileRows + r;
        if (o >= src.out) break;  // padding rows stay zero
        const uint8_t* c = src.codes + o * in;
        for (int64_t chunk = 0; chunk < in / 8; ++chunk) {
          uint8_t* dst = tile + chunk * kChunkBytes + 4 * r;
          for (int m4 = 0; m4 < 4; ++m4)
            dst[m4] = uint8_t(c[8 * chunk + m4] | (c[8 * chunk + 4 + m4] << 4));
        }
        for (int64_t j = 0; j < groups; ++j) {
          scales[kTileRows * j + r] = src.scales[o * groups + j];
          zeros[kTileRows * j + r] = src.zeros ? src.zeros[o * groups + j] : uint8_t(8);
        }
      }
    }
  });
  return m;
}

W4Matrix W4Matrix::concat(const W4Matrix* const* parts, int n_parts) {
  AWQ_CHECK(n_parts >= 1, "W4 concat: no matrices");
  const W4Matrix& first = *parts[0];
  W4Matrix m;
  m.in_ = first.in_;
  m.group_ = first.group_;
  m.groups_ = first.groups_;
  m.tile_stride_ = first.tile_stride_;
  for (int i = 0; i < n_parts; ++i) {
    const W4Matrix& p = *parts[i];
    AWQ_CHECK(p.data_ != nullptr, "W4 concat: part {} is empty", i);
    AWQ_CHECK(p.in_ == m.in_ && p.group_ == m.group_,
              "W4 concat: part {} is [{} x {}] with groups of {}, part 0 has {} inputs and groups "
              "of {}",
              i, p.out_, p.in_, p.group_, m.in_, m.group_);
    AWQ_CHECK(i == n_parts - 1 || p.out_ % kTileRows == 0,
              "W4 concat: part {} has {} rows, not a multiple of {}", i, p.out_, kTileRows);
    m.out_ += p.out_;
    m.tiles_ += p.tiles_;
  }
  m.storage_ = alloc_zeroed(m.bytes());
  m.data_ = m.storage_.get();
  uint8_t* dst = m.storage_.get();
  for (int i = 0; i < n_parts; ++i) {
    std::memcpy(dst, parts[i]->data_, parts[i]->bytes());
    dst += parts[i]->bytes();
  }
  return m;
}

W4Matrix W4Matrix::rows_view(int64_t row0, int64_t rows) const {
  AWQ_CHECK(row0 >= 0 && rows > 0 && row0 + rows <= out_,
            "W4 matrix [{} x {}]: rows [{}, {}) out of range", out_, in_, row0, row0 + rows);
  AWQ_CHECK(row0 % kTileRows == 0 && (rows % kTileRows == 0 || row0 + rows == out_),
            "W4 matrix [{} x {}]: a view of rows [{}, {}) must start and end on a tile of {}", out_,
            in_, row0, row0 + rows, kTileRows);
  W4Matrix m = *this;
  m.out_ = rows;
  m.tiles_ = (rows + kTileRows - 1) / kTileRows;
  m.data_ = data_ + (row0 / kTileRows) * tile_stride_;
  return m;
}

uint8_t W4Matrix::code(int64_t o, int64_t i) const {
  const uint8_t* tile = data_ + (o / kTileRows) * tile_stride_;
  const uint8_t byte = tile[(i / 8) * kChunkBytes + 4 * (o % kTileRows) + (i % 4)];
  return (i % 8) < 4 ? (byte & 0x0F) : (byte >> 4);
}

float W4Matrix::scale(int64_t o, int64_t j) const {
  const uint8_t* tile = data_ + (o / kTileRows) * tile_stride_;
  float s;
  std::memcpy(&s, tile + 8 * in_ + 4 * (kTileRows * j + o % kTileRows), sizeof s);
  return s;
}

uint8_t W4Matrix::zero(int64_t o, int64_t j) const {
  const uint8_t* tile = data_ + (o / kTileRows) * tile_stride_;
  return tile[8 * in_ + 4 * kTileRows * groups_ + kTileRows * j + o % kTileRows];
}

void W4Matrix::dequantize_row(int64_t o, float* dst) const {
  AWQ_CHECK(o >= 0 && o < out_, "W4 matrix [{} x {}]: row {} out of range", out_, in_, o);
  for (int64_t j = 0; j < groups_; ++j) {
    const float s = scale(o, j);
    const int z = zero(o, j);
    for (int64_t i = j * group_; i < (j + 1) * group_; ++i) dst[i] = float(int(code(o, i)) - z) * s;
  }
}

}  // namespace awq::kernels
