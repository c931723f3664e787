#include "quant/clip_search.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/error.h"
#include "base/thread_pool.h"
#include "quant/group_kernels.h"

namespace awq {
namespace {

// Index of the first NaN or infinity in p[0, n), or -1. The block test vectorizes; the exact
// position is looked for only in a bad block.
int64_t first_nonfinite(const float* p, int64_t n) {
  constexpr int64_t kBlock = 4096;
  for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
    const int64_t i1 = std::min(n, i0 + kBlock);
    uint32_t bad = 0;
    for (int64_t i = i0; i < i1; ++i) {
      uint32_t b;
      std::memcpy(&b, p + i, 4);
      bad |= uint32_t((b & 0x7f800000u) == 0x7f800000u);
    }
    if (bad) {
      for (int64_t i = i0; i < i1; ++i) {
        if (!std::isfinite(p[i])) return i;
      }
    }
  }
  return -1;
}

// Factors the Gram matrix G (upper triangle of s, g x g, destroyed) as U^T U with U upper
// triangular, written as f32 into u (g x g, zero below the diagonal). G is only semidefinite
// (tokens < group, channels that never fire, repeated channels): a pivot below 1e-12 of its own
// diagonal means the column is, to double precision, a combination of earlier ones; its row of U
// is left zero, which drops a direction whose contribution is that small.
void cholesky_upper(double* s, int g, float* u) {
  std::vector<double> diag(static_cast<size_t>(g)), row(static_cast<size_t>(g));
  for (int i = 0; i < g; ++i) diag[size_t(i)] = s[size_t(i) * g + i];
  std::fill(u, u + size_t(g) * g, 0.0f);
  for (int i = 0; i < g; ++i) {
    double* si = s + size_t(i) * g;
    const double piv = si[i];
    if (!(piv > 1e-12 * diag[size_t(i)])) continue;
    const double r = std::sqrt(piv);
    for (int j = i; j < g; ++j) {
      row[size_t(j)] = si[j] / r;
      u[size_t(i) * g + j] = float(row[size_t(j)]);
    }
    for (int a = i + 1; a < g; ++a) {  // Schur complement: S[a][b] -= U[i][a] U[i][b], b >= a
      const double ua = row[size_t(a)];
      if (ua == 0.0) continue;
      double* sa = s + size_t(a) * g;
      for (int b = a; b < g; ++b) sa[b] -= ua * row[size_t(b)];
    }
  }
}

}  // namespace

ClipInputs prepare_clip_inputs(const float* x, int64_t t, int64_t in, const QuantSpec& spec,
                               const std::string& tensor) {
  spec.validate(in, tensor);
  AWQ_CHECK(t >= 0, "tensor '{}': clip search on {} tokens", tensor, t);
  if (const int64_t i = first_nonfinite(x, t * in); i >= 0)
    fail("tensor '{}': calibration input at (token {}, channel {}) is {}", tensor, i / in, i % in,
         x[i]);
  ClipInputs c;
  c.in = in;
  c.t = t;
  c.group = spec.group_for(in);
  const int g = c.group;
  const int64_t ng = in / g;
  c.triangular = clip_inputs_factored(t, in, spec);
  if (!c.triangular) {
    c.x = x;
    return c;
  }
  const qk::KernelTable& kern = qk::kernels();
  c.u.resize(size_t(ng) * g * g);
  if (ng >= 4 * int64_t(num_threads())) {  // enough groups to share out evenly
    parallel_for(ng, 1, [&](int64_t k0, int64_t k1) {
      std::vector<double> scratch(kern.gram_scratch_doubles(t, g)), gm(size_t(g) * g);
      for (int64_t k = k0; k < k1; ++k) {
        kern.gram(x + k * g, t, in, g, scratch.data(), gm.data());
        cholesky_upper(gm.data(), g, c.u.data() + size_t(k) * g * g);
      }
    });
    return c;
  }
  // Few groups (stories260K: one to three of 64 channels): each group's chunks of tokens in
  // parallel, a window of chunks at a time (the window's chunk sums held at once: <= ~16 MiB), the
  // chunk sums then added in chunk order: the bits of one call over all the tokens.
  const int64_t chunks = (t + qk::kGramChunkTokens - 1) / qk::kGramChunkTokens;
  const int64_t gg = int64_t(g) * g;
  const int64_t window = std::clamp<int64_t>((int64_t(16) << 20) / (gg * 8), 1, 64);
  std::vector<double> part(static_cast<size_t>(std::min(window, chunks) * gg));
  std::vector<double> gm(static_cast<size_t>(gg));
  for (int64_t k = 0; k < ng; ++k) {
    std::fill(gm.begin(), gm.end(), 0.0);
    for (int64_t w0 = 0; w0 < chunks; w0 += window) {
      const int64_t w1 = std::min(chunks, w0 + window);
      parallel_for(w1 - w0, 1, [&](int64_t i0, int64_t i1) {
        std::vector<double> scratch(kern.gram_scratch_doubles(qk::kGramChunkTokens, g));
        for (int64_t i = i0; i < i1; ++i) {
          const int64_t r0 = (w0 + i) * qk::kGramChunkTokens;
          kern.gram(x + r0 * in + k * g, std::min(qk::kGramChunkTokens, t - r0), in, g,
                    scratch.data(), part.data() + i * gg);
        }
      });
      for (int64_t i = 0; i < w1 - w0; ++i)
        for (int64_t e = 0; e < gg; ++e) gm[size_t(e)] += part[size_t(i * gg + e)];
    }
    cholesky_upper(gm.data(), g, c.u.data() + size_t(k) * g * g);
  }
  return c;
}

bool clip_inputs_factored(int64_t t, int64_t in, const QuantSpec& spec) {
  const int g = spec.group_for(in);
  return t > 0 && int64_t(g) < 2 * t && g <= kClipMaxFactoredGroup;
}

ClipInputs prepare_clip_inputs(const RowSource& x, const QuantSpec& spec, const std::string& tensor,
                               int64_t read_bytes) {
  const int64_t t = x.rows, in = x.cols;
  spec.validate(in, tensor);
  AWQ_CHECK(clip_inputs_factored(t, in, spec),
            "tensor '{}': {} tokens of width {} need the clip objective's unfactored form", tensor,
            t, in);
  ClipInputs c;
  c.in = in;
  c.t = t;
  c.group = spec.group_for(in);
  c.triangular = true;
  const int g = c.group;
  const int64_t ng = in / g, gg = int64_t(g) * g;
  const qk::KernelTable& kern = qk::kernels();
  std::vector<double> gm(size_t(ng * gg), 0.0);
  // Whole Gram chunks per read.
  const int64_t chunk = qk::kGramChunkTokens;
  const int64_t per = std::max<int64_t>(1, read_bytes / (4 * in * chunk)) * chunk;
  Mat buf;
  for (int64_t r0 = 0; r0 < t; r0 += per) {
    const int64_t n = std::min(per, t - r0);
    x.read_into(r0, n, buf);
    if (const int64_t i = first_nonfinite(buf.data.data(), n * in); i >= 0)
      fail("tensor '{}': calibration input at (token {}, channel {}) is {}", tensor, r0 + i / in,
           i % in, buf.data[size_t(i)]);
    parallel_for(ng, 1, [&](int64_t k0, int64_t k1) {
      std::vector<double> scratch(kern.gram_scratch_doubles(chunk, g));
      std::vector<double> part(static_cast<size_t>(gg));
      for (int64_t k = k0; k < k1; ++k) {
        double* gk = gm.data() + k * gg;
        for (int64_t q0 = 0; q0 < n; q0 += chunk) {
          kern.gram(buf.data.data() + q0 * in + k * g, std::min(chunk, n - q0), in, g,
                    scratch.data(), part.data());
          for (int64_t e = 0; e < gg; ++e) gk[e] += part[size_t(e)];
        }
      }
    });
  }
  c.u.resize(size_t(ng * gg));
  parallel_for(ng, 1, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k)
      cholesky_upper(gm.data() + k * gg, g, c.u.data() + size_t(k * gg));
  });
  return c;
}

ClipInputs ClipInputs::scaled(const std::vector<float>& s) const {
  AWQ_CHECK(int64_t(s.size()) == in, "clip inputs: {} scales for {} channels", s.size(), in);
  ClipInputs c;
  c.in = in;
  c.t = t;
  c.group = group;
  c.triangular = triangular;
  if (triangular) {
    // Column j of group k's factor belongs to channel k * group + j.
    c.u = u;
    const int64_t g = group, ng = in / g;
    for (int64_t k = 0; k < ng; ++k) {
      float* uk = c.u.data() + size_t(k * g * g);
      for (int64_t i = 0; i < g; ++i)
        for (int64_t j = i; j < g; ++j) uk[i * g + j] /= s[size_t(k * g + j)];
    }
    return c;
  }
  c.x_own.assign(x, x + t * in);
  for (int64_t r = 0; r < t; ++r)
    for (int64_t j = 0; j < in; ++j) c.x_own[size_t(r * in + j)] /= s[size_t(j)];
  c.x = c.x_own.data();
  return c;
}

float clip_shrink(int index, int n_grid) {
  return float(1.0 - double(index) / n_grid);
}

int clip_steps(const ClipOptions& opts) {
  return std::max(1, int(opts.max_shrink * float(opts.n_grid)));
}

bool clip_asymmetric(const ClipOptions& opts, const QuantSpec& spec) {
  return opts.asymmetric && spec.zero_point;
}

ClipChoice search_clip(const float* w, int64_t out, int64_t in, const ClipInputs& inputs,
                       const QuantSpec& spec, const ClipOptions& opts, const std::string& tensor) {
  spec.validate(in, tensor);
  AWQ_CHECK(out >= 0, "tensor '{}': clip search on {} rows", tensor, out);
  AWQ_CHECK(inputs.in == in && inputs.group == spec.group_for(in),
            "tensor '{}': clip inputs are for width {} in groups of {}, the weight is [{}, {}] in "
            "groups of {}",
            tensor, inputs.in, inputs.group, out, in, spec.group_for(in));
  AWQ_CHECK(
      opts.n_grid >= 1 && opts.n_grid <= 36 && opts.max_shrink >= 0.0f && opts.max_shrink <= 1.0f,
      "tensor '{}': clip search needs n_grid in [1, 36] and max_shrink in [0, 1], got {} "
      "and {}",
      tensor, opts.n_grid, opts.max_shrink);
  if (const int64_t i = first_nonfinite(w, out * in); i >= 0)
    fail("tensor '{}': weight at (row {}, col {}) is {}", tensor, i / in, i % in, w[i]);

  const int g = inputs.group;
  const int64_t ng = in / g;
  // Candidates as the reference: range(int(max_shrink * n_grid)); none tried means m0 is kept.
  // Asymmetric: every (lower, upper) pair, index lower * steps + upper, so index 0 clips nothing.
  const int steps = clip_steps(opts);
  const bool asym = clip_asymmetric(opts, spec);
  const int n_cand = asym ? steps * steps : steps;
  std::vector<float> hi(static_cast<size_t>(n_cand)), lo;
  if (asym) lo.resize(size_t(n_cand));
  for (int c = 0; c < n_cand; ++c) {
    hi[size_t(c)] = clip_shrink(c % steps, opts.n_grid);
    if (asym) lo[size_t(c)] = clip_shrink(c / steps, opts.n_grid);
  }

  const qk::KernelTable& kern = qk::kernels();
  qk::ClipJob job;
  job.w = w;
  job.out = out;
  job.in = in;
  job.group = g;
  job.bits = spec.bits;
  job.zero_point = spec.zero_point;
  job.f16_scale = spec.f16_scales;
  job.n_cand = n_cand;
  job.shrink = hi.data();
  job.lo_shrink = asym ? lo.data() : nullptr;
  job.triangular = inputs.triangular;
  std::vector<const float*> a(size_t(ng), nullptr);
  if (inputs.triangular) {
    for (int64_t k = 0; k < ng; ++k) a[size_t(k)] = inputs.u.data() + size_t(k) * g * g;
    job.a_rows = g;
    job.a_stride = g;
  } else {
    for (int64_t k = 0; k < ng && inputs.t > 0; ++k) a[size_t(k)] = inputs.x + k * g;
    job.a_rows = inputs.t;
    job.a_stride = in;
  }
  job.a = a.data();

  std::vector<int32_t> best(static_cast<size_t>(out * ng));
  const int64_t lanes = kern.lanes, n_batches = (out + lanes - 1) / lanes;
  parallel_for(n_batches, 1, [&](int64_t b0, int64_t b1) {
    std::vector<float> scratch(kern.clip_scratch_floats(job));
    for (int64_t b = b0; b < b1; ++b) kern.clip_batch(job, b * lanes, scratch.data(), best.data());
  });
  ClipChoice choice;
  choice.hi.resize(best.size());
  if (asym) choice.lo.resize(best.size());
  for (size_t i = 0; i < best.size(); ++i) {
    choice.hi[i] = uint8_t(best[i] % steps);
    if (asym) choice.lo[i] = uint8_t(best[i] / steps);
  }
  return choice;
}

ClipChoice search_clip(const float* w, int64_t out, int64_t in, const float* x, int64_t t,
                       const QuantSpec& spec, const ClipOptions& opts, const std::string& tensor) {
  return search_clip(w, out, in, prepare_clip_inputs(x, t, in, spec, tensor), spec, opts, tensor);
}

void apply_clip(float* w, int64_t out, int64_t in, const ClipChoice& choice, int group, int n_grid,
                const std::string& tensor) {
  const int64_t g = group == -1 ? in : group;
  AWQ_CHECK(g > 0 && in % g == 0, "{}: clip group {} does not divide the width {}", tensor, group,
            in);
  const int64_t ng = in / g;
  AWQ_CHECK(int64_t(choice.hi.size()) == out * ng &&
                (choice.lo.empty() || choice.lo.size() == choice.hi.size()),
            "{}: {} clip choices ({} lower) for a [{}, {}] weight in groups of {} (expected {})",
            tensor, choice.hi.size(), choice.lo.size(), out, in, g, out * ng);
  AWQ_CHECK(n_grid >= 1, "{}: clip grid {}", tensor, n_grid);
  const bool asym = !choice.lo.empty();
  for (size_t i = 0; i < choice.hi.size(); ++i)
    AWQ_CHECK(choice.hi[i] < n_grid && (!asym || choice.lo[i] < n_grid),
              "{}: clip index at (row {}, group {}) is not below the grid's {}", tensor,
              int64_t(i) / ng, int64_t(i) % ng, n_grid);
  parallel_for(out, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t k = 0; k < ng; ++k) {
        const size_t i = size_t(r * ng + k);
        float* p = w + r * in + k * g;
        float mn = p[0], mx = p[0];
        for (int64_t j = 1; j < g; ++j) {
          mn = std::min(mn, p[j]);
          mx = std::max(mx, p[j]);
        }
        const qk::ClipBounds b =
            qk::clip_bounds(mn, mx, asym ? clip_shrink(choice.lo[i], n_grid) : -1.0f,
                            clip_shrink(choice.hi[i], n_grid));
        for (int64_t j = 0; j < g; ++j) p[j] = std::min(std::max(p[j], b.lo), b.hi);
      }
    }
  });
}

}  // namespace awq
