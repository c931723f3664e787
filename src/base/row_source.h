// Rows of a [rows, cols] f32 matrix produced on demand, for steps that must not hold the whole
// matrix in f32: a 16-bit kept activation (awq/act_store.h) is converted a chunk of rows at a
// time. At llama-3.1-70b's shape and 128 x 512 calibration tokens down_proj's input is 7 GiB in
// f32 and 3.5 GiB in bf16.
#pragma once
#include <cstdint>
#include <functional>

#include "base/mat.h"

namespace awq {

struct RowSource {
  int64_t rows = 0, cols = 0;
  // Writes rows [r0, r0 + n) to dst ([n, cols], row-major).
  std::function<void(int64_t r0, int64_t n, float* dst)> read;

  void read_into(int64_t r0, int64_t n, Mat& out) const {
    out.resize_for_overwrite(n, cols);
    read(r0, n, out.data.data());
  }
};

}  // namespace awq
