#include "quant/gptq.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "base/error.h"
#include "base/thread_pool.h"
#include "kernels/blas.h"
#include "kernels/linalg.h"
#include "quant/group_kernels.h"

namespace awq {
namespace {

// Rows per task: a function of the shape only (never of the thread count), so every row meets
// the same sequence of operations, BLAS calls included, whichever thread runs it.
constexpr int64_t kRowChunk = 32;

// The code of one weight, as quantize() computes it: clamp(round(w / s) + z, 0, maxq), round half
// to even (the clamp to +-2^20 first cannot change a code).
float code_of(float w, float s, float z, float maxq) {
  const float y = std::clamp(w / s, -1048576.0f, 1048576.0f);
  return std::clamp(std::nearbyint(y) + z, 0.0f, maxq);
}

// The range a group is quantized over: its min and max, or with clip index i of `clip` the clamp
// interval that choice gives on them (the clamped min and max).
struct Range {
  float lo, hi;
};
Range range_of(const double* p, int64_t n, const GptqClip& clip, size_t i) {
  float mn = float(p[0]), mx = float(p[0]);
  for (int64_t j = 1; j < n; ++j) {
    mn = std::min(mn, float(p[j]));
    mx = std::max(mx, float(p[j]));
  }
  if (!clip.choice) return {mn, mx};
  const ClipChoice& c = *clip.choice;
  const qk::ClipBounds b =
      qk::clip_bounds(mn, mx, c.lo.empty() ? -1.0f : clip_shrink(c.lo[i], clip.n_grid),
                      clip_shrink(c.hi[i], clip.n_grid));
  return {std::min(std::max(mn, b.lo), b.hi), std::min(std::max(mx, b.lo), b.hi)};
}

// Scale and zero of the group of values p[0, n) (stride 1), as quantize() takes them from its
// range.
qk::GroupParams params_of(const double* p, int64_t n, const QuantSpec& spec, const GptqClip& clip,
                          size_t i) {
  const Range r = range_of(p, n, clip, i);
  return qk::group_params(r.lo, r.hi, spec.bits, spec.zero_point, spec.f16_scales);
}

}  // namespace

std::vector<int64_t> gptq_order(const std::vector<double>& gram, int64_t in, bool act_order) {
  std::vector<int64_t> perm(static_cast<size_t>(in));
  std::iota(perm.begin(), perm.end(), int64_t(0));
  if (act_order)
    std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) {
      return gram[size_t(a * in + a)] > gram[size_t(b * in + b)];
    });
  return perm;
}

int gptq_block(int block, int group) {
  block = std::max(block, 1);
  if (group <= block) return group * (block / group);
  return group % block == 0 ? block : group;
}

QuantizedMatrix gptq_quantize(const float* w, int64_t out, int64_t in,
                              const std::vector<double>& gram, const QuantSpec& spec,
                              const GptqOptions& opts, const std::string& tensor, GptqStats* stats,
                              const GptqClip& clip) {
  spec.validate(in, tensor);
  AWQ_CHECK(out >= 0, "tensor '{}': GPTQ on {} rows", tensor, out);
  AWQ_CHECK(int64_t(gram.size()) == in * in,
            "tensor '{}': GPTQ needs the [{}, {}] Gram matrix of its inputs, got {} values", tensor,
            in, in, gram.size());
  AWQ_CHECK(opts.damp >= 0 && opts.damp <= 1 && std::isfinite(opts.damp),
            "tensor '{}': --gptq-damp must be in [0, 1], got {}", tensor, opts.damp);
  for (int64_t i = 0; i < out * in; ++i)
    if (!std::isfinite(w[i]))
      fail("tensor '{}': weight at (row {}, col {}) is {}", tensor, i / in, i % in, w[i]);
  for (size_t i = 0; i < gram.size(); ++i)
    if (!std::isfinite(gram[i]))
      fail("tensor '{}': Gram matrix of the calibration inputs at ({}, {}) is {}", tensor,
           int64_t(i) / in, int64_t(i) % in, gram[i]);

  const int g = spec.group_for(in);
  const int64_t ng = in / g;
  const int block = gptq_block(opts.block, g);
  if (clip.choice) {
    const ClipChoice& c = *clip.choice;
    AWQ_CHECK(int64_t(c.hi.size()) == out * ng && (c.lo.empty() || c.lo.size() == c.hi.size()),
              "tensor '{}': {} clip choices for [{}, {}] groups", tensor, c.hi.size(), out, ng);
    for (size_t i = 0; i < c.hi.size(); ++i)
      AWQ_CHECK(c.hi[i] < clip.n_grid && (c.lo.empty() || c.lo[i] < clip.n_grid),
                "tensor '{}': clip index at group {} is not below the grid's {}", tensor, i,
                clip.n_grid);
  }
  const float maxq = float((1 << spec.bits) - 1);

  // H in processing order, dead channels marked; then, in the same array, U with
  // U^T U = (H + damp I)^-1. Memory: the caller's Gram matrix and this one array.
  const std::vector<int64_t> perm = gptq_order(gram, in, opts.act_order);
  std::vector<uint8_t> dead(static_cast<size_t>(in), 0);
  double mean_diag = 0;
  GptqStats st;
  for (int64_t i = 0; i < in; ++i) {
    const double d = gram[size_t(perm[size_t(i)] * in + perm[size_t(i)])];
    if (d == 0.0) {
      dead[size_t(perm[size_t(i)])] = 1;
      ++st.dead;
    }
    mean_diag += d == 0.0 ? 1.0 : d;
  }
  mean_diag = in > 0 ? mean_diag / double(in) : 0.0;
  std::vector<double> u(static_cast<size_t>(in * in));
  st.damp = opts.damp;
  for (int attempt = 0;; ++attempt) {
    for (int64_t i = 0; i < in; ++i) {
      double* ui = u.data() + i * in;
      const double* gi = gram.data() + perm[size_t(i)] * in;
      for (int64_t j = 0; j < in; ++j) ui[j] = gi[perm[size_t(j)]];
      if (ui[i] == 0.0) ui[i] = 1.0;  // a dead channel
      ui[i] += st.damp * mean_diag;
    }
    if (kernels::inverse_cholesky_upper(u, in)) break;
    AWQ_CHECK(attempt < 4 && st.damp < 1.0,
              "tensor '{}': the calibration inputs' Gram matrix is not positive definite even "
              "with damping {} of its mean diagonal (raise --gptq-damp)",
              tensor, st.damp);
    st.damp = st.damp > 0 ? std::min(1.0, st.damp * 10) : 1e-4;
  }

  QuantizedMatrix q;
  q.out = out;
  q.in = in;
  q.spec = spec;
  q.group = g;
  q.codes.resize(size_t(out * in));
  q.scales.resize(size_t(out * ng));
  q.zeros.resize(size_t(out * ng));

  const int64_t n_chunks = (out + kRowChunk - 1) / kRowChunk;
  kernels::detail::blas_single_thread_once();
  parallel_for(n_chunks, 1, [&](int64_t c0, int64_t c1) {
    std::vector<double> wc, err;
    std::vector<qk::GroupParams> gp;
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t r0 = c * kRowChunk, nr = std::min(kRowChunk, out - r0);
      // The chunk's rows in processing order, dead channels zeroed.
      wc.assign(size_t(nr * in), 0.0);
      for (int64_t r = 0; r < nr; ++r)
        for (int64_t i = 0; i < in; ++i) {
          const int64_t col = perm[size_t(i)];
          if (!dead[size_t(col)]) wc[size_t(r * in + i)] = double(w[(r0 + r) * in + col]);
        }
      // Static groups (act_order): every group's parameters from the unmodified weights, in
      // the channels' own order.
      gp.assign(size_t(nr * ng), qk::GroupParams{1.0f, 0.0f});
      if (opts.act_order) {
        std::vector<double> row(static_cast<size_t>(g));
        for (int64_t r = 0; r < nr; ++r)
          for (int64_t k = 0; k < ng; ++k) {
            for (int64_t j = 0; j < g; ++j) {
              const int64_t col = k * g + j;
              row[size_t(j)] = dead[size_t(col)] ? 0.0 : double(w[(r0 + r) * in + col]);
            }
            gp[size_t(r * ng + k)] =
                params_of(row.data(), g, spec, clip, size_t((r0 + r) * ng + k));
          }
      }
      err.assign(size_t(nr * block), 0.0);
      for (int64_t i1 = 0; i1 < in; i1 += block) {
        const int64_t i2 = std::min(in, i1 + block), nb = i2 - i1;
        for (int64_t i = i1; i < i2; ++i) {
          const int64_t col = perm[size_t(i)], k = col / g;
          const double d = u[size_t(i * in + i)];
          const double* ui = u.data() + i * in;
          for (int64_t r = 0; r < nr; ++r) {
            double* wr = wc.data() + r * in;
            qk::GroupParams& p = gp[size_t(r * ng + k)];
            if (!opts.act_order && i % g == 0)
              p = params_of(wr + i, g, spec, clip, size_t((r0 + r) * ng + k));
            AWQ_CHECK(p.scale <= 65504.0f,
                      "tensor '{}': row {} group {}: the scale exceeds the f16 range", tensor,
                      r0 + r, k);
            const float code = code_of(float(wr[i]), p.scale, p.zero, maxq);
            q.codes[size_t((r0 + r) * in + col)] = uint8_t(int(code));
            const double e = (wr[i] - double((code - p.zero) * p.scale)) / d;
            err[size_t(r * block + (i - i1))] = e;
            for (int64_t j = i + 1; j < i2; ++j) wr[j] -= e * ui[j];
          }
        }
        // The rest of every row, once per block: W[:, i2:] -= E · U[i1:i2, i2:].
        if (i2 < in)
          cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(nr), int(in - i2), int(nb),
                      -1.0, err.data(), block, u.data() + i1 * in + i2, int(in), 1.0,
                      wc.data() + i2, int(in));
      }
      for (int64_t r = 0; r < nr; ++r)
        for (int64_t k = 0; k < ng; ++k) {
          const qk::GroupParams& p = gp[size_t(r * ng + k)];
          q.scales[size_t((r0 + r) * ng + k)] = p.scale;
          q.zeros[size_t((r0 + r) * ng + k)] = uint8_t(int(p.zero));
        }
    }
  });

  if (stats) {
    // Output error on the calibration inputs of plain rounding and of GPTQ, on every k-th row.
    const int64_t stride = std::max<int64_t>(1, (out + kGptqLossRows - 1) / kGptqLossRows);
    std::vector<int64_t> rows;
    for (int64_t r = 0; r < out; r += stride) rows.push_back(r);
    st.rows = int64_t(rows.size());
    // D: per sampled row, plain rounding's error (row 2i) and GPTQ's (row 2i + 1); then
    // d G d^T for each row of D, as D·G in fixed chunks of rows (BLAS; the same bits for any
    // thread count) dotted with D.
    const int64_t nd = int64_t(rows.size()) * 2;
    std::vector<double> dm(static_cast<size_t>(nd * in));
    parallel_for(int64_t(rows.size()), 1, [&](int64_t a, int64_t b) {
      for (int64_t ri = a; ri < b; ++ri) {
        const int64_t r = rows[size_t(ri)];
        const float* wr = w + r * in;
        double* d0 = dm.data() + (2 * ri) * in;
        double* d1 = d0 + in;
        for (int64_t k = 0; k < ng; ++k) {
          // Plain rounding of each group over its range, clamped to it.
          const std::vector<double> grp(wr + k * g, wr + (k + 1) * g);
          const Range rg = range_of(grp.data(), g, clip, size_t(r * ng + k));
          const qk::GroupParams p =
              qk::group_params(rg.lo, rg.hi, spec.bits, spec.zero_point, spec.f16_scales);
          for (int64_t j = 0; j < g; ++j) {
            const float v = std::min(std::max(wr[k * g + j], rg.lo), rg.hi);
            const float c = code_of(v, p.scale, p.zero, maxq);
            d0[k * g + j] = double(wr[k * g + j]) - double((c - p.zero) * p.scale);
            d1[k * g + j] = double(wr[k * g + j]) - double(q.dequant(r, k * g + j));
          }
        }
      }
    });
    std::vector<double> part(static_cast<size_t>(nd), 0.0);
    const int64_t n_loss_chunks = (nd + kRowChunk - 1) / kRowChunk;
    parallel_for(n_loss_chunks, 1, [&](int64_t c0, int64_t c1) {
      std::vector<double> pg(static_cast<size_t>(kRowChunk * in));
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t i0 = c * kRowChunk, n = std::min(kRowChunk, nd - i0);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(n), int(in), int(in), 1.0,
                    dm.data() + i0 * in, int(in), gram.data(), int(in), 0.0, pg.data(), int(in));
        for (int64_t i = 0; i < n; ++i) {
          double sum = 0;
          for (int64_t j = 0; j < in; ++j)
            sum += pg[size_t(i * in + j)] * dm[size_t((i0 + i) * in + j)];
          part[size_t(i0 + i)] = sum;
        }
      }
    });
    for (size_t i = 0; i < rows.size(); ++i) {
      st.rtn_loss += part[i * 2];
      st.loss += part[i * 2 + 1];
    }
    if (!rows.empty()) {
      st.rtn_loss /= double(rows.size());
      st.loss /= double(rows.size());
    }
    *stats = st;
  }
  return q;
}

}  // namespace awq
