#include "awq/gptq_block.h"

#include <map>

#include "awq/block_search.h"
#include "awq/gram_loss.h"
#include "base/interrupt.h"

namespace awq {

std::vector<QuantizedMatrix> gptq_block(const Architecture& arch, int64_t layer,
                                        const BlockWeights& w, const BlockCapture& cap,
                                        const QuantSpec& spec, const GptqOptions& opts,
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
                              arch.stored_linear_name(layer, r), &st));
    GptqLinearResult res;
    res.role = r;
    res.rtn_loss = st.rtn_loss;
    res.loss = st.loss;
    res.damp = st.damp;
    res.dead = st.dead;
    stats.push_back(res);
  }
  return q;
}

}  // namespace awq
