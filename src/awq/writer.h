// Writers of the quantized model, fed one block at a time:
//   autoawq:    <prefix>.qweight I32 [K, N/8], .qzeros I32 [K/G, N/8], .scales F16 [K/G, N]
//               (+ .bias F16) per linear (awq-spec §3.1); everything else F16; config.json with
//               quantization_config; what transformers and vLLM load.
//   fake-quant: the same model in F16 with HF tensor names (.weight), scales and clipping folded
//               in and every linear replaced by its dequantized weight — the input other
//               quantizers (llama.cpp's) start from. With no_quantize the folded, clipped
//               weights are written unrounded (AutoAWQ's export_compatible).
// Both copy the tokenizer files, write shards of at most 5 GB with an index (CheckpointWriter),
// and never touch the input directory.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/files.h"
#include "formats/checkpoint.h"
#include "formats/checkpoint_writer.h"
#include "model/block.h"
#include "quant/quantized_matrix.h"

namespace awq {

class ModelWriter {
 public:
  // `cfg` is the output's config (intermediate_size after padding; quant set for autoawq).
  ModelWriter(StagedDir& dir, const ModelConfig& cfg, const Architecture& arch, bool autoawq,
              size_t max_shard_bytes = size_t(5) * 1000 * 1000 * 1000);
  // The embeddings, converted to F16 (first in the file, as Hugging Face orders them).
  void add_embeddings(const Checkpoint& ck);
  // Block `layer`: its (folded) norms and linears. `q` holds the 7 quantized linears in role
  // order, or is empty for fake-quant --no-quantize (then w's float weights are written).
  void add_block(int64_t layer, const BlockWeights& w, const std::vector<QuantizedMatrix>& q);
  // Final norm, lm_head (unless tied), config.json, tokenizer files; then the index.
  void finish(const Checkpoint& ck, const std::string& model_dir);
  size_t bytes_written() const { return writer_.total_bytes(); }

 private:
  void copy_as_f16(const Checkpoint& ck, const std::string& name);
  StagedDir& dir_;
  ModelConfig cfg_;
  const Architecture& arch_;
  bool autoawq_;
  CheckpointWriter writer_;
};

// Tokenizer and generation files copied next to the weights (those that exist).
const std::vector<std::string>& tokenizer_file_names();

}  // namespace awq
