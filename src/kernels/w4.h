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

class W4Matrix {
 public:
  W4Matrix() = default;
  W4Matrix(const W4Matrix& other);
  W4Matrix& operator=(const W4Matrix& other);
  W4Matrix(W4Matrix&&) noexcept = default;
  W4Matrix& operator=(W4Matrix&&) noexcept = default;

  // Validates the source (shape, group size, code and zero range) and repacks it. Throws
  // awq::Error naming what is wrong.
  static W4Matrix pack(const W4Source& src);

  int64_t out() const { return out_; }
  int64_t in() const { return in_; }
  int group() const { return int(group_); }   // the effective group size (in when built with -1)
  int64_t groups() const { return groups_; }  // groups per row
  size_t bytes() const { return size_t(tiles_ * tile_stride_); }  // what one full pass streams
  const uint8_t* data() const { return data_.get(); }
  int64_t tiles() const { return tiles_; }
  int64_t tile_stride() const { return tile_stride_; }

  // Row o as f32, exactly (codes - zero) * scale as in the source.
  void dequantize_row(int64_t o, float* dst) const;
  // The source form back (codes, scales, zeros), for tests and format writers.
  uint8_t code(int64_t o, int64_t i) const;
  float scale(int64_t o, int64_t group_index) const;
  uint8_t zero(int64_t o, int64_t group_index) const;

 private:
  struct Free {
    void operator()(uint8_t* p) const;
  };
  int64_t out_ = 0, in_ = 0, group_ = 0, groups_ = 0, tiles_ = 0, tile_stride_ = 0;
  std::unique_ptr<uint8_t[], Free> data_;
};

// y[n, out] = x[n, in] · W^T (+ bias). The same function as dequantize-then-f32-matmul, up to the
// rounding of a different summation order.
void gemm_w4a16(const float* x, int64_t n, const W4Matrix& w, const float* bias, float* y);

// The activations are quantized on the fly to int8 per block of 32 inputs (symmetric, scale
// d = max|x| / 127, round half to even), then multiplied with integer dot products (VNNI where the
// CPU has it). The zero point folds in through each block's sum of quantized activations.
void gemm_w4a8(const float* x, int64_t n, const W4Matrix& w, const float* bias, float* y);

}  // namespace awq::kernels
