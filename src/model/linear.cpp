#include "model/linear.h"

#include <algorithm>

#include "base/error.h"
#include "kernels/w4.h"
#include "model/matmul.h"

namespace awq {

int64_t Linear::weight_bytes() const {
  if (!w.empty() || w32) return in * out * 4;
  if (w16) return in * out * 2;
  if (w4) return int64_t(w4->bytes());
  return 0;
}

void Linear::forward(const float* x, int64_t n, float* y) const {
  const float* b = bias.empty() ? nullptr : bias.data();
  if (!w.empty()) {
    model_detail::matmul_f32(x, n, w.data.data(), out, in, b, y);
  } else if (w32) {
    model_detail::matmul_f32(x, n, w32, out, in, b, y);
  } else if (w16) {
    model_detail::matmul_half(x, n, w16, w16_type, out, in, b, y);
  } else if (w4) {
    if (w4a8) {
      kernels::gemm_w4a8(x, n, *w4, b, y);
    } else {
      kernels::gemm_w4a16(x, n, *w4, b, y);
    }
  } else {
    fail("Linear [{} x {}]: no weight loaded", out, in);
  }
}

void Linear::forward(const Mat& x, Mat& y) const {
  AWQ_CHECK(x.cols == in, "Linear: input has {} columns, expected {}", x.cols, in);
  if (y.rows != x.rows || y.cols != out) y.resize(x.rows, out);
  forward(x.data.data(), x.rows, y.data.data());
}

Mat Linear::weight_f32() const {
  Mat m(out, in);
  if (!w.empty()) {
    m = w;
  } else if (w32) {
    std::copy(w32, w32 + out * in, m.data.begin());
  } else if (w16) {
    convert_to_f32(w16_type, w16, out * in, m.data.data());
  } else if (w4) {
    for (int64_t o = 0; o < out; ++o) w4->dequantize_row(o, m.row(o));
  } else {
    fail("Linear [{} x {}]: no weight loaded", out, in);
  }
  return m;
}

}  // namespace awq
