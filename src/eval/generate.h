// Sampling and generation with the KV-cache session. Temperature 0 is greedy argmax (ties go to
// the lowest id); otherwise softmax(logits / T), then nucleus (top-p) truncation, then a draw from
// a seeded generator, so the same seed gives the same text on every machine.
#pragma once
#include <cstdint>
#include <functional>
#include <random>
#include <span>
#include <vector>

#include "model/model.h"

namespace awq {

struct SamplingOptions {
  float temperature = 0.0f;
  float top_p =
      1.0f;  // keep the smallest set of most likely tokens whose probability reaches top_p
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& o);
  int32_t sample(std::span<const float> logits);

 private:
  SamplingOptions o_;
  std::mt19937_64 rng_;
  double uniform();  // [0, 1), 53 random bits, the same on every platform
};

int32_t argmax(std::span<const float> logits);

struct GenerateOptions {
  int64_t max_new_tokens = 256;
  SamplingOptions sampling;
  bool stop_at_eos = true;
  int32_t eos_id = -1;  // the tokenizer's; < 0: never stop early
};

struct GenerateResult {
  std::vector<int32_t>
      tokens;  // generated ids (without the prompt; the EOS that stopped it included)
  double prefill_seconds = 0, decode_seconds = 0;
  int64_t prompt_tokens = 0;
  double decode_tokens_per_s() const;
};

// Feeds the prompt, then samples up to max_new_tokens, calling on_token(id) as each is produced.
// The context is capped by the model's max_position_embeddings and at least prompt + new tokens.
GenerateResult generate(const Model& model, const std::vector<int32_t>& prompt,
                        const GenerateOptions& opts,
                        const std::function<void(int32_t)>& on_token = {});

}  // namespace awq
