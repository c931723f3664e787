#include "awq/gram_loss.h"

#include <algorithm>

#include "base/error.h"
#include "base/thread_pool.h"
#include "kernels/gemm.h"

namespace awq {

namespace {
// Tokens per chunk: a 32-row panel of the transposed chunk (32 x 2048 floats, 256 KiB) stays in L2.
constexpr int64_t kGramTokens = 2048;
}  // namespace

namespace {

// G's sums; rows(t0, n) gives rows [t0, t0 + n) of x [tokens, in] (n <= kGramTokens).
template <class Rows>
std::vector<double> gram_sums(int64_t tokens, int64_t in, Rows rows) {
  std::vector<double> acc(size_t(in * in), 0.0);
  Mat xt, part;
  for (int64_t t0 = 0; t0 < tokens; t0 += kGramTokens) {
    const int64_t n = std::min(kGramTokens, tokens - t0);
    const float* x = rows(t0, n);
    xt.resize_for_overwrite(in, n);  // the chunk transposed: rows are input channels
    parallel_for(in, 16, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c)
        for (int64_t t = 0; t < n; ++t) xt.at(c, t) = x[t * in + c];
    });
    part.resize_for_overwrite(in, in);
    kernels::gemm_f32(xt.data.data(), in, xt.data.data(), in, n, nullptr, part.data.data());
    for (size_t i = 0; i < acc.size(); ++i) acc[i] += double(part.data[i]);
  }
  return acc;
}

InputGram rounded(std::vector<double> acc, int64_t in, int64_t tokens) {
  InputGram r;
  r.in = in;
  r.tokens = tokens;
  r.g.resize(acc.size());
  for (size_t i = 0; i < acc.size(); ++i) r.g[i] = float(acc[i]);
  return r;
}

}  // namespace

std::vector<double> input_gram_f64(const Mat& x) {
  return gram_sums(x.rows, x.cols, [&](int64_t t0, int64_t /*n*/) { return x.row(t0); });
}

InputGram input_gram(const Mat& x) {
  return rounded(input_gram_f64(x), x.cols, x.rows);
}

InputGram input_gram(const RowSource& x) {
  Mat buf;
  return rounded(gram_sums(x.rows, x.cols,
                           [&](int64_t t0, int64_t n) {
                             x.read_into(t0, n, buf);
                             return static_cast<const float*>(buf.data.data());
                           }),
                 x.cols, x.rows);
}

double gram_loss(const InputGram& g, const Mat& d) {
  AWQ_CHECK(d.cols == g.in, "gram_loss: difference has {} columns, the Gram matrix {}", d.cols,
            g.in);
  if (d.rows == 0 || g.tokens == 0) return 0.0;
  Mat p;
  p.resize_for_overwrite(d.rows, d.cols);
  kernels::gemm_f32(d.data.data(), d.rows, g.g.data(), g.in, g.in, nullptr, p.data.data());
  double sum = 0;
  for (int64_t i = 0; i < d.size(); ++i)
    sum += double(p.data[size_t(i)]) * double(d.data[size_t(i)]);
  return sum / (double(g.tokens) * double(d.rows));
}

double gram_search_cost(int64_t tokens, int64_t in, int64_t out, int64_t n_cand) {
  return double(tokens) * double(in) * double(in) +
         double(n_cand) * double(out) * double(in) * double(in);
}

double direct_search_cost(int64_t tokens, int64_t in, int64_t out, double evals) {
  return evals * double(tokens) * double(in) * double(out);
}

}  // namespace awq
