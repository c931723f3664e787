// 8-bit weights: a run-time int8 copy of a float matrix (the lm_head for decode), and the product
// that reads it with int8 activations.
//
// Definition (like ggml's Q8_0, but the scale rounded up): for row o and block b of 32 inputs,
//   d[o][b] = the smallest IEEE half >= max_k |W[o][32b + k]| / 127
//   code[o][i] = nearbyint(W[o][i] / d[o][b]) in [-127, 127]   (0 where d is 0)
//   W[o][i] ~= code[o][i] * d[o][b]
// so every weight is within half a step (d / 2) of its source: rounding d up (ggml rounds to
// nearest) keeps |W / d| <= 127 where a subnormal half scale is coarse, and a block of tiny
// weights gets the smallest half scale rather than 0.
//
// Why a scale per block of 32 and not per row: a per-row scale would save 0.5 bit per weight
// (~6% of the head's bytes, ~0.7% of a TinyLlama-shape W4A8 token's) but lets one large weight
// coarsen its whole row. Measured on stories260K (tinystories-valid-a, ctx 512, paper convention;
// docs/benchmarks.md), perplexity change against the float head, per block / per row:
// native +0.007% / +0.063%, W4 +0.016% / +0.037%, W4A8 +0.026% / +0.048%. Both fit the 0.1%
// budget there, but that head is only 64 wide (2 blocks per row); a 2048-wide head has 64 blocks
// per row for one outlier to spoil, so the row scale's cost should grow with the width while the
// block scale's does not (not measured: the data holds no real wide head). f16 scales (not f32 as
// W4Matrix keeps) save another 0.5 bit per weight.
//
// Q8Matrix packs rows into the layout the kernels stream (see q8_layout.h): 16 rows interleaved so
// that one 64-byte load feeds one AVX-512 VNNI instruction per 4 input columns.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace awq::kernels {

enum class Q8RowType { F32, F16, BF16 };

// The packed bytes are immutable once packed, so copies share them.
class Q8Matrix {
 public:
  // Quantizes [out, in] rows of `type` at `rows` (row-major, 2-byte alignment is enough for f16 /
  // bf16). `name` (a tensor name) goes into the error messages: in not a multiple of 32, a
  // non-finite weight, a block whose scale does not fit in f16.
  static Q8Matrix pack(const void* rows, Q8RowType type, int64_t out, int64_t in,
                       const std::string& name);

  int64_t out() const { return out_; }
  int64_t in() const { return in_; }
  int64_t blocks() const { return in_ / 32; }                     // per row
  size_t bytes() const { return size_t(tiles_ * tile_stride_); }  // what one full pass streams
  const uint8_t* data() const { return data_; }
  int64_t tiles() const { return tiles_; }
  int64_t tile_stride() const { return tile_stride_; }

  int8_t code(int64_t o, int64_t i) const;
  float scale(int64_t o, int64_t block) const;  // the stored f16 scale, as f32
  // Row o as f32: code * scale, exactly.
  void dequantize_row(int64_t o, float* dst) const;

 private:
  int64_t out_ = 0, in_ = 0, tiles_ = 0, tile_stride_ = 0;
  std::shared_ptr<uint8_t> storage_;  // 64-byte aligned
  const uint8_t* data_ = nullptr;
};

// y[n, out] = x[n, in] · W^T (+ bias), with x quantized on the fly to int8 per block of 32 exactly
// as gemm_w4a8 does (symmetric, d = max|x| / 127, round half to even), integer dot products per
// block (exact), then y = sum over blocks b of d_w[o][b] * (d_x[b] * dot_b) in block order, the
// same float operations on every ISA: results are bit-identical across ISAs and thread counts.
void gemm_q8a8(const float* x, int64_t n, const Q8Matrix& w, const float* bias, float* y);

}  // namespace awq::kernels
