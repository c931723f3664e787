// The packed W4 layout (internal to the kernel layer).
//
// Rows are cut into tiles of kTileRows = 16 (the last tile padded with zero codes, scale 0 and
// zero 0). A tile is one contiguous run of tile_stride bytes (a multiple of 64):
//
//   codes  : in/8 chunks of 64 bytes. Chunk c covers input columns k = 8c .. 8c+7 of the 16 rows.
//            Byte 4r + m (r = row in tile, m = 0..3) holds column 8c+m in its low nibble and
//            column 8c+4+m in its high nibble.
//   scales : groups x 16 f32   (scale of group j, row r at [16j + r])
//   zeros  : groups x 16 u8    (zero point of group j, row r at [16j + r])
//   padding up to a multiple of 64 bytes
//
// Why this shape: with AVX-512 VNNI, `vpdpbusd` multiplies 64 unsigned bytes by 64 signed bytes
// and adds each group of 4 products into one of 16 int32 lanes. Masking a chunk with 0x0F gives
// exactly 16 rows x 4 consecutive columns (one lane per row), and shifting by 4 the next 4
// columns, so one 64-byte load feeds two VNNI instructions against two broadcast 4-byte pieces of
// the int8 activations, and the 16 lanes end up holding 16 output rows: no horizontal sums. For
// f32 (w4a16) the same lane = row picture holds: shifting a chunk right by 4j puts column
// k(j) = 8c + j/2 + 4(j%2) of all 16 rows in the low nibble of each lane. AVX2 splits the
// 64 bytes into two 8-row halves. The codes are 64-byte aligned; the scales and zeros of a tile
// follow its codes, so a decode pass is one sequential stream (bytes() = tiles * tile_stride).
#pragma once
#include <cstdint>

namespace awq::kernels::detail {

inline constexpr int64_t kTileRows = 16;
inline constexpr int64_t kChunkBytes = 64;  // 16 rows x 8 columns x 4 bits
inline constexpr int64_t kQBlock = 32;      // int8 activation block (w4a8)

// A plain view of a W4Matrix for the per-ISA kernels (no member functions on purpose: those
// files are compiled with other -m flags, see isa.cpp).
struct W4View {
  const uint8_t* data;
  int64_t out, in, group, groups, tiles, tile_stride;
  int64_t scales_offset;  // = 8 * in
  int64_t zeros_offset;   // = 8 * in + 64 * groups
};

// Activations quantized to int8 per block of 32 (w4a8). Per token t:
//   q[t*in + k]          int8 codes, x ~= d * q
//   d[t*blocks + b]      block scale = max|x| / 127
//   gsum[t*groups + j]   sum over the blocks b of group j of d_b * (sum of q in block b):
//                        what the zero point multiplies.
struct Q8Acts {
  const int8_t* q;
  const float* d;
  const float* gsum;
  int64_t in, blocks, groups;
};

}  // namespace awq::kernels::detail
