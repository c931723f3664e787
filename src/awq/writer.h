// Writers of the quantized model, fed one block at a time:
//   autoawq:    <prefix>.qweight I32 [K, N/8], .qzeros I32 [K/G, N/8], .scales F16 [K/G, N]
//               (+ .bias) per linear (awq-spec §3.1); config.json with quantization_config; what
//               transformers and vLLM load. A fused checkpoint tensor (Phi-3's qkv_proj rows
//               q|k|v, gate_up_proj rows gate|up) is written back as ONE quantized linear with N =
//               the stacked rows, which is what vLLM's Phi-3 (packed_modules_mapping qkv_proj ->
//               [qkv_proj]) and transformers load.
//   fake-quant: the same model with HF tensor names (.weight), scales and clipping folded in and
//               every linear replaced by its dequantized weight (F16: the values are f16 scales
//               times small integers) — the input other quantizers (llama.cpp's) start from. With
//               no_quantize the folded, clipped weights are written unrounded (AutoAWQ's
//               export_compatible).
// Every unquantized tensor (embeddings, norms, lm_head, biases) is written in the output's float
// dtype (output_float_dtype: the checkpoint's own 16-bit type), norms in the checkpoint's form
// (multiplier − Architecture::norm_offset, so Gemma's folded (1 + w)/s is written as (1 + w)/s −
// 1). Gemma-3 multimodal: the tensors outside the language model (vision tower, projector) are
// copied unchanged and listed in quantization_config.modules_to_not_convert. Both copy the
// tokenizer files, write shards of at most 5 GB with an index (CheckpointWriter),
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
  // `float_dtype` (F16, BF16 or F32) is the dtype of every unquantized tensor.
  ModelWriter(StagedDir& dir, const ModelConfig& cfg, const Architecture& arch, bool autoawq,
              DType float_dtype = DType::F16,
              size_t max_shard_bytes = size_t(5) * 1000 * 1000 * 1000);
  // The embeddings (first in the file, as Hugging Face orders them).
  void add_embeddings(const Checkpoint& ck);
  // Block `layer`: its (folded) norms (all of them: q/k and output norms too) and linears, fused
  // ones stacked back into their stored tensor. `q` holds the 7 quantized linears in role order,
  // or is empty for fake-quant --no-quantize (then w's float weights are written).
  // A sparse layer's feed-forward is written from w.moe: the router (and Qwen2-MoE's shared
  // expert gate) in the float dtype and listed in modules_to_not_convert, every expert's gate, up
  // and down (then the shared expert's) from `qmoe` in that order — 3 per expert — or from w's
  // float weights when qmoe is empty.
  void add_block(int64_t layer, const BlockWeights& w, const std::vector<QuantizedMatrix>& q,
                 const std::vector<QuantizedMatrix>& qmoe = {});
  // Final norm, lm_head (unless tied), config.json, tokenizer files; then the index.
  void finish(const Checkpoint& ck, const std::string& model_dir);
  size_t bytes_written() const { return writer_.total_bytes(); }

 private:
  void copy_tensor(const Checkpoint& ck, const std::string& name);
  void add_norm(const std::string& name, const std::vector<float>& multiplier);
  void add_moe(int64_t layer, const BlockWeights& w, const std::vector<QuantizedMatrix>& qmoe);
  // One unfused linear without bias (an expert's): AutoAWQ tensors from q, or its fake-quant /
  // float weight.
  void add_linear(const std::string& name, const Linear& l, const QuantizedMatrix* q);
  std::vector<std::string> quantized_names_;  // every linear written as qweight/qzeros/scales
  std::vector<std::string> not_converted_;    // modules_to_not_convert entries of the blocks
  StagedDir& dir_;
  ModelConfig cfg_;
  const Architecture& arch_;
  bool autoawq_;
  DType float_dtype_;
  CheckpointWriter writer_;
};

// The dtype of the output's unquantized tensors: the checkpoint's own 16-bit type (that of its
// embeddings), BF16 for an F32 checkpoint whose torch_dtype is bfloat16, else F16. Keeping BF16
// matters for Gemma-2/3, whose activations overflow f16; vLLM's awq_marlin (SM >= 80) runs bf16
// and transformers loads any float dtype (it casts to the dtype the user asks for, f16 by
// default). Pre-Ampere vLLM (plain awq: f16 only) then needs --dtype half.
// The name prefix of the text model's tensors where a checkpoint holds more (Gemma-3 multimodal:
// "language_model."); empty when every tensor is the text model's.
std::string text_model_prefix(const Architecture& arch);
DType output_float_dtype(const Checkpoint& ck, const ModelConfig& cfg, const Architecture& arch);
std::string torch_dtype_name(DType t);   // "float16", "bfloat16", "float32"
float round_to_dtype(float v, DType t);  // v after a round trip through t (F16, BF16 or F32)

// Tokenizer and generation files copied next to the weights (those that exist).
const std::vector<std::string>& tokenizer_file_names();

}  // namespace awq
