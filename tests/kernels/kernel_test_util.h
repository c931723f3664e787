// Helpers for the kernel tests: random and exactly-representable data, W4 sources, error bounds,
// and a guard that runs a block under each available ISA.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/kernels.h"

namespace awq::kernels::test {

// Unit roundoff of f32 (round to nearest): every f32 operation errs by at most u relative.
inline constexpr double kU = 1.0 / (1 << 24);

// Restores the ISA active before the test, whatever happens inside.
class IsaGuard {
 public:
  IsaGuard() : saved_(active_isa()) {}
  ~IsaGuard() { force_isa(saved_); }

 private:
  Isa saved_;
};

// Owns the arrays a W4Source points into.
struct W4Data {
  int64_t out = 0, in = 0;
  int group = -1;
  std::vector<uint8_t> codes, zeros;
  std::vector<float> scales;
  W4Source source() const { return {out, in, group, codes.data(), scales.data(), zeros.data()}; }
  int64_t g() const { return group == -1 ? in : group; }
  // W[o][i] straight from the source formula, in double.
  double w(int64_t o, int64_t i) const {
    const int64_t j = o * (in / g()) + i / g();
    return (double(codes[size_t(o * in + i)]) - zeros[size_t(j)]) * double(scales[size_t(j)]);
  }
  // |code| + zero, times the scale: what bounds the rounding of the zero-folded w4a16 kernel.
  double wmag(int64_t o, int64_t i) const {
    const int64_t j = o * (in / g()) + i / g();
    return (double(codes[size_t(o * in + i)]) + zeros[size_t(j)]) * std::fabs(scales[size_t(j)]);
  }
};

// exact = true: scales in {1, 2} so that every product and sum stays an exactly representable
// float for the integer activations of exact tests (any summation order gives the same bits).
inline W4Data random_w4(std::mt19937& rng, int64_t out, int64_t in, int group, bool exact) {
  W4Data d;
  d.out = out;
  d.in = in;
  d.group = group;
  const int64_t groups = in / d.g();
  std::uniform_int_distribution<int> code(0, 15);
  d.codes.resize(size_t(out * in));
  for (auto& c : d.codes) c = uint8_t(code(rng));
  d.zeros.resize(size_t(out * groups));
  for (auto& z : d.zeros) z = uint8_t(code(rng));
  d.scales.resize(size_t(out * groups));
  std::uniform_real_distribution<float> s(0.001f, 0.05f);
  for (auto& v : d.scales) v = exact ? float(1 + (rng() & 1)) : s(rng);
  return d;
}

inline std::vector<float> random_floats(std::mt19937& rng, size_t count, float scale = 1.0f) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(count);
  for (auto& x : v) x = dist(rng);
  return v;
}

// Integers in [-lim, lim]; exact in f32, f16 and bf16 for lim <= 256.
inline std::vector<float> random_ints(std::mt19937& rng, size_t count, int lim) {
  std::uniform_int_distribution<int> dist(-lim, lim);
  std::vector<float> v(count);
  for (auto& x : v) x = float(dist(rng));
  return v;
}

// Integer activations in [-127, 127] whose every 32-block holds +-127, so that the int8
// quantization of w4a8 is the identity (d = 1): then w4a8 = w4a16 exactly.
inline std::vector<float> q8_exact_acts(std::mt19937& rng, int64_t n, int64_t in) {
  std::vector<float> x = random_ints(rng, size_t(n * in), 127);
  for (size_t b = 0; b < x.size(); b += 32) x[b + (rng() % 32)] = (rng() & 1) ? 127.0f : -127.0f;
  return x;
}

// Worst-case bound on |computed - exact| for sum_k w_k x_k (+ bias) in f32 with any order of
// summation: gamma_(m) * sum |w_k x_k| with m = terms + a few (Higham, Accuracy and Stability of
// Numerical Algorithms, 3.1), plus the final rounding of the exact value to f32.
inline double dot_error_bound(double abs_sum, int64_t terms, double exact) {
  const double m = double(terms + 4);
  return m * kU / (1 - m * kU) * abs_sum + kU * std::fabs(exact) + 1e-30;
}

}  // namespace awq::kernels::test
