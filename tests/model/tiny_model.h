// Test helper: a small random Llama-family model written as a real Hugging Face directory
// (config.json + model.safetensors via CheckpointWriter), and an independent, straightforward
// double-precision forward over the same weights (HF conventions: rotate-half RoPE, repeat_kv GQA,
// SwiGLU, biases where present) to check the optimized forward against.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "formats/dtype.h"

namespace awq::test {

struct TinySpec {
  std::string model_type = "llama";
  int64_t hidden = 32, inter = 48, layers = 2, heads = 4, kv_heads = 2, vocab = 64;
  bool tie = true;
  bool qkv_bias = false;  // writes q/k/v biases (qwen2 always has them)
  DType dtype = DType::F32;
  float theta = 10000.0f, eps = 1e-5f;
  uint32_t seed = 1;
  int64_t head_dim() const { return hidden / heads; }
};

// The weights as the file holds them (already rounded to spec.dtype), by tensor name.
using TinyWeights = std::map<std::string, std::vector<float>>;

TinyWeights write_tiny_model(const std::filesystem::path& dir, const TinySpec& spec);

// logits [T][vocab] of one sequence at positions 0..T-1, in double.
std::vector<std::vector<double>> naive_logits(const TinySpec& spec, const TinyWeights& w,
                                              const std::vector<int32_t>& tokens);

// max |a - b| / max |b| over a row.
double rel_err(const float* a, const std::vector<double>& b);
double rel_err(const float* a, const float* b, int64_t n);

}  // namespace awq::test
