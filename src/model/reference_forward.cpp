#include "model/reference_forward.h"

#include <cmath>

#include "base/error.h"

namespace awq {
namespace {

void rmsnorm(float* o, const float* x, const float* weight, int64_t size, float eps) {
  float ss = 0.0f;
  for (int64_t j = 0; j < size; j++) ss += x[j] * x[j];
  ss /= float(size);
  ss += eps;
  ss = 1.0f / std::sqrt(ss);
  for (int64_t j = 0; j < size; j++) o[j] = weight[j] * (ss * x[j]);
}

void softmax(float* x, int64_t size) {
  float max_val = x[0];
  for (int64_t i = 1; i < size; i++)
    if (x[i] > max_val) max_val = x[i];
  float sum = 0.0f;
  for (int64_t i = 0; i < size; i++) {
    x[i] = std::exp(x[i] - max_val);
    sum += x[i];
  }
  for (int64_t i = 0; i < size; i++) x[i] /= sum;
}

// xout[d] = W[d, n] · x[n]
void matmul(float* xout, const float* x, const float* w, int64_t n, int64_t d) {
  for (int64_t i = 0; i < d; i++) {
    float val = 0.0f;
    for (int64_t j = 0; j < n; j++) val += w[i * n + j] * x[j];
    xout[i] = val;
  }
}

}  // namespace

ReferenceForward::ReferenceForward(const Llama2cModel& m, float rope_theta)
    : m_(m), theta_(rope_theta) {
  const int64_t kv_dim = m.kv_dim();
  x.resize(size_t(m.dim));
  xb.resize(size_t(m.dim));
  xb2.resize(size_t(m.dim));
  hb.resize(size_t(m.hidden_dim));
  hb2.resize(size_t(m.hidden_dim));
  q.resize(size_t(m.dim));
  att.resize(size_t(m.n_heads * m.seq_len));
  logits.resize(size_t(m.vocab_size));
  key_cache.resize(size_t(m.n_layers * m.seq_len * kv_dim));
  value_cache.resize(size_t(m.n_layers * m.seq_len * kv_dim));
}

const std::vector<float>& ReferenceForward::step(int32_t token) {
  const Llama2cModel& w = m_;
  const int64_t dim = w.dim, kv_dim = w.kv_dim(), hidden_dim = w.hidden_dim,
                head_size = w.head_size();
  const int64_t kv_mul = w.n_heads / w.n_kv_heads;  // query heads per key/value head
  const int64_t pos = pos_;
  AWQ_CHECK(pos < w.seq_len, "reference forward: position {} is past seq_len {}", pos, w.seq_len);
  AWQ_CHECK(token >= 0 && token < w.vocab_size,
            "reference forward: token {} outside the vocabulary", token);

  // the token's embedding
  for (int64_t i = 0; i < dim; i++) x[size_t(i)] = w.token_embedding[size_t(token * dim + i)];

  for (int64_t l = 0; l < w.n_layers; l++) {
    // attention rmsnorm
    rmsnorm(xb.data(), x.data(), w.rms_att.data() + l * dim, dim, w.norm_eps);

    // q, k, v for this position; k and v go straight into the cache
    const int64_t loff = l * w.seq_len * kv_dim;
    float* k = key_cache.data() + loff + pos * kv_dim;
    float* v = value_cache.data() + loff + pos * kv_dim;
    matmul(q.data(), xb.data(), w.wq.data() + l * dim * dim, dim, dim);
    matmul(k, xb.data(), w.wk.data() + l * dim * kv_dim, dim, kv_dim);
    matmul(v, xb.data(), w.wv.data() + l * dim * kv_dim, dim, kv_dim);

    // RoPE, llama2.c's interleaved form: each adjacent pair (i, i+1) of every head is rotated.
    // The angle is computed in double (the optimized forward does the same), so that the two
    // implementations differ only by f32 rounding of the products that follow.
    for (int64_t i = 0; i < dim; i += 2) {
      const int64_t head_dim = i % head_size;
      const double freq = std::pow(double(theta_), -double(head_dim) / double(head_size));
      const double val = double(pos) * freq;
      const float fcr = float(std::cos(val)), fci = float(std::sin(val));
      const int rotn = i < kv_dim ? 2 : 1;  // rotate q and k, or q only
      for (int r = 0; r < rotn; r++) {
        float* vec = r == 0 ? q.data() : k;
        const float v0 = vec[i], v1 = vec[i + 1];
        vec[i] = v0 * fcr - v1 * fci;
        vec[i + 1] = v0 * fci + v1 * fcr;
      }
    }

    // multi-head attention over positions 0..pos
    for (int64_t h = 0; h < w.n_heads; h++) {
      const float* qh = q.data() + h * head_size;
      float* atth = att.data() + h * w.seq_len;
      for (int64_t t = 0; t <= pos; t++) {
        const float* kt = key_cache.data() + loff + t * kv_dim + (h / kv_mul) * head_size;
        float score = 0.0f;
        for (int64_t i = 0; i < head_size; i++) score += qh[i] * kt[i];
        atth[t] = score / std::sqrt(float(head_size));
      }
      softmax(atth, pos + 1);
      float* xbh = xb.data() + h * head_size;
      for (int64_t i = 0; i < head_size; i++) xbh[i] = 0.0f;
      for (int64_t t = 0; t <= pos; t++) {
        const float* vt = value_cache.data() + loff + t * kv_dim + (h / kv_mul) * head_size;
        for (int64_t i = 0; i < head_size; i++) xbh[i] += atth[t] * vt[i];
      }
    }

    // output projection and residual
    matmul(xb2.data(), xb.data(), w.wo.data() + l * dim * dim, dim, dim);
    for (int64_t i = 0; i < dim; i++) x[size_t(i)] += xb2[size_t(i)];

    // ffn rmsnorm, then w2(silu(w1(x)) * w3(x)) and residual
    rmsnorm(xb.data(), x.data(), w.rms_ffn.data() + l * dim, dim, w.norm_eps);
    matmul(hb.data(), xb.data(), w.w1.data() + l * dim * hidden_dim, dim, hidden_dim);
    matmul(hb2.data(), xb.data(), w.w3.data() + l * dim * hidden_dim, dim, hidden_dim);
    for (int64_t i = 0; i < hidden_dim; i++) {
      float val = hb[size_t(i)];
      val *= 1.0f / (1.0f + std::exp(-val));
      hb[size_t(i)] = val * hb2[size_t(i)];
    }
    matmul(xb.data(), hb.data(), w.w2.data() + l * dim * hidden_dim, hidden_dim, dim);
    for (int64_t i = 0; i < dim; i++) x[size_t(i)] += xb[size_t(i)];
  }

  // final rmsnorm and classifier
  rmsnorm(x.data(), x.data(), w.rms_final.data(), dim, w.norm_eps);
  matmul(logits.data(), x.data(), w.wcls.data(), dim, w.vocab_size);
  ++pos_;
  return logits;
}

}  // namespace awq
