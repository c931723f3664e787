// Model: a whole Llama-family model for evaluation and generation. Weights are read through the
// checkpoint's mmap; embeddings are converted per token, straight from the mapping.
//   forward():  batched prefill of n_seq windows of T tokens (causal, positions from 0) -> logits.
//   Session:    KV-cache decoding; feed() appends tokens and returns the last position's logits.
// Both run the same block code (model/block.h).
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/mat.h"
#include "formats/checkpoint.h"
#include "model/architecture.h"
#include "model/block.h"
#include "model/config.h"

namespace awq {

// "f32", "native", "w4", "w4a8" -> options; anything else is an awq::Error listing those.
LoadOptions parse_weight_form(const std::string& s);
std::string weight_form_name(const LoadOptions& o);
// As parse_weight_form, plus "auto": LoadOptions::fastest() (W4A8) for an AWQ checkpoint
// (config.json has a quantization_config), Native otherwise.
LoadOptions weight_form_for(const std::string& model_dir, const std::string& s);

// Rows of the embedding table `table` ([vocab, hidden], any float dtype) for n token ids,
// converted to f32 and multiplied by the model's embedding scale (Gemma: sqrt(hidden) rounded to
// its dtype): the model's input, for Model::embed and the AWQ calibration alike. An id outside
// the vocabulary is an error naming `what` (the model directory, or "calibration").
void embed_rows(const TensorInfo& table, const ModelConfig& cfg, const int32_t* tokens, int64_t n,
                Mat& x, const std::string& what);

class Model {
 public:
  static Model load(const std::string& dir, const LoadOptions& opts);
  // The run-time default: weight_form_for(dir, "auto").
  static Model load(const std::string& dir);
  // A model from parts already in memory (tests, tools): the checkpoint still provides embeddings,
  // the final norm and the lm_head (opts: only its lm_head_q8 is read here).
  static Model from_blocks(std::shared_ptr<const Checkpoint> ck, ModelConfig cfg,
                           std::vector<BlockWeights> blocks, const LoadOptions& opts = {});

  const ModelConfig& config() const { return cfg_; }
  const Architecture& arch() const { return *arch_; }
  const std::string& dir() const { return dir_; }
  int64_t vocab_size() const { return cfg_.vocab_size; }
  int64_t n_layers() const { return cfg_.num_hidden_layers; }
  const BlockWeights& block(int64_t i) const { return blocks_[size_t(i)]; }
  const Linear& lm_head() const { return lm_head_; }
  // Bytes of weights one decoding step reads (blocks + lm_head): the bandwidth bound's numerator.
  int64_t weight_bytes() const;
  // FLOPs of a prefill of n_seq windows of T tokens (linears, lm_head and attention).
  double prefill_flops(int64_t n_seq, int64_t T) const;

  // Embedding rows of `tokens` -> x [n, hidden]. Token ids are checked against the vocabulary.
  void embed(const int32_t* tokens, int64_t n, Mat& x) const;
  // Final RMSNorm and lm_head: hidden [n, hidden] -> logits [n, vocab].
  Mat logits(const Mat& hidden) const;
  // Hidden states after the last block and the final norm, [n_seq*T, hidden].
  Mat hidden(const int32_t* tokens, int64_t n_seq, int64_t T) const;
  // logits [n_seq*T, vocab] for n_seq windows of T tokens each.
  Mat forward(const int32_t* tokens, int64_t n_seq, int64_t T) const;

  class Session {
   public:
    Session(const Model& m, int64_t capacity);
    // Appends tokens (positions pos()..pos()+n-1) and returns the logits of the last one.
    std::vector<float> feed(std::span<const int32_t> tokens);
    std::vector<float> feed(int32_t token) { return feed(std::span<const int32_t>(&token, 1)); }
    int64_t pos() const { return pos_; }
    int64_t capacity() const { return capacity_; }
    void reset() { pos_ = 0; }
    int64_t cache_bytes() const;

   private:
    const Model* m_;
    int64_t capacity_;
    int64_t pos_ = 0;
    std::vector<KvCache> cache_;  // per block
  };
  Session session(int64_t capacity) const { return Session(*this, capacity); }

 private:
  std::string dir_;
  ModelConfig cfg_;
  const Architecture* arch_ = nullptr;
  std::shared_ptr<const Checkpoint> ck_;
  std::vector<BlockWeights> blocks_;
  const TensorInfo* embed_ = nullptr;
  std::vector<float> final_norm_;
  Linear lm_head_;

  void load_shared(const LoadOptions& opts);
};

}  // namespace awq
