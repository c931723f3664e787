// llama2.c checkpoints (karpathy/llama2.c): the legacy layout (7 int32 header, f32 tensors) and
// version 1 ("ak42" magic, 256-byte header). Weights stay in llama2.c's conventions: row-major
// [out][in] matrices and its interleaved-pair RoPE (adjacent elements form a rotation pair).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace awq {

struct Llama2cModel {
  int64_t dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, vocab_size = 0,
          seq_len = 0;
  bool shared_classifier = true;
  float norm_eps = 1e-5f;
  std::vector<float> token_embedding;  // [vocab, dim]
  std::vector<float> rms_att;          // [layers, dim]
  std::vector<float> wq, wk, wv,
      wo;                      // [layers, dim, dim], [layers, kv_dim, dim] x2, [layers, dim, dim]
  std::vector<float> rms_ffn;  // [layers, dim]
  std::vector<float> w1, w2,
      w3;  // [layers, hidden, dim], [layers, dim, hidden], [layers, hidden, dim]
  std::vector<float> rms_final;  // [dim]
  std::vector<float> wcls;       // [vocab, dim]; equals token_embedding when shared

  int64_t head_size() const { return dim / n_heads; }
  int64_t kv_dim() const { return n_kv_heads * head_size(); }
};

// Reads and validates (header values, exact file size) a llama2.c checkpoint; errors name the file
// and say which size was expected.
Llama2cModel read_llama2c(const std::string& path);

}  // namespace awq
