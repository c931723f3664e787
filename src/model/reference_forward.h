// The scalar reference forward: a test oracle written to be read, like llama2.c's run.c. It runs
// on the llama2.c layout (awq::Llama2cModel) with llama2.c's interleaved-pair RoPE, one token at a
// time with a KV cache, no threads, no BLAS. The optimized forward (model/block.h) runs on Hugging
// Face's layout (rotate-half RoPE, q/k rows permuted by the converter): agreement between the two
// checks the conversion and the forward at once.
#pragma once
#include <cstdint>
#include <vector>

#include "formats/llama2c.h"

namespace awq {

class ReferenceForward {
 public:
  explicit ReferenceForward(const Llama2cModel& m, float rope_theta = 10000.0f);
  // Runs `token` at position pos() and returns its logits [vocab]; positions advance by one.
  const std::vector<float>& step(int32_t token);
  int64_t pos() const { return pos_; }

 private:
  const Llama2cModel& m_;
  float theta_;
  int64_t pos_ = 0;
  // Activations of the current token, as in run.c's RunState.
  std::vector<float> x, xb, xb2, hb, hb2, q, att, logits;
  std::vector<float> key_cache, value_cache;  // [layer, seq_len, kv_dim]
};

}  // namespace awq
