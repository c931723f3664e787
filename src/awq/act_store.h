// Activations the quantize pipeline holds for a while — the block input carried from one block
// to the next and the captured inputs of a block's linears — kept in f32 or rounded to 16 bits
// (--act-dtype). At llama-3.1-70b's shape and 128 x 512 calibration tokens the captured inputs
// alone are 17 GiB in f32 (down_proj's [65536 x 28672] is 7 GiB): half of that decides whether
// a block fits in 24 GB. The arithmetic stays f32: a matrix is converted back when a step reads
// it (take) and rounded again when it is kept (put), which is exact for values that came from
// 16 bits.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "base/mat.h"
#include "base/row_source.h"

namespace awq {

// bf16 keeps f32's range (Gemma's activations pass f16's 65504); f16 has 3 more mantissa bits.
enum class ActDtype { F32, Bf16, F16 };

// "f32" / "bf16" / "f16"; anything else is an awq::Error naming --act-dtype.
ActDtype parse_act_dtype(const std::string& s);
const char* act_dtype_name(ActDtype d);

class ActMat {
 public:
  ActMat() = default;
  explicit ActMat(ActDtype d) : dtype_(d) {}

  // Keeps m: moved as it is in f32, else rounded to nearest even in 16 bits (m is released). A
  // finite value that overflows f16 is an awq::Error naming `what`.
  void put(Mat&& m, const std::string& what);
  // The f32 form, handed out (this is empty afterwards): moved in f32, converted otherwise.
  Mat take();
  // Filled a chunk of rows at a time (no whole f32 copy): begin sizes it (contents unspecified),
  // put_rows stores rows.rows rows from r0 as put would. An f16 overflow names `what`.
  void begin(int64_t rows, int64_t cols);
  void put_rows(int64_t r0, const Mat& rows, const std::string& what);
  // Rows [r0, r0 + n) in f32 into dst ([n, cols]), the matrix staying as it is.
  void read_rows(int64_t r0, int64_t n, float* dst) const;
  // A RowSource over this matrix (which must outlive it and stay unchanged while it is read).
  RowSource rows_source() const;
  // Divides column j by s[j] in place, a chunk of rows at a time (no whole f32 copy): in 16 bits
  // each value is converted, divided and rounded again, exactly as take / divide / put. An f16
  // overflow is an awq::Error naming `what`.
  void divide_columns(const std::vector<float>& s, const std::string& what);

  bool empty() const { return rows_ == 0 && cols_ == 0; }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  ActDtype dtype() const { return dtype_; }
  size_t bytes() const { return f32_.data.size() * 4 + half_.size() * 2; }

 private:
  ActDtype dtype_ = ActDtype::F32;
  int64_t rows_ = 0, cols_ = 0;
  Mat f32_;                     // dtype_ == F32
  std::vector<uint16_t> half_;  // otherwise
};

}  // namespace awq
