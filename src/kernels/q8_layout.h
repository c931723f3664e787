// The packed Q8 layout (internal to the kernel layer).
//
// Rows are cut into tiles of 16 (the last tile padded with code 0 and scale 0). A tile is one
// contiguous run of tile_stride bytes (a multiple of 64):
//
//   codes  : in/4 chunks of 64 bytes. Chunk c covers input columns 4c .. 4c+3 of the 16 rows:
//            byte 4r + m (r = row in tile, m = 0..3) is the int8 code of column 4c+m, in [-127,
//            127].
//   scales : in/32 blocks x 16 IEEE half (scale of block b, row r at [16b + r])
//   padding up to a multiple of 64 bytes
//
// Why this shape: AVX-512 VNNI's `vpdpbusd` multiplies 64 unsigned bytes by 64 signed bytes and
// adds each group of 4 products into one of 16 int32 lanes, so one chunk against one broadcast
// 4-byte piece of the int8 activations leaves row r's partial dot in lane r: no horizontal sums,
// the same lane = row picture as the W4 tiles (w4_layout.h). The codes are signed; the unsigned
// operand is code ^ 0x80 = code + 128, and the extra 128 * sum(q) of each block is subtracted with
// the activation block sums the int8 quantization computes anyway. AVX2 (no VNNI; pmaddubsw's
// int16 pair sums would overflow with code + 128) uses the sign trick instead: |code| x (q with
// code's sign), exact because no code is -128. A decode pass reads each tile front to back: the
// codes, with the scales following at 1/16 of the codes' pace (bytes() = tiles * tile_stride).
#pragma once
#include <cstdint>

namespace awq::kernels::detail {

inline constexpr int64_t kQ8TileRows = 16;
inline constexpr int64_t kQ8ChunkBytes = 64;  // 16 rows x 4 columns
inline constexpr int64_t kQ8Block = 32;       // inputs per weight scale and per activation scale

struct Q8View {
  const uint8_t* data;
  int64_t out, in, blocks, tiles, tile_stride;
  int64_t scales_offset;  // = 16 * in
};

// Activations quantized to int8 per block of 32 (the KernelTable's quantize_q8). Per token t:
//   q[t*in + k]         int8 codes, x ~= d * q
//   d[t*blocks + b]     block scale = max|x| / 127
//   sums[t*blocks + b]  sum of the block's codes
struct Q8Inputs {
  const int8_t* q;
  const float* d;
  const int32_t* sums;
  int64_t in, blocks;
};

// y[t * out + o] for t < n and rows o of tiles [tile0, tile1) (+ bias[o]); per row and token:
// acc = 0; for each block b in order: acc = fma(scale[o][b], float(dot_b) * d[t][b], acc).
// One per ISA (q8_*.cpp), each computing exactly those float operations.
using Q8A8Fn = void (*)(const Q8View& w, const Q8Inputs& a, int64_t n, int64_t tile0, int64_t tile1,
                        const float* bias, float* y);
void q8a8_scalar(const Q8View& w, const Q8Inputs& a, int64_t n, int64_t tile0, int64_t tile1,
                 const float* bias, float* y);
void q8a8_avx2(const Q8View& w, const Q8Inputs& a, int64_t n, int64_t tile0, int64_t tile1,
               const float* bias, float* y);
void q8a8_avx512(const Q8View& w, const Q8Inputs& a, int64_t n, int64_t tile0, int64_t tile1,
                 const float* bias, float* y);

}  // namespace awq::kernels::detail
