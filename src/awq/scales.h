// AWQ's per-channel scale candidates (awq-spec §1.6–§1.9) and the search over them. Everything
// here is pure arithmetic on vectors, so it is tested on hand-made numbers; the pipeline supplies
// the loss of a candidate by running the inspected module.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "base/mat.h"

namespace awq {

// x-only: s = x̄^α (llm-awq, the paper). duo: s = x̄^α / (w̄^(1-α) + 1e-4) (AutoAWQ's default).
// both: the two grids together (40 evaluations), so the result is never worse than either.
enum class ScaleMode { X, Duo, Both };
ScaleMode parse_scale_mode(const std::string& s);  // "x" | "duo" | "both"
const char* scale_mode_name(ScaleMode m);

struct ScaleCandidate {
  bool identity = false;  // s ≡ 1 (what round-to-nearest sees)
  bool duo = false;
  float alpha = 0.0f;
  std::string label() const;  // "identity", "x a=0.45", "duo a=0.30"
};

// The candidates in evaluation order. x: α = i/20, i = 0..19 (α = 0 is the identity); duo: the
// identity, then duo α = i/20, i = 0..19; both: the x grid then the duo grid.
std::vector<ScaleCandidate> scale_grid(ScaleMode mode, int n_grid = 20);

// x̄_j = mean over rows of |x_j| (f32 result, accumulated in double in a fixed order).
std::vector<float> mean_abs_columns(const Mat& x);
// The same statistic of a matrix seen a chunk of rows at a time, in row order: the same sums in
// the same order, so the same bits as mean_abs_columns of the whole.
class ColumnAbsMean {
 public:
  void add(const Mat& rows);
  std::vector<float> mean() const;

 private:
  std::vector<double> acc_;
  int64_t rows_ = 0;
};

// w̄ (duo): the group's weights stacked along the output dim, each run of `group_size` consecutive
// input elements of a row divided by its abs-max (+1e-6), then averaged over all rows. group_size
// -1 means the whole row. All matrices must have the same number of columns.
std::vector<float> weight_mean_normalized(std::span<const Mat* const> ws, int64_t group_size);

// The candidate's scale vector: clamp(formula, 1e-4), divided by sqrt(max·min), nan/inf → 1.
std::vector<float> candidate_scales(std::span<const float> x_mean, std::span<const float> w_mean,
                                    const ScaleCandidate& c);

struct ScaleSearchResult {
  ScaleCandidate best;
  std::vector<float> scales;          // the chosen s
  double loss = 0;                    // its loss
  double identity_loss = 0;           // loss of s ≡ 1 (= round-to-nearest on this group)
  std::vector<double> losses;         // per candidate, in grid order (NaN: screened out)
  std::vector<double> screen_losses;  // per candidate on the screening subset (empty: none)
  int64_t n_full = 0;                 // candidates scored on the full data
  double full_evals = 0;              // evaluations on all the data (halves count one half)
};

using ScaleLoss = std::function<double(const std::vector<float>& s)>;

// The second stage in two halves of the data (successive halving): every finalist is scored on
// the first part, the `keep` best of them (and the identity) also on the second, and only those
// are compared, on the token-weighted mean of their two parts, which is their loss on all the
// data. The first part's 40-odd sequences rank the finalists far more reliably than the
// screening subset ranked the whole grid, and the finalists cost (finalists + keep + 1) / 2
// evaluations on all the data instead of finalists + 1.
struct SplitLoss {
  ScaleLoss first, second;
  double first_weight = 0.5;  // the first part's share of the loss's terms
  int keep = 3;
};

// Two-stage search. Stage 1 scores every candidate with `screen_loss_of` (the loss on a subset of
// the calibration data); stage 2 scores the `n_finalists` best of them, plus the identity, with
// `loss_of` (all the data) and keeps the best of those. The identity is always a finalist, so the
// result is never worse than no scaling on the full loss. Without `screen_loss_of` (or when
// n_finalists covers the grid) every candidate is scored on all the data, as search_scales does.
// `parallel` applies to the candidates scored on all the data only without screening; the
// finalists run one after the other (each loss_of call may then use the thread pool itself).
// With `split` (and screening), the finalists are scored through it instead of loss_of.
ScaleSearchResult search_scales_screened(std::span<const float> x_mean,
                                         std::span<const float> w_mean, ScaleMode mode,
                                         const ScaleLoss& loss_of, const ScaleLoss* screen_loss_of,
                                         int n_finalists, bool parallel, const std::string& what,
                                         int n_grid = 20, const SplitLoss* split = nullptr);

// Evaluates every candidate (loss_of may run candidates concurrently: see `parallel`), keeps the
// first with the strictly smallest finite loss. Throws awq::Error naming `what` if no loss is
// finite. With `parallel`, candidates run on the thread pool (each loss_of call must then be
// self-contained); the result does not depend on the thread count either way.
ScaleSearchResult search_scales(std::span<const float> x_mean, std::span<const float> w_mean,
                                ScaleMode mode,
                                const std::function<double(const std::vector<float>& s)>& loss_of,
                                bool parallel, const std::string& what);

// Mean squared difference of two equally long arrays, accumulated in double over fixed chunks.
double mean_squared_error(const float* a, const float* b, int64_t n);

}  // namespace awq
