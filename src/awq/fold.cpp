#include "awq/fold.h"

#include "base/error.h"
#include "base/thread_pool.h"

namespace awq {

void scale_columns(Mat& w, std::span<const float> s) {
  AWQ_CHECK(int64_t(s.size()) == w.cols, "scale_columns: {} scales for {} columns", s.size(),
            w.cols);
  parallel_for(w.rows, 256, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      float* p = w.row(r);
      for (int64_t j = 0; j < w.cols; ++j) p[j] *= s[size_t(j)];
    }
  });
}

void divide_columns(Mat& x, std::span<const float> s) {
  AWQ_CHECK(int64_t(s.size()) == x.cols, "divide_columns: {} scales for {} columns", s.size(),
            x.cols);
  parallel_for(x.rows, 256, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      float* p = x.row(r);
      for (int64_t j = 0; j < x.cols; ++j) p[j] /= s[size_t(j)];
    }
  });
}

void divide_vector(std::vector<float>& v, std::span<const float> s) {
  AWQ_CHECK(v.size() == s.size(), "divide_vector: {} scales for {} values", s.size(), v.size());
  for (size_t j = 0; j < v.size(); ++j) v[j] /= s[j];
}

void divide_tail_rows(Linear& prev, std::span<const float> s) {
  const int64_t n = int64_t(s.size());
  AWQ_CHECK(n <= prev.w.rows && prev.w.cols == prev.in,
            "divide_tail_rows: {} scales for a linear with {} output rows", n, prev.w.rows);
  const int64_t first = prev.w.rows - n;
  parallel_for(n, 64, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      float* p = prev.w.row(first + i);
      for (int64_t j = 0; j < prev.w.cols; ++j) p[j] /= s[size_t(i)];
    }
  });
  if (!prev.bias.empty())
    for (int64_t i = 0; i < n; ++i) prev.bias[size_t(first + i)] /= s[size_t(i)];
}

}  // namespace awq
