#include "quant/awq_gemm_pack.h"

#include <cmath>

#include "base/error.h"
#include "base/half.h"
#include "base/thread_pool.h"

namespace awq {
namespace {

// Packs v[col * stride] for the 8 columns 8j..8j+7 into one AutoAWQ word.
int32_t pack8(const uint8_t* v, int64_t stride) {
  uint32_t word = 0;
  for (int i = 0; i < 8; ++i) word |= uint32_t(v[kAwqOrder[i] * stride] & 0xF) << (4 * i);
  return int32_t(word);
}

void unpack8(int32_t word, uint8_t* v, int64_t stride) {
  for (int i = 0; i < 8; ++i) v[kAwqOrder[i] * stride] = uint8_t((uint32_t(word) >> (4 * i)) & 0xF);
}

}  // namespace

AwqGemmTensors pack_awq_gemm(const QuantizedMatrix& q, const std::string& tensor) {
  AWQ_CHECK(q.spec.bits == 4, "tensor '{}': the AutoAWQ GEMM format holds 4-bit codes, not {}-bit",
            tensor, q.spec.bits);
  AWQ_CHECK(q.out % 8 == 0,
            "tensor '{}': the AutoAWQ GEMM format packs 8 output channels per int32; {} output "
            "channels is not a multiple of 8",
            tensor, q.out);
  AWQ_CHECK(q.group > 0 && q.in % q.group == 0 && q.codes.size() == size_t(q.out * q.in) &&
                q.scales.size() == size_t(q.out * q.n_groups()) &&
                q.zeros.size() == q.scales.size(),
            "tensor '{}': inconsistent quantized matrix [{}, {}] with group {}", tensor, q.out,
            q.in, q.group);
  const int64_t K = q.in, N = q.out, G = q.group, ng = K / G, nw = N / 8;
  AwqGemmTensors t;
  t.K = K;
  t.N = N;
  t.group = int(G);
  t.qweight.resize(size_t(K * nw));
  t.qzeros.resize(size_t(ng * nw));
  t.scales_f16.resize(size_t(ng * N));
  // W is [N, K] row-major; word (k, j) gathers column k of rows 8j..8j+7.
  parallel_for(nw, 16, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) {
      const uint8_t* rows = q.codes.data() + 8 * j * K;
      for (int64_t k = 0; k < K; ++k) t.qweight[size_t(k * nw + j)] = pack8(rows + k, K);
      const uint8_t* zrows = q.zeros.data() + 8 * j * ng;
      for (int64_t g = 0; g < ng; ++g) t.qzeros[size_t(g * nw + j)] = pack8(zrows + g, ng);
    }
  });
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t g = 0; g < ng; ++g) {
      const float s = q.scales[size_t(n * ng + g)];
      const uint16_t h = f32_to_f16(s);
      AWQ_CHECK(f16_to_f32(h) == s,
                "tensor '{}': scale {} at (row {}, group {}) is not an f16 value", tensor, s, n, g);
      t.scales_f16[size_t(g * N + n)] = h;
    }
  }
  return t;
}

QuantizedMatrix unpack_awq_gemm(const AwqGemmTensors& t, bool zero_point,
                                const std::string& tensor) {
  const int64_t K = t.K, N = t.N, G = t.group;
  AWQ_CHECK(K > 0 && N > 0 && N % 8 == 0 && G > 0 && K % G == 0,
            "tensor '{}': AutoAWQ GEMM tensors need in_features K > 0 divisible by the group size "
            "and out_features N divisible by 8; got K={}, N={}, group={}",
            tensor, K, N, G);
  const int64_t ng = K / G, nw = N / 8;
  AWQ_CHECK(t.qweight.size() == size_t(K * nw), "tensor '{}.qweight': {} values, expected [{}, {}]",
            tensor, t.qweight.size(), K, nw);
  AWQ_CHECK(t.qzeros.size() == size_t(ng * nw), "tensor '{}.qzeros': {} values, expected [{}, {}]",
            tensor, t.qzeros.size(), ng, nw);
  AWQ_CHECK(t.scales_f16.size() == size_t(ng * N),
            "tensor '{}.scales': {} values, expected [{}, {}]", tensor, t.scales_f16.size(), ng, N);
  QuantizedMatrix q;
  q.out = N;
  q.in = K;
  q.spec.bits = 4;
  q.spec.group_size = int(G);
  q.spec.zero_point = zero_point;
  q.group = int(G);
  q.codes.resize(size_t(N * K));
  q.zeros.resize(size_t(N * ng));
  q.scales.resize(size_t(N * ng));
  parallel_for(nw, 16, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) {
      uint8_t* rows = q.codes.data() + 8 * j * K;
      for (int64_t k = 0; k < K; ++k) unpack8(t.qweight[size_t(k * nw + j)], rows + k, K);
      uint8_t* zrows = q.zeros.data() + 8 * j * ng;
      for (int64_t g = 0; g < ng; ++g) unpack8(t.qzeros[size_t(g * nw + j)], zrows + g, ng);
    }
  });
  for (int64_t g = 0; g < ng; ++g) {
    for (int64_t n = 0; n < N; ++n) {
      const float s = f16_to_f32(t.scales_f16[size_t(g * N + n)]);
      AWQ_CHECK(std::isfinite(s), "tensor '{}.scales': value at (group {}, column {}) is {}",
                tensor, g, n, s);
      q.scales[size_t(n * ng + g)] = s;
      if (!zero_point) {
        AWQ_CHECK(q.zeros[size_t(n * ng + g)] == 8,
                  "tensor '{}.qzeros': zero point {} at (group {}, column {}) but a symmetric "
                  "(zero_point=false) checkpoint must hold 8",
                  tensor, q.zeros[size_t(n * ng + g)], g, n);
      }
    }
  }
  return q;
}

}  // namespace awq
