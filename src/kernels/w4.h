// 4-bit weights (AWQ group quantization) and the matrix products that read them.
//
// Source form, as the quantizer produces it (row-major, W as Hugging Face stores it):
//   W[o][i] = (codes[o*in + i] - zeros[o*G + i/g]) * scales[o*G + i/g],   G = in / g,
// codes and zeros in [0, 15]; g is a multiple of 32 dividing `in`, or -1 for one group per row.
// Symmetric quantization is zeros = 8 (zeros == nullptr means exactly that).
//
// W4Matrix repacks that at load into the layout the kernels stream (see w4_layout.h): 16 rows
// interleaved so that one 64-byte load feeds one AVX-512 VNNI instruction per 4 input columns,
// and each tile's scales and zeros stored right after its nibbles.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

namespace awq::kernels {

struct W4Source {
  int64_t out = 0, in = 0;
  int group = -1;
  const uint8_t* codes = nullptr;  // [out, in], one code per byte
  const float* scales = nullptr;   // [out, in / g]
  const uint8_t* zeros = nullptr;  // [out, in / g], or nullptr for symmetric (8)
};

// The packed bytes are immutable once packed, so copies (and row views) share them.
class W4Matrix {
 public:
  // Validates the source (shape, group size, code and zero range) and repacks it. Throws
  // awq::Error naming what is wrong.
  static W4Matrix pack(const W4Source& src);

  // The rows of `parts` stacked in order, as one matrix (q|k|v or gate|up for decode: one kernel
  // call instead of several). Every part must have the same input width and group size, and all
  // but the last a multiple of 16 rows (tiles are copied whole). Each output row of the result
  // is computed exactly as the same row of its part (a row's arithmetic does not depend on where
  // its tile sits), so splitting the output gives bit-identical results.
  static W4Matrix concat(const W4Matrix* const* parts, int n_parts);
  // Rows [row0, row0 + rows) as a matrix sharing this one's bytes (no copy); row0 a multiple of
  // 16, and rows too unless the view ends at the last row.
  W4Matrix rows_view(int64_t row0, int64_t rows) const;

  int64_t out() const { return out_; }
  int64_t in() const { return in_; }
  int group() const { return int(group_); }   // the effective group size (in when built with -1)
  int64_t groups() const { return groups_; }  // groups per row
  size_t bytes() const { return size_t(tiles_ * tile_stride_); }  // what one full pass streams
  const uint8_t* data() const { return data_; }
  int64_t tiles() const { return tiles_; }
  int64_t tile_stride() const { return tile_stride_; }

  // Row o as f32, exactly (codes - zero) * scale as in the source.
  void dequantize_row(int64_t o, float* dst) const;
  // The source form back (codes, scales, zeros), for tests and format writers.
  uint8_t code(int64_t o, int64_t i) const;
  float scale(int64_t o, int64_t group_index) const;
  uint8_t zero(int64_t o, int64_t group_index) const;

 private:
  int64_t out_ = 0, in_ = 0, group_ = 0, groups_ = 0, tiles_ = 0, tile_stride_ = 0;
  std::shared_ptr<uint8_t> storage_;  // 64-byte aligned allocation (shared by views)
  const uint8_t* data_ = nullptr;     // first tile of this matrix inside storage_
};

// y[n, out] = x[n, in] · W^T (+ bias). The same function as dequantize-then-f32-matmul, up to the
// rounding of a different summation order.
void gemm_w4a16(const float* x, int64_t n, const W4Matrix& w, const float* bias, float* y);

// The activations are quantized on the fly to int8 per block of 32 inputs (symmetric, scale
// d = max|x| / 127, round half to even), then multiplied with integer dot products (VNNI where the
// CPU has it). The zero point folds in through each block's sum of quantized activations.
void gemm_w4a8(const float* x, int64_t n, const W4Matrix& w, const float* bias, float* y);

}  // namespace awq::kernels
