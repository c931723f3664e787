#include "model/moe.h"

#include <algorithm>
#include <cmath>

#include "base/error.h"
#include "base/thread_pool.h"
#include "model/block.h"
#include "model/matmul.h"

namespace awq {
namespace {

// softmax over the E logits in f32 (as F.softmax(dtype=float32)), then the k largest
// probabilities, largest first; ties go to the lower expert index. k is small (2..8) and E at most
// a few hundred, so k passes over the row beat a sort.
void route_row(const float* logits, int64_t E, int64_t k, bool renormalize, float* p,
               uint8_t* taken, int32_t* expert, float* weight) {
  float mx = logits[0];
  for (int64_t e = 1; e < E; ++e) mx = std::max(mx, logits[e]);
  float sum = 0;
  for (int64_t e = 0; e < E; ++e) {
    p[e] = std::exp(logits[e] - mx);
    sum += p[e];
  }
  for (int64_t e = 0; e < E; ++e) {
    p[e] /= sum;
    taken[e] = 0;
  }
  for (int64_t j = 0; j < k; ++j) {
    int64_t best = -1;
    for (int64_t e = 0; e < E; ++e)
      if (!taken[e] && (best < 0 || p[e] > p[best])) best = e;
    expert[j] = int32_t(best);
    weight[j] = p[best];
    taken[best] = 1;
  }
  if (renormalize) {
    float s = 0;
    for (int64_t j = 0; j < k; ++j) s += weight[j];
    for (int64_t j = 0; j < k; ++j) weight[j] /= s;
  }
}

void check_moe(const ModelConfig& c, const MoeWeights& w, const Mat& xn) {
  const int64_t E = int64_t(w.experts.size());
  AWQ_CHECK(E == c.num_experts && w.router.rows == E && w.router.cols == c.hidden_size,
            "moe: router is [{} x {}] with {} experts, the config needs [{} x {}]", w.router.rows,
            w.router.cols, E, c.num_experts, c.hidden_size);
  AWQ_CHECK(c.num_experts_per_tok >= 1 && c.num_experts_per_tok <= E,
            "moe: num_experts_per_tok {} must be between 1 and the {} experts",
            c.num_experts_per_tok, E);
  AWQ_CHECK(xn.cols == c.hidden_size, "moe: input has {} columns, expected {}", xn.cols,
            c.hidden_size);
}

}  // namespace

MoeRouting moe_route(const ModelConfig& c, const MoeWeights& w, const Mat& xn) {
  check_moe(c, w, xn);
  const int64_t n = xn.rows, E = w.router.rows, k = c.num_experts_per_tok;
  MoeRouting r;
  r.k = k;
  r.expert.resize(size_t(n * k));
  r.weight.resize(size_t(n * k));
  if (n == 0) return r;
  Mat logits;
  logits.resize_for_overwrite(n, E);
  model_detail::matmul_f32(xn.data.data(), n, w.router.data.data(), E, c.hidden_size, nullptr,
                           logits.data.data());
  parallel_for(n, 64, [&](int64_t t0, int64_t t1) {
    std::vector<float> p(static_cast<size_t>(E));
    std::vector<uint8_t> taken(static_cast<size_t>(E));
    for (int64_t t = t0; t < t1; ++t)
      route_row(logits.row(t), E, k, c.norm_topk_prob, p.data(), taken.data(),
                &r.expert[size_t(t * k)], &r.weight[size_t(t * k)]);
  });
  return r;
}

void moe_forward(const ModelConfig& c, const MoeWeights& w, const Mat& xn, Mat& out,
                 MoeCapture* cap) {
  AWQ_CHECK(&out != &xn, "moe_forward: out must not be the input");
  const MoeRouting r = moe_route(c, w, xn);
  const int64_t n = xn.rows, H = c.hidden_size, E = int64_t(w.experts.size()), k = r.k;

  // Each expert's tokens, ascending (a token selects an expert at most once).
  std::vector<std::vector<int32_t>> tokens(static_cast<size_t>(E));
  std::vector<std::vector<float>> weights(static_cast<size_t>(E));
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < k; ++j) {
      const auto e = size_t(r.expert[size_t(t * k + j)]);
      tokens[e].push_back(int32_t(t));
      weights[e].push_back(r.weight[size_t(t * k + j)]);
    }
  if (cap) {
    cap->down_in.assign(size_t(E), Mat());
    cap->shared_down_in = Mat();
  }

  out.resize(n, H);  // zeros: the sum starts there, as transformers' does
  Mat xe, ye;
  for (int64_t e = 0; e < E; ++e) {
    const std::vector<int32_t>& te = tokens[size_t(e)];
    if (te.empty()) continue;
    const int64_t ne = int64_t(te.size());
    xe.resize_for_overwrite(ne, H);
    for (int64_t i = 0; i < ne; ++i) std::copy_n(xn.row(te[size_t(i)]), H, xe.row(i));
    const FfnWeights& f = w.experts[size_t(e)];
    ffn_forward(c, f.gate, f.up, f.down, xe, ye, cap ? &cap->down_in[size_t(e)] : nullptr);
    // Experts in ascending order, each adding w · y to its own (distinct) tokens' rows: the
    // per-token order of the sum is fixed, whatever the thread count.
    const std::vector<float>& we = weights[size_t(e)];
    parallel_for(ne, 16, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        float* o = out.row(te[size_t(i)]);
        const float* y = ye.row(i);
        const float g = we[size_t(i)];
        for (int64_t h = 0; h < H; ++h) o[h] += y[h] * g;
      }
    });
  }

  if (w.shared.present()) {
    Mat s;
    ffn_forward(c, w.shared.gate, w.shared.up, w.shared.down, xn, s,
                cap ? &cap->shared_down_in : nullptr);
    const bool gated = !w.shared_gate.empty();
    AWQ_CHECK(!gated || int64_t(w.shared_gate.size()) == H,
              "moe: shared_expert_gate has {} elements, expected hidden {}", w.shared_gate.size(),
              H);
    parallel_for(n, 16, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        float g = 1.0f;
        if (gated) {
          float z = 0;
          const float* x = xn.row(t);
          for (int64_t h = 0; h < H; ++h) z += w.shared_gate[size_t(h)] * x[h];
          g = 1.0f / (1.0f + std::exp(-z));
        }
        float* o = out.row(t);
        const float* y = s.row(t);
        for (int64_t h = 0; h < H; ++h) o[h] += g * y[h];
      }
    });
  }
  if (cap) {
    cap->tokens = std::move(tokens);
    cap->weights = std::move(weights);
  }
}

namespace {

int64_t ffn_bytes(const FfnWeights& f) {
  return f.gate.weight_bytes() + f.up.weight_bytes() + f.down.weight_bytes();
}

double ffn_macs(const FfnWeights& f) {
  double m = 0;
  for (const Linear* l : {&f.gate, &f.up, &f.down}) m += double(l->in) * double(l->out);
  return m;
}

}  // namespace

int64_t moe_active_weight_bytes(const ModelConfig& c, const MoeWeights& w) {
  if (w.empty()) return 0;
  int64_t experts = 0;
  for (const FfnWeights& f : w.experts) experts += ffn_bytes(f);
  return w.router.size() * 4 + int64_t(w.shared_gate.size()) * 4 + ffn_bytes(w.shared) +
         experts / int64_t(w.experts.size()) * c.num_experts_per_tok;
}

double moe_active_macs(const ModelConfig& c, const MoeWeights& w) {
  if (w.empty()) return 0;
  double experts = 0;
  for (const FfnWeights& f : w.experts) experts += ffn_macs(f);
  return double(w.router.size()) + double(w.shared_gate.size()) + ffn_macs(w.shared) +
         experts / double(w.experts.size()) * double(c.num_experts_per_tok);
}

}  // namespace awq
