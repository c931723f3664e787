// Mat: an owning, row-major f32 matrix. Activations ([tokens, width]) and weights in the f32
// working form ([out, in], as Hugging Face stores them) are both Mats.
#pragma once
#include <cstdint>
#include <vector>

#include "base/error.h"

namespace awq {

struct Mat {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<float> data;

  Mat() = default;
  Mat(int64_t r, int64_t c) : rows(r), cols(c), data(size_t(r * c), 0.0f) {}

  float* row(int64_t r) { return data.data() + r * cols; }
  const float* row(int64_t r) const { return data.data() + r * cols; }
  float& at(int64_t r, int64_t c) { return data[size_t(r * cols + c)]; }
  float at(int64_t r, int64_t c) const { return data[size_t(r * cols + c)]; }
  int64_t size() const { return rows * cols; }
  bool empty() const { return data.empty(); }
  void resize(int64_t r, int64_t c) {
    rows = r;
    cols = c;
    data.assign(size_t(r * c), 0.0f);
  }
};

}  // namespace awq
