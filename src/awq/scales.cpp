#include "awq/scales.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "base/error.h"
#include "base/thread_pool.h"

namespace awq {

ScaleMode parse_scale_mode(const std::string& s) {
  if (s == "x") return ScaleMode::X;
  if (s == "duo") return ScaleMode::Duo;
  if (s == "both") return ScaleMode::Both;
  fail("--scale-mode {}: expected x, duo or both", s);
}

const char* scale_mode_name(ScaleMode m) {
  switch (m) {
    case ScaleMode::X:
      return "x";
    case ScaleMode::Duo:
      return "duo";
    case ScaleMode::Both:
      return "both";
  }
  return "?";
}

std::string ScaleCandidate::label() const {
  if (identity) return "identity";
  return fmt::format("{} a={:.2f}", duo ? "duo" : "x", alpha);
}

std::vector<ScaleCandidate> scale_grid(ScaleMode mode, int n_grid) {
  std::vector<ScaleCandidate> g;
  // α = i / n_grid computed in f32, as torch does with a float ratio tensor.
  auto alpha = [&](int i) { return float(i) / float(n_grid); };
  if (mode == ScaleMode::X || mode == ScaleMode::Both) {
    for (int i = 0; i < n_grid; ++i) g.push_back({i == 0, false, alpha(i)});
  } else {
    g.push_back({true, false, 0.0f});
  }
  if (mode == ScaleMode::Duo || mode == ScaleMode::Both) {
    for (int i = 0; i < n_grid; ++i) g.push_back({false, true, alpha(i)});
  }
  return g;
}

std::vector<float> mean_abs_columns(const Mat& x) {
  if (x.rows == 0) return std::vector<float>(size_t(x.cols), 0.0f);
  ColumnAbsMean m;
  m.add(x);
  return m.mean();
}

void ColumnAbsMean::add(const Mat& x) {
  if (acc_.empty()) acc_.assign(size_t(x.cols), 0.0);
  AWQ_CHECK(int64_t(acc_.size()) == x.cols, "mean |x|: rows of {} columns after {}", x.cols,
            acc_.size());
  // Each chunk of channels sums the rows in row order: fixed order, independent of threads.
  parallel_for(x.cols, 64, [&](int64_t b, int64_t e) {
    for (int64_t r = 0; r < x.rows; ++r) {
      const float* row = x.row(r);
      for (int64_t j = b; j < e; ++j) acc_[size_t(j)] += std::fabs(row[j]);
    }
  });
  rows_ += x.rows;
}

std::vector<float> ColumnAbsMean::mean() const {
  std::vector<float> out(acc_.size(), 0.0f);
  if (rows_ == 0) return out;
  for (size_t j = 0; j < acc_.size(); ++j) out[j] = float(acc_[j] / double(rows_));
  return out;
}

std::vector<float> weight_mean_normalized(std::span<const Mat* const> ws, int64_t group_size) {
  AWQ_CHECK(!ws.empty(), "weight_mean_normalized: no weights");
  const int64_t in = ws[0]->cols;
  const int64_t g = group_size > 0 ? group_size : in;
  AWQ_CHECK(in % g == 0, "weight_mean_normalized: group size {} does not divide width {}", g, in);
  int64_t rows = 0;
  for (const Mat* w : ws) {
    AWQ_CHECK(w->cols == in, "weight_mean_normalized: widths differ ({} vs {})", w->cols, in);
    rows += w->rows;
  }
  std::vector<float> out(size_t(in), 0.0f);
  parallel_for(in / g, 1, [&](int64_t gb, int64_t ge) {
    std::vector<double> acc(static_cast<size_t>(g));
    for (int64_t grp = gb; grp < ge; ++grp) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (const Mat* w : ws) {
        for (int64_t r = 0; r < w->rows; ++r) {
          const float* p = w->row(r) + grp * g;
          float mx = 0.0f;
          for (int64_t j = 0; j < g; ++j) mx = std::max(mx, std::fabs(p[j]));
          const float denom = mx + 1e-6f;
          for (int64_t j = 0; j < g; ++j) acc[size_t(j)] += std::fabs(p[j]) / denom;
        }
      }
      for (int64_t j = 0; j < g; ++j)
        out[size_t(grp * g + j)] = float(acc[size_t(j)] / double(rows));
    }
  });
  return out;
}

std::vector<float> candidate_scales(std::span<const float> x_mean, std::span<const float> w_mean,
                                    const ScaleCandidate& c) {
  const size_t n = x_mean.size();
  std::vector<float> s(n, 1.0f);
  if (c.identity) return s;
  if (c.duo)
    AWQ_CHECK(w_mean.size() == n, "candidate_scales: w̄ has {} channels, x̄ {}", w_mean.size(), n);
  for (size_t j = 0; j < n; ++j) {
    float v = std::pow(x_mean[j], c.alpha);
    if (c.duo) v = v / (std::pow(w_mean[j], 1.0f - c.alpha) + 1e-4f);
    s[j] = std::isnan(v) ? v : std::max(v, 1e-4f);  // clamp(min) keeps NaN, as torch does
  }
  // s /= sqrt(max·min); NaN anywhere poisons max/min as in torch, and is then replaced by 1.
  float mx = -std::numeric_limits<float>::infinity(), mn = std::numeric_limits<float>::infinity();
  bool nan = false;
  for (float v : s) {
    if (std::isnan(v)) nan = true;
    mx = std::max(mx, v);
    mn = std::min(mn, v);
  }
  const float norm = nan ? std::numeric_limits<float>::quiet_NaN() : std::sqrt(mx * mn);
  for (float& v : s) {
    v = v / norm;
    if (!std::isfinite(v)) v = 1.0f;
  }
  return s;
}

double mean_squared_error(const float* a, const float* b, int64_t n) {
  if (n <= 0) return 0.0;
  constexpr int64_t kChunk = 1 << 14;
  const int64_t n_chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> part(size_t(n_chunks), 0.0);
  parallel_for(n_chunks, 1, [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c) {
      const int64_t e = std::min(n, (c + 1) * kChunk);
      double acc[4] = {0, 0, 0, 0};  // fixed lanes: the same sum for any thread count
      int64_t i = c * kChunk;
      for (; i + 4 <= e; i += 4) {
        for (int k = 0; k < 4; ++k) {
          const double d = double(a[i + k]) - double(b[i + k]);
          acc[k] += d * d;
        }
      }
      for (; i < e; ++i) {
        const double d = double(a[i]) - double(b[i]);
        acc[0] += d * d;
      }
      part[size_t(c)] = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    }
  });
  double sum = 0;
  for (double p : part) sum += p;  // chunk order: independent of the thread count
  return sum / double(n);
}

namespace {

// Scores candidates `which` of `grid` into `losses`, concurrently when asked.
void score(const std::vector<ScaleCandidate>& grid, const std::vector<int64_t>& which,
           std::span<const float> x_mean, std::span<const float> w_mean, const ScaleLoss& loss_of,
           bool parallel, std::vector<double>& losses) {
  auto eval = [&](int64_t k) {
    const int64_t i = which[size_t(k)];
    losses[size_t(i)] = loss_of(candidate_scales(x_mean, w_mean, grid[size_t(i)]));
  };
  const int64_t n = int64_t(which.size());
  if (parallel) {
    parallel_for(n, 1, [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k) eval(k);
    });
  } else {
    for (int64_t k = 0; k < n; ++k) eval(k);
  }
}

// `which` (in grid order) ordered by loss: NaN last, ties by grid order (deterministic).
std::vector<int64_t> rank(const std::vector<double>& losses, std::vector<int64_t> which) {
  auto key = [&](int64_t i) {
    const double l = losses[size_t(i)];
    return std::isfinite(l) ? l : std::numeric_limits<double>::infinity();
  };
  std::stable_sort(which.begin(), which.end(),
                   [&](int64_t a, int64_t b) { return key(a) < key(b); });
  return which;
}

}  // namespace

ScaleSearchResult search_scales_screened(std::span<const float> x_mean,
                                         std::span<const float> w_mean, ScaleMode mode,
                                         const ScaleLoss& loss_of, const ScaleLoss* screen_loss_of,
                                         int n_finalists, bool parallel, const std::string& what,
                                         int n_grid, const SplitLoss* split) {
  const std::vector<ScaleCandidate> grid = scale_grid(mode, n_grid);
  const int64_t n = int64_t(grid.size());
  ScaleSearchResult r;
  r.losses.assign(size_t(n), std::numeric_limits<double>::quiet_NaN());
  std::vector<int64_t> finalists;
  if (screen_loss_of && n_finalists + 1 < n) {
    std::vector<int64_t> all(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) all[size_t(i)] = i;
    r.screen_losses.assign(size_t(n), std::numeric_limits<double>::quiet_NaN());
    score(grid, all, x_mean, w_mean, *screen_loss_of, parallel, r.screen_losses);
    const std::vector<int64_t> order = rank(r.screen_losses, all);
    for (int64_t i = 0; i < n && int64_t(finalists.size()) < n_finalists; ++i)
      if (!grid[size_t(order[size_t(i)])].identity) finalists.push_back(order[size_t(i)]);
    for (int64_t i = 0; i < n; ++i)
      if (grid[size_t(i)].identity) finalists.push_back(i);
    std::sort(finalists.begin(), finalists.end());  // grid order: ties resolve as without screening
  } else {
    for (int64_t i = 0; i < n; ++i) finalists.push_back(i);
  }
  // After screening, the few finalists run one at a time with the parallelism inside each forward
  // (a handful of candidates would leave threads idle, and each holds a full-size working set).
  const bool screened = !r.screen_losses.empty();
  if (screened && split && split->keep + 1 < int64_t(finalists.size())) {
    std::vector<double> first(size_t(n), std::numeric_limits<double>::quiet_NaN());
    std::vector<double> second = first;
    score(grid, finalists, x_mean, w_mean, split->first, false, first);
    const auto by_first = rank(first, finalists);
    std::vector<int64_t> kept;
    for (int64_t i : by_first)
      if (!grid[size_t(i)].identity && int64_t(kept.size()) < split->keep) kept.push_back(i);
    for (int64_t i : finalists)
      if (grid[size_t(i)].identity) kept.push_back(i);
    std::sort(kept.begin(), kept.end());
    score(grid, kept, x_mean, w_mean, split->second, false, second);
    for (int64_t i : kept)
      r.losses[size_t(i)] =
          split->first_weight * first[size_t(i)] + (1.0 - split->first_weight) * second[size_t(i)];
    r.n_full = int64_t(kept.size());
    r.full_evals = double(finalists.size()) * split->first_weight +
                   double(kept.size()) * (1.0 - split->first_weight);
  } else {
    score(grid, finalists, x_mean, w_mean, loss_of, parallel && !screened, r.losses);
    r.n_full = int64_t(finalists.size());
    r.full_evals = double(r.n_full);
  }
  int best = -1;
  double best_loss = std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < grid.size(); ++i) {
    if (grid[i].identity) r.identity_loss = r.losses[i];
    if (std::isfinite(r.losses[i]) && r.losses[i] < best_loss) {
      best_loss = r.losses[i];
      best = int(i);
    }
  }
  AWQ_CHECK(best >= 0,
            "{}: scale search found no candidate with a finite loss (NaN/inf in the "
            "weights or activations?)",
            what);
  r.best = grid[size_t(best)];
  r.loss = best_loss;
  r.scales = candidate_scales(x_mean, w_mean, r.best);
  return r;
}

ScaleSearchResult search_scales(std::span<const float> x_mean, std::span<const float> w_mean,
                                ScaleMode mode, const ScaleLoss& loss_of, bool parallel,
                                const std::string& what) {
  return search_scales_screened(x_mean, w_mean, mode, loss_of, nullptr, 0, parallel, what);
}

}  // namespace awq
