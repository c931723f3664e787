#include "awq/act_store.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>

#include "base/error.h"
#include "base/half.h"
#include "base/thread_pool.h"
#include "kernels/kernel_table.h"

namespace awq {

ActDtype parse_act_dtype(const std::string& s) {
  for (ActDtype d : {ActDtype::F32, ActDtype::Bf16, ActDtype::F16})
    if (s == act_dtype_name(d)) return d;
  fail("--act-dtype {}: expected f32, bf16 or f16", s);
}

const char* act_dtype_name(ActDtype d) {
  switch (d) {
    case ActDtype::F32:
      return "f32";
    case ActDtype::Bf16:
      return "bf16";
    case ActDtype::F16:
      return "f16";
  }
  return "?";
}

namespace {
// Elements per conversion task: large enough that a task's overhead is noise, small enough that
// both threads of a 2-core machine get many.
constexpr int64_t kConvertChunk = int64_t(1) << 16;
}  // namespace

void ActMat::put(Mat&& m, const std::string& what) {
  rows_ = m.rows;
  cols_ = m.cols;
  if (dtype_ == ActDtype::F32) {
    f32_ = std::move(m);
    return;
  }
  half_.resize(size_t(m.size()));
  std::atomic<bool> overflow{false};
  const float* src = m.data.data();
  uint16_t* dst = half_.data();
  const bool bf16 = dtype_ == ActDtype::Bf16;
  parallel_for(m.size(), kConvertChunk, [&](int64_t i0, int64_t i1) {
    if (bf16) {
      for (int64_t i = i0; i < i1; ++i) dst[i] = f32_to_bf16(src[i]);
      return;
    }
    bool over = false;
    for (int64_t i = i0; i < i1; ++i) {
      dst[i] = f32_to_f16(src[i]);
      // An f16 infinity (exponent all ones, no mantissa) from a finite value: out of range.
      over |= (dst[i] & 0x7fff) == 0x7c00 && std::abs(src[i]) <= std::numeric_limits<float>::max();
    }
    if (over) overflow.store(true, std::memory_order_relaxed);
  });
  m = Mat();
  if (overflow.load()) {
    *this = ActMat(dtype_);
    fail("{}: an activation exceeds f16's range (65504); use --act-dtype bf16 or f32", what);
  }
}

Mat ActMat::take() {
  Mat m;
  if (dtype_ == ActDtype::F32) {
    m = std::move(f32_);
  } else {
    m.resize_for_overwrite(rows_, cols_);
    const kernels::detail::KernelTable& k = kernels::detail::active_table();
    const auto convert = dtype_ == ActDtype::Bf16 ? k.bf16_to_f32 : k.f16_to_f32;
    const uint16_t* src = half_.data();
    float* dst = m.data.data();
    parallel_for(m.size(), kConvertChunk,
                 [&](int64_t i0, int64_t i1) { convert(src + i0, dst + i0, i1 - i0); });
    half_ = std::vector<uint16_t>();  // release, not just clear
  }
  f32_ = Mat();
  rows_ = cols_ = 0;
  return m;
}

void ActMat::begin(int64_t rows, int64_t cols) {
  rows_ = rows;
  cols_ = cols;
  if (dtype_ == ActDtype::F32) {
    f32_.resize_for_overwrite(rows, cols);
  } else {
    half_ = std::vector<uint16_t>(size_t(rows * cols));
  }
}

void ActMat::put_rows(int64_t r0, const Mat& m, const std::string& what) {
  AWQ_CHECK(m.cols == cols_ && r0 >= 0 && r0 + m.rows <= rows_,
            "{}: rows [{}, {}) of width {} into [{} x {}]", what, r0, r0 + m.rows, m.cols, rows_,
            cols_);
  const int64_t off = r0 * cols_;
  if (dtype_ == ActDtype::F32) {
    std::copy(m.data.begin(), m.data.end(), f32_.data.begin() + off);
    return;
  }
  std::atomic<bool> overflow{false};
  const float* src = m.data.data();
  uint16_t* dst = half_.data() + off;
  const bool bf16 = dtype_ == ActDtype::Bf16;
  parallel_for(m.size(), kConvertChunk, [&](int64_t i0, int64_t i1) {
    bool over = false;
    for (int64_t i = i0; i < i1; ++i) {
      dst[i] = bf16 ? f32_to_bf16(src[i]) : f32_to_f16(src[i]);
      over |= !bf16 && (dst[i] & 0x7fff) == 0x7c00 &&
              std::abs(src[i]) <= std::numeric_limits<float>::max();
    }
    if (over) overflow.store(true, std::memory_order_relaxed);
  });
  if (overflow.load()) {
    *this = ActMat(dtype_);
    fail("{}: an activation exceeds f16's range (65504); use --act-dtype bf16 or f32", what);
  }
}

void ActMat::read_rows(int64_t r0, int64_t n, float* dst) const {
  AWQ_CHECK(r0 >= 0 && n >= 0 && r0 + n <= rows_, "activation rows [{}, {}) of {}", r0, r0 + n,
            rows_);
  const int64_t off = r0 * cols_, count = n * cols_;
  if (dtype_ == ActDtype::F32) {
    std::copy(f32_.data.data() + off, f32_.data.data() + off + count, dst);
    return;
  }
  const kernels::detail::KernelTable& k = kernels::detail::active_table();
  const auto convert = dtype_ == ActDtype::Bf16 ? k.bf16_to_f32 : k.f16_to_f32;
  const uint16_t* src = half_.data() + off;
  parallel_for(count, kConvertChunk,
               [&](int64_t i0, int64_t i1) { convert(src + i0, dst + i0, i1 - i0); });
}

RowSource ActMat::rows_source() const {
  RowSource s;
  s.rows = rows_;
  s.cols = cols_;
  s.read = [this](int64_t r0, int64_t n, float* dst) { read_rows(r0, n, dst); };
  return s;
}

void ActMat::divide_columns(const std::vector<float>& s, const std::string& what) {
  AWQ_CHECK(int64_t(s.size()) == cols_, "{}: {} scales for {} columns", what, s.size(), cols_);
  if (dtype_ == ActDtype::F32) {
    parallel_for(rows_, 64, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        float* p = f32_.row(r);
        for (int64_t j = 0; j < cols_; ++j) p[j] /= s[size_t(j)];
      }
    });
    return;
  }
  std::atomic<bool> overflow{false};
  const bool bf16 = dtype_ == ActDtype::Bf16;
  parallel_for(rows_, 16, [&](int64_t r0, int64_t r1) {
    bool over = false;
    for (int64_t r = r0; r < r1; ++r) {
      uint16_t* h = half_.data() + r * cols_;
      for (int64_t j = 0; j < cols_; ++j) {
        const float x = (bf16 ? bf16_to_f32(h[j]) : f16_to_f32(h[j])) / s[size_t(j)];
        h[j] = bf16 ? f32_to_bf16(x) : f32_to_f16(x);
        over |=
            !bf16 && (h[j] & 0x7fff) == 0x7c00 && std::abs(x) <= std::numeric_limits<float>::max();
      }
    }
    if (over) overflow.store(true, std::memory_order_relaxed);
  });
  if (overflow.load())
    fail("{}: an activation exceeds f16's range (65504); use --act-dtype bf16 or f32", what);
}

}  // namespace awq
