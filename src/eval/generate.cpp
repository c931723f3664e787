#include "eval/generate.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "base/error.h"
#include "base/sysinfo.h"

namespace awq {

int32_t argmax(std::span<const float> logits) {
  size_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[best]) best = i;
  return int32_t(best);
}

Sampler::Sampler(const SamplingOptions& o) : o_(o), rng_(o.seed) {
  AWQ_CHECK(o.temperature >= 0.0f, "sampling: temperature must be >= 0 (got {})", o.temperature);
  AWQ_CHECK(o.top_p > 0.0f && o.top_p <= 1.0f, "sampling: top-p must be in (0, 1] (got {})",
            o.top_p);
}

double Sampler::uniform() {
  return double(rng_() >> 11) * 0x1.0p-53;
}

int32_t Sampler::sample(std::span<const float> logits) {
  if (o_.temperature == 0.0f) return argmax(logits);
  const size_t n = logits.size();
  const double mx = logits[size_t(argmax(logits))];
  std::vector<double> p(n);
  double sum = 0;
  for (size_t i = 0; i < n; ++i)
    sum += (p[i] = std::exp((double(logits[i]) - mx) / double(o_.temperature)));
  for (auto& v : p) v /= sum;
  // Most likely first (ties: lower id first), keep the shortest prefix whose mass reaches top_p.
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return p[size_t(a)] > p[size_t(b)]; });
  size_t keep = n;
  if (o_.top_p < 1.0f) {
    double cum = 0;
    for (size_t i = 0; i < n; ++i) {
      cum += p[size_t(order[i])];
      if (cum >= double(o_.top_p)) {
        keep = i + 1;
        break;
      }
    }
  }
  double mass = 0;
  for (size_t i = 0; i < keep; ++i) mass += p[size_t(order[i])];
  const double u = uniform() * mass;
  double cum = 0;
  for (size_t i = 0; i < keep; ++i) {
    cum += p[size_t(order[i])];
    if (u < cum) return order[i];
  }
  return order[keep - 1];  // rounding: u landed at the very end
}

double GenerateResult::decode_tokens_per_s() const {
  return decode_seconds > 0 ? double(tokens.size()) / decode_seconds : 0.0;
}

GenerateResult generate(const Model& model, const std::vector<int32_t>& prompt,
                        const GenerateOptions& opts, const std::function<void(int32_t)>& on_token) {
  AWQ_CHECK(!prompt.empty(), "generate: the prompt has no tokens");
  const int64_t limit = model.config().max_position_embeddings;
  AWQ_CHECK(int64_t(prompt.size()) < limit,
            "generate: the prompt has {} tokens; the model's context is {}", prompt.size(), limit);
  const int64_t capacity =
      std::min<int64_t>(limit, int64_t(prompt.size()) + std::max<int64_t>(opts.max_new_tokens, 0));
  auto session = model.session(std::max<int64_t>(capacity, int64_t(prompt.size())));
  Sampler sampler(opts.sampling);
  GenerateResult r;
  r.prompt_tokens = int64_t(prompt.size());
  Timer t;
  std::vector<float> logits = session.feed(prompt);
  r.prefill_seconds = t.seconds();
  t.reset();
  for (int64_t i = 0; i < opts.max_new_tokens; ++i) {
    const int32_t next = sampler.sample(logits);
    r.tokens.push_back(next);
    if (on_token) on_token(next);
    if (opts.stop_at_eos && opts.eos_id >= 0 && next == opts.eos_id) break;
    if (session.pos() >= session.capacity()) break;  // the context is full
    logits = session.feed(next);
  }
  r.decode_seconds = t.seconds();
  return r;
}

}  // namespace awq
