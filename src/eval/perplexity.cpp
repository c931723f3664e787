#include "eval/perplexity.h"

#include <algorithm>
#include <cmath>

#include "base/error.h"
#include "base/progress.h"
#include "base/sysinfo.h"
#include "base/thread_pool.h"

namespace awq {

PplConvention parse_ppl_convention(const std::string& s) {
  if (s == "paper" || s == "hf") return PplConvention::Paper;
  if (s == "llamacpp" || s == "llama.cpp") return PplConvention::LlamaCpp;
  fail("unknown perplexity convention '{}' (expected paper or llamacpp)", s);
}

const char* ppl_convention_name(PplConvention c) {
  return c == PplConvention::Paper ? "paper" : "llamacpp";
}

std::vector<Window> make_windows(const std::vector<int32_t>& tokens, int64_t ctx,
                                 PplConvention conv, int32_t bos, int64_t max_windows) {
  const int64_t n = int64_t(tokens.size());
  AWQ_CHECK(ctx >= 4, "perplexity: context {} is too small (at least 4)", ctx);
  if (conv == PplConvention::Paper) {
    AWQ_CHECK(
        n >= ctx,
        "perplexity (paper convention): the text has {} tokens, fewer than one window of {}; use a "
        "smaller --ctx or a longer text",
        n, ctx);
  } else {
    AWQ_CHECK(n >= 2 * ctx,
              "perplexity (llama.cpp convention): the text has {} tokens; llama.cpp needs at least "
              "2 x ctx = {}; use a smaller --ctx or a longer text",
              n, 2 * ctx);
  }
  int64_t count = n / ctx;  // a partial tail window is dropped in both conventions
  if (max_windows > 0) count = std::min(count, max_windows);
  std::vector<Window> w(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    Window& win = w[size_t(i)];
    win.tokens.assign(tokens.begin() + i * ctx, tokens.begin() + (i + 1) * ctx);
    if (conv == PplConvention::Paper) {
      win.first = 0;
    } else {
      if (bos >= 0) win.tokens[0] = bos;  // llama.cpp overwrites each chunk's first token
      win.first = ctx / 2;
    }
    win.last = ctx - 2;
  }
  return w;
}

double log_softmax_at(const float* logits, int64_t n, int32_t target) {
  float mx = logits[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, logits[i]);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(double(logits[i]) - double(mx));
  return double(logits[target]) - double(mx) - std::log(sum);
}

namespace {

// log-probabilities of a row (double), and its argmax.
int64_t log_probs(const float* logits, int64_t n, std::vector<double>& lp) {
  lp.resize(size_t(n));
  int64_t arg = 0;
  for (int64_t i = 1; i < n; ++i)
    if (logits[i] > logits[arg]) arg = i;
  const double mx = logits[arg];
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(double(logits[i]) - mx);
  const double lse = mx + std::log(sum);
  for (int64_t i = 0; i < n; ++i) lp[size_t(i)] = double(logits[i]) - lse;
  return arg;
}

struct RowScore {
  double nll = 0, base_nll = 0, kld = 0;
  bool same_top = false;
};

// Hidden states (after the final norm) of the scored rows of a batch of windows: the lm_head then
// runs only on those (half of them in the llama.cpp convention), a chunk of rows at a time.
Mat scored_hidden(const Model& m, const std::vector<int32_t>& flat, int64_t nb, int64_t ctx,
                  int64_t first, int64_t last) {
  const Mat h = m.hidden(flat.data(), nb, ctx);
  const int64_t per = last - first + 1;
  Mat sel(nb * per, h.cols);
  for (int64_t s = 0; s < nb; ++s)
    std::copy(h.row(s * ctx + first), h.row(s * ctx + last + 1), sel.row(s * per));
  return sel;
}

Mat rows_of(const Mat& m, int64_t r0, int64_t r1) {
  Mat out(r1 - r0, m.cols);
  std::copy(m.row(r0), m.row(r1), out.data.begin());
  return out;
}

// Rows of logits scored at once: bounds the logits' memory to kLogitRows x vocab floats (a
// 2048-token window of a 152k-vocabulary model would otherwise need 1.2 GB).
constexpr int64_t kLogitRows = 256;

}  // namespace

PerplexityResult perplexity(const Model& model, const std::vector<int32_t>& tokens, int32_t bos,
                            const PerplexityOptions& opts, const Model* base) {
  const int64_t ctx = opts.ctx, V = model.vocab_size();
  if (base)
    AWQ_CHECK(base->vocab_size() == V,
              "KL divergence: the base model's vocabulary has {} entries, the model's {}",
              base->vocab_size(), V);
  const std::vector<Window> windows =
      make_windows(tokens, ctx, opts.convention, bos, opts.max_windows);
  PerplexityResult r;
  r.convention = opts.convention;
  r.ctx = ctx;
  r.n_tokens = int64_t(tokens.size());
  r.n_windows = int64_t(windows.size());
  const int64_t first = windows[0].first, last = windows[0].last, per = last - first + 1;
  const int64_t batch = std::max<int64_t>(1, opts.batch_tokens / ctx);
  std::vector<RowScore> scores(size_t(r.n_windows * per));
  std::optional<Progress> bar;
  if (opts.progress) bar.emplace("perplexity", r.n_windows);
  Timer timer;
  double flops = 0;
  for (int64_t w0 = 0; w0 < r.n_windows; w0 += batch) {
    const int64_t nb = std::min(batch, r.n_windows - w0);
    std::vector<int32_t> flat;
    flat.reserve(size_t(nb * ctx));
    for (int64_t s = 0; s < nb; ++s)
      flat.insert(flat.end(), windows[size_t(w0 + s)].tokens.begin(),
                  windows[size_t(w0 + s)].tokens.end());
    const Mat hid = scored_hidden(model, flat, nb, ctx, first, last);
    Mat bhid;
    if (base) bhid = scored_hidden(*base, flat, nb, ctx, first, last);
    // lm_head ran on the scored rows only.
    const double unscored = double(nb) * double(ctx - per);
    for (const Model* m : {&model, base}) {
      if (m)
        flops += m->prefill_flops(nb, ctx) -
                 2.0 * double(V) * double(m->config().hidden_size) * unscored;
    }
    for (int64_t r0 = 0; r0 < nb * per; r0 += kLogitRows) {
      const int64_t r1 = std::min(nb * per, r0 + kLogitRows);
      const Mat lg = model.logits(rows_of(hid, r0, r1));
      Mat blg;
      if (base) blg = base->logits(rows_of(bhid, r0, r1));
      parallel_for(r1 - r0, 16, [&](int64_t i0, int64_t i1) {
        std::vector<double> lp, blp;
        for (int64_t i = i0; i < i1; ++i) {
          const int64_t row = r0 + i, s = row / per, pos = first + row % per;
          const int32_t target = flat[size_t(s * ctx + pos + 1)];
          RowScore& rs = scores[size_t(w0 * per + row)];
          if (!base) {
            rs.nll = -log_softmax_at(lg.row(i), V, target);
            continue;
          }
          const int64_t top = log_probs(lg.row(i), V, lp);
          const int64_t btop = log_probs(blg.row(i), V, blp);
          rs.nll = -lp[size_t(target)];
          rs.base_nll = -blp[size_t(target)];
          double kld = 0;
          for (int64_t v = 0; v < V; ++v)
            kld += std::exp(blp[size_t(v)]) * (blp[size_t(v)] - lp[size_t(v)]);
          rs.kld = kld;
          rs.same_top = top == btop;
        }
      });
    }
    if (bar) bar->update(w0 + nb);
  }
  if (bar) bar->finish();
  r.seconds = timer.seconds();
  // Sums in a fixed order: the same result for any thread count.
  double nll = 0, nll2 = 0, bnll = 0, kld = 0, kld2 = 0;
  int64_t same = 0;
  r.token_nll.reserve(scores.size());
  for (const RowScore& s : scores) {
    r.token_nll.push_back(float(s.nll));
    nll += s.nll;
    nll2 += s.nll * s.nll;
    bnll += s.base_nll;
    kld += s.kld;
    kld2 += s.kld * s.kld;
    same += s.same_top ? 1 : 0;
  }
  const double n = double(scores.size());
  r.n_scored = int64_t(scores.size());
  r.nll = nll / n;
  r.ppl = std::exp(r.nll);
  const double var = nll2 / n - r.nll * r.nll;
  r.ppl_err = var > 0 && n > 1 ? std::sqrt(var / (n - 1)) * r.ppl : 0.0;
  r.tokens_per_s = r.seconds > 0 ? double(r.n_windows * ctx) * (base ? 2.0 : 1.0) / r.seconds : 0.0;
  r.prefill_gflops = r.seconds > 0 ? flops / r.seconds * 1e-9 : 0.0;
  if (base) {
    KldStats k;
    k.mean = kld / n;
    const double kvar = kld2 / n - k.mean * k.mean;
    k.std_err = kvar > 0 && n > 1 ? std::sqrt(kvar / (n - 1)) : 0.0;
    k.same_top = double(same) / n;
    k.base_nll = bnll / n;
    k.base_ppl = std::exp(k.base_nll);
    k.delta_ppl = r.ppl - k.base_ppl;
    r.kld = k;
  }
  return r;
}

}  // namespace awq
