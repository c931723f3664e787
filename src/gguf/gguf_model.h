// Running a GGUF file with awq.cpp's engine: a model of architecture llama (Mixtral when it has
// experts), qwen2, qwen3, gemma, gemma2, gemma3, phi3, qwen2moe or qwen3moe whose tensors are F32,
// F16, Q8_0, Q4_0 or Q4_1, turned into what the model layer runs:
//   - ModelConfig from the <arch>.* keys and RoPE tensors, with what llama.cpp's graph hard-codes
//     for the architecture (Gemma's attention scale, Gemma-3's local base and layer pattern,
//     embeddings × sqrtf(hidden) in f32),
//   - fused tensors (phi3's attn_qkv, gate|up ffn_up) split into the seven linears, norms taken as
//     the multipliers they hold (Gemma: 1 + w),
//   - MoE layers: the router (f32), the stacked ffn_*_exps tensors cut into one linear per
//     expert, the shared expert and its gate; the routing llama.cpp hard-codes per architecture
//     (every layer sparse; top-k renormalized for llama and qwen3moe, not for qwen2moe),
//   - block weights in the requested form: f32 (dequantized exactly as ggml does), or for W4 the
//     4-bit codes themselves (Q4_0 always; Q4_1 when its blocks were written from AWQ codes,
//     i.e. m = f16(-z·d) for an integer z — otherwise that linear falls back to f32),
//   - Q/K rows permuted back from llama.cpp's adjacent-pair order to Hugging Face's rotate-half,
//   - the tokenizer from tokenizer.ggml.* (gguf_vocab.h).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gguf/gguf_file.h"
#include "model/block.h"
#include "model/config.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace awq::gguf {

// True for a regular file whose first four bytes are "GGUF".
bool is_gguf_file(const std::string& path);

// The model's shape and features from the metadata; errors name the file and the key. RoPE:
// rope_freqs (llama3, read back as its parameters, or as per-frequency factors when no llama3
// parameters reproduce it), rope_factors_long/short (phi3 longrope), rope.scaling.type linear;
// other scaling types and other architectures are errors.
ModelConfig config_from_gguf(const GgufFile& f);

// Block `layer` in the form opts asks for (F32: every linear f32; Native: F32/F16 tensors copied
// to f32, quantized ones dequantized; W4: Q4 codes packed for the 4-bit kernels). `notes` (if
// set) receives one line per linear that could not take the asked form.
BlockWeights load_gguf_block(const GgufFile& f, const ModelConfig& cfg, int64_t layer,
                             const LoadOptions& opts, std::vector<std::string>* notes = nullptr);

// A tensor as f32 [rows = product of ne[1..], cols = ne[0]], dequantized as ggml does.
Mat gguf_tensor_f32(const GgufTensor& t);

// Stages the tensors the model layer reads from a Checkpoint (embeddings, final norm, output) in
// a temporary safetensors file, maps it and unlinks it (F16/F32 keep their type, others become
// f32).
std::shared_ptr<Checkpoint> staged_checkpoint(const GgufFile& f, const ModelConfig& cfg,
                                              const Architecture& arch);

struct GgufLoad {
  Model model;
  Tokenizer tokenizer;
  std::vector<std::string> notes;
};
// The whole model and its tokenizer. The embeddings, final norm and output matrix are staged in
// a private temporary safetensors file (the model layer reads those from a Checkpoint), which is
// unlinked as soon as it is mapped.
GgufLoad load_gguf(const std::string& path, const LoadOptions& opts);
Model load_gguf_model(const std::string& path, const LoadOptions& opts);
// Without options: weight_form_for_any(path, "auto").
GgufLoad load_gguf(const std::string& path);
Model load_gguf_model(const std::string& path);
Tokenizer load_gguf_tokenizer(const std::string& path);

// A model from a path that is either a GGUF file or a Hugging Face directory (Model::load).
Model load_any_model(const std::string& path, const LoadOptions& opts);
Model load_any_model(const std::string& path);  // weight_form_for_any(path, "auto")
// The weight form `s` (parse_weight_form's names, or "auto") for a GGUF file or a directory:
// "auto" is LoadOptions::fastest() where the file or checkpoint holds 4-bit linears (GGUF Q4_0 /
// Q4_1, an AWQ checkpoint), Native otherwise.
LoadOptions weight_form_for_any(const std::string& path, const std::string& s);

}  // namespace awq::gguf
