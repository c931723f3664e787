#include "kernels/reference.h"

#include <cmath>
#include <vector>

#include "base/half.h"

namespace awq::kernels::ref {
namespace {

template <typename Weight>
void gemm(const float* x, int64_t n, const Weight& weight, int64_t out, int64_t in,
          const float* bias, float* y) {
  std::vector<float> row(static_cast<size_t>(in));
  for (int64_t o = 0; o < out; ++o) {
    weight(o, row.data());
    for (int64_t t = 0; t < n; ++t) {
      double acc = 0.0;
      for (int64_t i = 0; i < in; ++i) acc += double(row[size_t(i)]) * double(x[t * in + i]);
      if (bias) acc += bias[o];
      y[t * out + o] = float(acc);
    }
  }
}

}  // namespace

void gemm_f32(const float* x, int64_t n, const float* w, int64_t out, int64_t in, const float* bias,
              float* y) {
  auto row = [&](int64_t o, float* dst) {
    for (int64_t i = 0; i < in; ++i) dst[i] = w[o * in + i];
  };
  gemm(x, n, row, out, in, bias, y);
}

void gemm_f16(const float* x, int64_t n, const uint16_t* w, int64_t out, int64_t in,
              const float* bias, float* y) {
  auto row = [&](int64_t o, float* dst) {
    for (int64_t i = 0; i < in; ++i) dst[i] = f16_to_f32(w[o * in + i]);
  };
  gemm(x, n, row, out, in, bias, y);
}

void gemm_bf16(const float* x, int64_t n, const uint16_t* w, int64_t out, int64_t in,
               const float* bias, float* y) {
  auto row = [&](int64_t o, float* dst) {
    for (int64_t i = 0; i < in; ++i) dst[i] = bf16_to_f32(w[o * in + i]);
  };
  gemm(x, n, row, out, in, bias, y);
}

void gemm_f32_in_bf16(const float* x, int64_t n, const float* w, int64_t out, int64_t in,
                      const float* bias, float* y) {
  std::vector<float> xr(size_t(n * in));
  for (size_t i = 0; i < xr.size(); ++i) xr[i] = bf16_to_f32(f32_to_bf16(x[i]));
  auto row = [&](int64_t o, float* dst) {
    for (int64_t i = 0; i < in; ++i) dst[i] = bf16_to_f32(f32_to_bf16(w[o * in + i]));
  };
  gemm(xr.data(), n, row, out, in, bias, y);
}

void gemm_w4a16(const float* x, int64_t n, const W4Matrix& w, const float* bias, float* y) {
  auto row = [&](int64_t o, float* dst) { w.dequantize_row(o, dst); };
  gemm(x, n, row, w.out(), w.in(), bias, y);
}

void quantize_row_q8(const float* x, int64_t in, int8_t* q, float* d, int32_t* sums) {
  for (int64_t b = 0; b < in / 32; ++b) {
    float amax = 0.0f;
    for (int64_t k = b * 32; k < (b + 1) * 32; ++k) amax = std::fmax(amax, std::fabs(x[k]));
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    int32_t sum = 0;
    for (int64_t k = b * 32; k < (b + 1) * 32; ++k) {
      q[k] = int8_t(std::nearbyint(x[k] * id));
      sum += q[k];
    }
    d[b] = amax / 127.0f;
    sums[b] = sum;
  }
}

void gemm_w4a8(const float* x, int64_t n, const W4Matrix& w, const float* bias, float* y) {
  const int64_t in = w.in(), blocks = in / 32;
  std::vector<int8_t> q(static_cast<size_t>(n * in));
  std::vector<float> d(static_cast<size_t>(n * blocks));
  std::vector<int32_t> sums(static_cast<size_t>(n * blocks));
  for (int64_t t = 0; t < n; ++t)
    quantize_row_q8(x + t * in, in, &q[size_t(t * in)], &d[size_t(t * blocks)],
                    &sums[size_t(t * blocks)]);
  std::vector<int> wq(static_cast<size_t>(in));  // code - zero of one row
  for (int64_t o = 0; o < w.out(); ++o) {
    for (int64_t k = 0; k < in; ++k) wq[size_t(k)] = int(w.code(o, k)) - w.zero(o, k / w.group());
    for (int64_t t = 0; t < n; ++t) {
      double acc = 0.0;
      for (int64_t b = 0; b < blocks; ++b) {
        int64_t dot = 0;
        for (int64_t k = b * 32; k < (b + 1) * 32; ++k)
          dot += wq[size_t(k)] * q[size_t(t * in + k)];
        acc += double(w.scale(o, b * 32 / w.group())) * double(d[size_t(t * blocks + b)]) *
               double(dot);
      }
      if (bias) acc += bias[o];
      y[t * w.out() + o] = float(acc);
    }
  }
}

void gemm_q8a8(const float* x, int64_t n, const Q8Matrix& w, const float* bias, float* y) {
  const int64_t in = w.in(), blocks = in / 32;
  std::vector<int8_t> q(static_cast<size_t>(in));
  std::vector<float> d(static_cast<size_t>(blocks));
  std::vector<int32_t> sums(static_cast<size_t>(blocks));
  for (int64_t t = 0; t < n; ++t) {
    quantize_row_q8(x + t * in, in, q.data(), d.data(), sums.data());
    for (int64_t o = 0; o < w.out(); ++o) {
      double acc = 0.0;
      for (int64_t b = 0; b < blocks; ++b) {
        int64_t dot = 0;
        for (int64_t k = b * 32; k < (b + 1) * 32; ++k) dot += int64_t(w.code(o, k)) * q[size_t(k)];
        acc += double(w.scale(o, b)) * double(d[size_t(b)]) * double(dot);
      }
      if (bias) acc += bias[o];
      y[t * w.out() + o] = float(acc);
    }
  }
}

}  // namespace awq::kernels::ref
