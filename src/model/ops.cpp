#include "model/ops.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>

#include "base/error.h"

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
  if (&out != &x && (out.rows != x.rows || out.cols != x.cols)) out.resize(x.rows, x.cols);
  for (int64_t r = 0; r < x.rows; ++r) rmsnorm_row(x.row(r), w.data(), x.cols, eps, out.row(r));
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

namespace {

// Turns scores s[0, n) into probabilities in place (max-subtracted, f32 exp, double sum).
void softmax_inplace(float* s, int64_t n) {
  float m = s[0];
  for (int64_t j = 1; j < n; ++j) m = std::max(m, s[j]);
  double sum = 0;
  for (int64_t j = 0; j < n; ++j) {
    s[j] = std::exp(s[j] - m);
    sum += s[j];
  }
  const float inv = float(1.0 / sum);
  for (int64_t j = 0; j < n; ++j) s[j] *= inv;
}

// Queries per call from which transposing K (so that scores vectorize over keys) pays off.
constexpr int64_t kTransposeMinQueries = 4;

}  // namespace

void attend_causal(const float* q, int64_t ldq, int64_t nq, int64_t p0, const float* k,
                   const float* v, int64_t ldkv, int64_t hd, float scale, float* out, int64_t ldo) {
  const int64_t nk = p0 + nq;
  std::vector<float> scores(static_cast<size_t>(nk));
  std::vector<float>
      kt;  // [hd, nk]: K transposed, so each d contributes to a contiguous run of keys
  const bool transposed = nq >= kTransposeMinQueries;
  if (transposed) {
    kt.resize(size_t(hd * nk));
    for (int64_t j = 0; j < nk; ++j)
      for (int64_t d = 0; d < hd; ++d) kt[size_t(d * nk + j)] = k[j * ldkv + d];
  }
  for (int64_t i = 0; i < nq; ++i) {
    const int64_t n = p0 + i + 1;  // keys this query may see
    const float* qi = q + i * ldq;
    float* s = scores.data();
    // Both paths sum q[d]*k[j][d] over d in order 0..hd-1 for every key: identical results.
    if (transposed) {
      std::fill(s, s + n, 0.0f);
      for (int64_t d = 0; d < hd; ++d) {
        const float qd = qi[d];
        const float* row = kt.data() + d * nk;
        for (int64_t j = 0; j < n; ++j) s[j] += qd * row[j];
      }
    } else {
      int64_t j = 0;
      for (; j + 8 <= n; j += 8) {  // 8 keys at a time: 8 independent accumulation chains
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int64_t d = 0; d < hd; ++d)
          for (int jj = 0; jj < 8; ++jj) acc[jj] += qi[d] * k[(j + jj) * ldkv + d];
        std::copy(acc, acc + 8, s + j);
      }
      for (; j < n; ++j) {
        float a = 0;
        for (int64_t d = 0; d < hd; ++d) a += qi[d] * k[j * ldkv + d];
        s[j] = a;
      }
    }
    for (int64_t j = 0; j < n; ++j) s[j] *= scale;
    softmax_inplace(s, n);
    float* o = out + i * ldo;
    std::fill(o, o + hd, 0.0f);
    for (int64_t j = 0; j < n; ++j) {
      const float p = s[j];
      const float* vj = v + j * ldkv;
      for (int64_t d = 0; d < hd; ++d) o[d] += p * vj[d];
    }
  }
}

}  // namespace awq
