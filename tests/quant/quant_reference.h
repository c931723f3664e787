// Test-side reference for the quant layer: the quantizer formula of awq-spec §2 written as plainly
// as possible (scalar, std::nearbyint, one group at a time), random matrices, and the clip
// objective computed directly in double. Independent of the vectorized kernels it checks.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "base/half.h"

namespace awq::test {

struct RefGroup {
  float scale = 0;
  int zero = 0;
  std::vector<int> codes;
};

inline float clampf(float v, float lo, float hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

inline RefGroup ref_quantize_group(const float* w, int n, int bits, bool zero_point) {
  RefGroup r;
  const float mx = *std::max_element(w, w + n), mn = *std::min_element(w, w + n);
  if (zero_point) {
    const int maxq = (1 << bits) - 1;
    r.scale = round_to_f16(std::max(mx - mn, 1e-5f) / float(maxq));
    r.zero = int(clampf(-std::nearbyint(mn / r.scale), 0.0f, float(maxq)));
    for (int i = 0; i < n; ++i)
      r.codes.push_back(
          int(clampf(std::nearbyint(w[i] / r.scale) + float(r.zero), 0, float(maxq))));
  } else {
    const int half = 1 << (bits - 1);
    const float absmax = std::max(std::fabs(mx), std::fabs(mn));
    r.scale = round_to_f16(std::max(absmax, 1e-5f) / float(half - 1));
    r.zero = half;
    for (int i = 0; i < n; ++i)
      r.codes.push_back(int(clampf(std::nearbyint(w[i] / r.scale), float(-half), float(half - 1))) +
                        half);
  }
  return r;
}

inline float ref_dequant(const RefGroup& g, int i) {
  return float(g.codes[size_t(i)] - g.zero) * g.scale;
}

// Weights like a linear layer's: small Gaussian values, a few larger outliers per row.
inline std::vector<float> random_weights(int64_t out, int64_t in, uint32_t seed,
                                         float sigma = 0.02f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, sigma);
  std::uniform_int_distribution<int64_t> col(0, in - 1);
  std::vector<float> w(size_t(out * in));
  for (float& v : w) v = n(rng);
  for (int64_t o = 0; o < out; ++o) w[size_t(o * in + col(rng))] *= 12.0f;
  return w;
}

// Activations with a few hot channels (as LLM inputs have).
inline std::vector<float> random_inputs(int64_t t, int64_t in, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> chan_scale(static_cast<size_t>(in));
  for (auto& c : chan_scale) c = std::exp(n(rng));
  std::vector<float> x(size_t(t * in));
  for (int64_t i = 0; i < t; ++i)
    for (int64_t j = 0; j < in; ++j) x[size_t(i * in + j)] = n(rng) * chan_scale[size_t(j)];
  return x;
}

// The clip objective of one (row, group) for the clamp interval [lo, hi], directly:
// sum_t (x_t . Q(clamp(w, lo, hi)) - x_t . w)^2 over the group's columns, in double.
inline double ref_clip_objective(const float* wg, int g, const float* x, int64_t t, int64_t ld,
                                 float lo, float hi, int bits, bool zero_point) {
  std::vector<float> wc(static_cast<size_t>(g));
  for (int j = 0; j < g; ++j) wc[size_t(j)] = std::min(std::max(wg[j], lo), hi);
  const RefGroup q = ref_quantize_group(wc.data(), g, bits, zero_point);
  double err = 0;
  for (int64_t i = 0; i < t; ++i) {
    double dot = 0;
    for (int j = 0; j < g; ++j)
      dot += double(x[i * ld + j]) * (double(ref_dequant(q, j)) - double(wg[j]));
    err += dot * dot;
  }
  return err;
}

// The same for the symmetric interval [-m, m].
inline double ref_clip_objective(const float* wg, int g, const float* x, int64_t t, int64_t ld,
                                 float m, int bits, bool zero_point) {
  return ref_clip_objective(wg, g, x, t, ld, -m, m, bits, zero_point);
}

inline float shrink_factor(int i, int n_grid) {
  return float(1.0 - double(i) / n_grid);
}

}  // namespace awq::test
