// Perplexity in the two conventions people quote, computed exactly as their reference tools do,
// and KL divergence between two models on the same windows.
//
// Paper / Hugging Face (AWQ, GPTQ, AutoAWQ): the whole text is tokenized once (with BOS when the
//   tokenizer adds one), cut into non-overlapping windows of ctx tokens, and every prediction in a
//   window is scored: positions 0..ctx-2 predict 1..ctx-1 (ctx-1 per window). A final partial
//   window is dropped, as AutoAWQ's `n_samples = numel // seqlen` does; a text shorter than one
//   window is an error. PPL = exp(mean NLL).
// llama.cpp (`llama-perplexity`): tokenized once with BOS, non-overlapping chunks of ctx (a
//   partial tail dropped; at least 2·ctx tokens required, as llama.cpp requires); the first token
//   of every chunk is replaced by BOS (when the tokenizer adds BOS); only the second half is
//   scored: positions ctx/2 .. ctx-2 predict ctx/2+1 .. ctx-1 (ctx-1-ctx/2 per chunk: 255 at 512).
//   PPL = exp(mean NLL) ± PPL·sqrt((E[nll²] - E[nll]²)/(n-1)).
// KL divergence (llama.cpp's --kl-divergence): over the same scored positions, KL(base || model)
//   = Σ p_base (log p_base − log p_model), its mean ± standard error, the share of positions where
//   both models' top token agrees, and ΔPPL = PPL(model) − PPL(base). Computed exactly in double
//   (llama.cpp stores the base log-probs quantized to 16 bits; we hold both models' logits).
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "model/model.h"

namespace awq {

enum class PplConvention { Paper, LlamaCpp };
PplConvention parse_ppl_convention(const std::string& s);  // "paper" | "llamacpp"
const char* ppl_convention_name(PplConvention c);

struct Window {
  std::vector<int32_t> tokens;  // ctx tokens as fed to the model (BOS already substituted)
  int64_t first = 0;            // logits at positions first..last predict tokens[first+1..last+1]
  int64_t last = 0;
};

// The windows of a convention, from the whole text's token ids. `bos` < 0: no BOS substitution.
std::vector<Window> make_windows(const std::vector<int32_t>& tokens, int64_t ctx,
                                 PplConvention conv, int32_t bos, int64_t max_windows = -1);

struct PerplexityOptions {
  int64_t ctx = 512;
  PplConvention convention = PplConvention::Paper;
  int64_t max_windows = -1;     // -1: all
  int64_t batch_tokens = 2048;  // windows per forward: max(1, batch_tokens / ctx)
  bool progress = true;         // a bar with ETA on a terminal
};

struct KldStats {
  double mean = 0, std_err = 0;  // KL(base || model), nats, and the standard error of the mean
  double same_top = 0;           // fraction of scored positions with the same argmax
  double base_ppl = 0, base_nll = 0;
  double delta_ppl = 0;  // ppl - base_ppl
};

struct PerplexityResult {
  PplConvention convention = PplConvention::Paper;
  int64_t ctx = 0;
  int64_t n_tokens = 0;  // of the whole text, including BOS
  int64_t n_windows = 0;
  int64_t n_scored = 0;  // predictions scored
  double nll = 0;        // mean negative log-likelihood, nats/token
  double ppl = 0;
  double ppl_err = 0;         // llama.cpp's ± (also computed for the paper convention)
  double seconds = 0;         // model time (forwards and scoring)
  double tokens_per_s = 0;    // window tokens processed per second
  double prefill_gflops = 0;  // achieved, from Model::prefill_flops
  std::optional<KldStats> kld;
  std::vector<float> token_nll;  // per scored prediction, window by window
};

// Log-softmax of one row at `target`, max-subtracted, summed in double.
double log_softmax_at(const float* logits, int64_t n, int32_t target);

// Scores the windows with `model` (and, when `base` is set, KL divergence against it).
PerplexityResult perplexity(const Model& model, const std::vector<int32_t>& tokens, int32_t bos,
                            const PerplexityOptions& opts, const Model* base = nullptr);

}  // namespace awq
