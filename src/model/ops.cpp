#include "model/ops.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>

#include "base/error.h"
#include "base/thread_pool.h"
#include "kernels/isa.h"
#include "model/attention_kernels.h"

namespace awq {

void rmsnorm_row(const float* x, const float* w, int64_t n, float eps, float* out) {
  double ss = 0;  // double: the mean of squares of thousands of values, without drift
  for (int64_t i = 0; i < n; ++i) ss += double(x[i]) * x[i];
  const float inv = float(1.0 / std::sqrt(ss / double(n) + double(eps)));
  for (int64_t i = 0; i < n; ++i) out[i] = w[i] * (x[i] * inv);
}

void rmsnorm(const Mat& x, const std::vector<float>& w, float eps, Mat& out) {
  AWQ_CHECK(int64_t(w.size()) == x.cols, "rmsnorm: weight has {} elements, input has {} columns",
            w.size(), x.cols);
  if (&out != &x && (out.rows != x.rows || out.cols != x.cols))
    out.resize_for_overwrite(x.rows, x.cols);
  // Rows are independent: chunks of them on the pool (the calibration's 48k-row inputs), the
  // same bits for any split.
  parallel_for(x.rows, 256, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) rmsnorm_row(x.row(r), w.data(), x.cols, eps, out.row(r));
  });
}

std::shared_ptr<const RopeTable> rope_table(int64_t head_dim, float theta, int64_t n_pos) {
  static std::mutex mu;
  static std::map<std::pair<int64_t, float>, std::shared_ptr<const RopeTable>> cache;
  std::lock_guard lock(mu);
  auto& slot = cache[{head_dim, theta}];
  if (slot && slot->n_pos >= n_pos) return slot;
  auto t = std::make_shared<RopeTable>();
  t->head_dim = head_dim;
  t->theta = theta;
  t->n_pos = std::max<int64_t>({n_pos, slot ? 2 * slot->n_pos : 0, 64});
  const int64_t half = head_dim / 2;
  t->cos.resize(size_t(t->n_pos * half));
  t->sin.resize(size_t(t->n_pos * half));
  for (int64_t i = 0; i < half; ++i) {
    const double inv_freq = std::pow(double(theta), -double(2 * i) / double(head_dim));
    for (int64_t p = 0; p < t->n_pos; ++p) {
      const double a = double(p) * inv_freq;
      t->cos[size_t(p * half + i)] = float(std::cos(a));
      t->sin[size_t(p * half + i)] = float(std::sin(a));
    }
  }
  slot = t;
  return t;
}

void rope_rotate_half(float* x, int64_t head_dim, const float* cos, const float* sin) {
  const int64_t half = head_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    const float a = x[i], b = x[i + half];
    x[i] = a * cos[i] - b * sin[i];
    x[i + half] = b * cos[i] + a * sin[i];
  }
}

void rope_interleaved(float* x, int64_t head_dim, const float* cos, const float* sin) {
  for (int64_t i = 0; i < head_dim / 2; ++i) {
    const float a = x[2 * i], b = x[2 * i + 1];
    x[2 * i] = a * cos[i] - b * sin[i];
    x[2 * i + 1] = b * cos[i] + a * sin[i];
  }
}

void swiglu(float* gate, const float* up, int64_t n) {
  switch (kernels::active_isa()) {
    case kernels::Isa::Avx512:
      model_detail::avx512::swiglu(gate, up, n);
      break;
    case kernels::Isa::Avx2:
      model_detail::avx2::swiglu(gate, up, n);
      break;
    default:
      model_detail::generic::swiglu(gate, up, n);
      break;
  }
}

void attend_causal(const float* q, int64_t ldq, int64_t nq, int64_t p0, const float* k,
                   const float* v, int64_t ldkv, int64_t hd, float scale, float* out, int64_t ldo) {
  const model_detail::AttnArgs a{q, ldq, nq, p0, k, v, ldkv, hd, scale, out, ldo};
  switch (kernels::active_isa()) {
    case kernels::Isa::Avx512:
      model_detail::avx512::attend(a);
      break;
    case kernels::Isa::Avx2:
      model_detail::avx2::attend(a);
      break;
    default:
      model_detail::generic::attend(a);
      break;
  }
}

}  // namespace awq
