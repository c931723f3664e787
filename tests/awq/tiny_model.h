// A tiny random Llama written as a Hugging Face directory (config.json + model.safetensors), for
// the pipeline's tests: small enough to quantize in milliseconds, with a few activation-outlier
// channels (large norm gains) so that AWQ's scales have something to find.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "awq/calib.h"
#include "formats/dtype.h"

namespace awq::test {

struct TinyModelOptions {
  int64_t hidden = 32, intermediate = 48, layers = 2, heads = 4, kv_heads = 4, vocab = 64;
  DType dtype = DType::F32;
  uint64_t seed = 1;
  bool tie_embeddings = false;
};

void write_tiny_model(const std::string& dir, const TinyModelOptions& o);

// Small configs of every supported family, each with the features that make it different (so that
// tests run every code path): "llama" (llama3 RoPE, GQA), "mistral" (head_dim != hidden/heads,
// sliding window), "qwen3" (q/k norms, explicit head_dim), "gemma" ((1 + w) norms, GeGLU, embedding
// scale, MHA), "gemma2" (four norms, soft-caps, query_pre_attn_scalar, even sliding layers),
// "gemma3_text" ((1 + w) q/k norms, local/global layers and RoPE, linear scaling), "gemma3" (the
// same as Gemma3ForConditionalGeneration: nested text_config, language_model.* names, a vision
// stand-in), "phi3" (fused
// qkv_proj / gate_up_proj, MHA, partial rotary) and "phi3_gqa" (the same with GQA and longrope).
// hidden must be a multiple of 16.
struct FamilyShape {
  int64_t hidden = 64, intermediate = 128, layers = 2,
          vocab = 320;  // vocab >= 258: synth's tokenizer
};
const std::vector<std::string>& family_names();
nlohmann::json family_config(const std::string& family, const FamilyShape& shape);

struct FamilyModelOptions {
  FamilyShape shape;
  DType dtype = DType::F32;
  uint64_t seed = 1;
  float weight_std = 0.1f;
  float norm_noise = 0.2f;  // norm multipliers 1 ± this (and (1 + w) for Gemma): norms matter
  int outlier_channels = 2;
  float outlier_gain = 6.0f;
};
// Writes a synthetic checkpoint of `family` (awq synth --config) to `dir`; returns its config.
void write_family_model(const std::string& dir, const std::string& family,
                        const FamilyModelOptions& o);

// n_blocks × T random tokens in [0, vocab).
CalibBlocks random_calib(int64_t n_blocks, int64_t T, int64_t vocab, uint64_t seed);

}  // namespace awq::test
