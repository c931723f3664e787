#include "awq/gptq_block.h"

#include <string>

#include "awq/block_search.h"
#include "awq/gram_loss.h"
#include "awq/moe_search.h"
#include "base/interrupt.h"
#include "quant/quantize.h"

namespace awq {
namespace {

// The clip choice of (expert, role) in `clips`, as GPTQ takes it.
GptqClip clip_for(const std::vector<ClipResult>& clips, int expert, LinearRole role, int n_grid) {
  for (const ClipResult& c : clips)
    if (c.role == role && c.expert == expert) return GptqClip{&c.choice, n_grid};
  return {};
}

GptqLinearResult result_of(LinearRole role, int expert, const GptqStats& st) {
  GptqLinearResult r;
  r.role = role;
  r.expert = expert;
  r.rtn_loss = st.rtn_loss;
  r.loss = st.loss;
  r.damp = st.damp;
  r.dead = st.dead;
  return r;
}

}  // namespace

std::vector<QuantizedMatrix> gptq_block(const Architecture& arch, int64_t layer,
                                        const BlockWeights& w, const BlockCapture& cap,
                                        const QuantSpec& spec, const GptqOptions& opts,
                                        const std::vector<ClipResult>& clips, int clip_grid,
                                        std::vector<GptqLinearResult>& stats) {
  std::vector<QuantizedMatrix> q;
  // One Gram matrix at a time (the widest, down_proj's, is intermediate^2 doubles): the roles
  // that share an input are adjacent in kAllLinearRoles, so each is built once.
  const Mat* gram_of = nullptr;
  std::vector<double> gram;
  for (LinearRole r : kAllLinearRoles) {
    throw_if_interrupted();
    const Linear& l = w[r];
    if (l.out == 0) {
      q.emplace_back();
      continue;
    }
    const Mat& x = capture_input(cap, r);
    if (gram_of != &x) {
      gram = input_gram_f64(x);
      gram_of = &x;
    }
    GptqStats st;
    q.push_back(gptq_quantize(l.w.data.data(), l.out, l.in, gram, spec, opts,
                              arch.stored_linear_name(layer, r), &st,
                              clip_for(clips, kNoExpert, r, clip_grid)));
    stats.push_back(result_of(r, kNoExpert, st));
  }
  return q;
}

std::vector<QuantizedMatrix> gptq_experts(const ModelConfig& cfg, const Architecture& arch,
                                          int64_t layer, const BlockWeights& w,
                                          const BlockCapture& cap, const QuantSpec& spec,
                                          const GptqOptions& opts, int64_t min_tokens,
                                          const std::vector<ClipResult>& clips, int clip_grid,
                                          std::vector<GptqLinearResult>& stats) {
  std::vector<QuantizedMatrix> q;
  for (int e : experts_of(w)) {
    ExpertInputs in;
    expert_inputs(cfg, w, cap, e, min_tokens, in);
    std::vector<double> gram_gate_up;
    for (LinearRole r : {LinearRole::Gate, LinearRole::Up, LinearRole::Down}) {
      throw_if_interrupted();
      const Linear& l = moe_linear(w, e, r);
      const Mat& x = r == LinearRole::Down ? *in.down : *in.gate_up;
      const std::string name = e == kSharedExpert ? arch.shared_expert_linear_name(layer, r)
                                                  : arch.expert_linear_name(layer, e, r);
      const GptqClip clip = clip_for(clips, e, r, clip_grid);
      if (x.rows == 0) {  // no clip search either (it skips such experts)
        q.push_back(quantize(l.w.data.data(), l.out, l.in, spec, name));
        continue;
      }
      std::vector<double> down_gram;
      if (r != LinearRole::Down && gram_gate_up.empty()) gram_gate_up = input_gram_f64(x);
      if (r == LinearRole::Down) down_gram = input_gram_f64(x);
      GptqStats st;
      q.push_back(gptq_quantize(l.w.data.data(), l.out, l.in,
                                r == LinearRole::Down ? down_gram : gram_gate_up, spec, opts, name,
                                &st, clip));
      stats.push_back(result_of(r, e, st));
    }
  }
  return q;
}

}  // namespace awq
