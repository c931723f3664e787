// Mat: an owning, row-major f32 matrix. Activations ([tokens, width]) and weights in the f32
// working form ([out, in], as Hugging Face stores them) are both Mats.
#pragma once
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "base/error.h"

namespace awq {

// std::allocator whose value-less construct leaves a float uninitialized: resizing a buffer that is
// about to be overwritten (a matmul's output) then costs no memset. Everything else is as usual.
template <class T>
struct UninitAllocator : std::allocator<T> {
  template <class U>
  struct rebind {
    using other = UninitAllocator<U>;
  };
  UninitAllocator() = default;
  template <class U>
  UninitAllocator(const UninitAllocator<U>& /*unused*/) noexcept {}
  template <class U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;  // default-initialization: no value for trivial types
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

using FloatBuffer = std::vector<float, UninitAllocator<float>>;

struct Mat {
  int64_t rows = 0;
  int64_t cols = 0;
  FloatBuffer data;

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
  // As resize, but the contents are unspecified: for outputs every element of which is written.
  void resize_for_overwrite(int64_t r, int64_t c) {
    rows = r;
    cols = c;
    data.resize(size_t(r * c));
  }
};

}  // namespace awq
