// A tiny random Llama written as a Hugging Face directory (config.json + model.safetensors), for
// the pipeline's tests: small enough to quantize in milliseconds, with a few activation-outlier
// channels (large norm gains) so that AWQ's scales have something to find.
#pragma once
#include <cstdint>
#include <string>

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

// n_blocks × T random tokens in [0, vocab).
CalibBlocks random_calib(int64_t n_blocks, int64_t T, int64_t vocab, uint64_t seed);

}  // namespace awq::test
