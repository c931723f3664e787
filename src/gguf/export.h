// awq export-gguf: a Hugging Face model directory -> one GGUF file that llama.cpp runs.
//   - AWQ checkpoints (AutoAWQ GEMM, ours or AutoAWQ's): 4-bit linears become Q4_1 (asymmetric)
//     or Q4_0 (symmetric) with the quantizer's integer codes carried over unchanged: a group of g
//     weights is g/32 ggml blocks sharing d = s and m = -z*s (only m's f16 rounding is lossy).
//   - full-precision or fake-quant directories: F16 or F32, the input llama.cpp's own
//     llama-quantize starts from (so its K-quants can build on AWQ-scaled weights).
// Every family awq.cpp runs maps to the llama.cpp architecture of its converter (llama_layout.h):
// llama (also Mistral; llama3 RoPE as the rope_freqs table), qwen2, qwen3 (q/k norms), gemma,
// gemma2, gemma3 (norms stored as 1 + w, post-norms, soft-caps, sliding window), phi3 (fused
// attn_qkv and gate|up ffn_up, longrope factors, partial rotary), and the sparse MoE families:
// mixtral (llama with experts), qwen2_moe (qwen2moe: shared expert and its sigmoid gate),
// qwen3_moe (qwen3moe), each layer's experts stacked into blk.N.ffn_{gate,up,down}_exps
// [E, out, in] in expert order (AWQ experts as Q4 with their codes, like any linear) and the
// router blk.N.ffn_gate_inp kept F32. What an architecture cannot
// express (a RoPE type, an attention scale, untied Gemma output) is an error naming the config
// key; what llama.cpp hard-codes differently (Gemma-3's local base and pattern) is a warning.
// Q and K rows are permuted for llama.cpp's adjacent-pair RoPE (architecture "llama"), norms and
// biases are F32, the tokenizer goes in as tokenizer.ggml.* metadata. Tensors are produced one at
// a time while the file is written, so memory stays about one tensor.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace awq::gguf {

struct ExportOptions {
  std::string model_dir;
  std::string out_path;
  std::string type = "auto";  // auto | q4_1 | q4_0 | f16 | f32
  std::string
      embeddings;        // token_embd and output: f32 | f16 | q8_0 ("" = f16, f32 with --type f32)
  std::string name;      // general.name; default: the directory's name
  bool progress = true;  // progress bar on a terminal
};

struct ExportReport {
  std::string arch;         // general.architecture
  std::string linear_type;  // Q4_1, Q4_0, F16 or F32
  std::string embedding_type;
  int64_t tensors = 0;
  int64_t quantized_linears = 0;  // checkpoint linears written from integer codes (each expert
  int64_t float_linears = 0;      // of a stacked tensor counts)
  size_t file_bytes = 0;
  double seconds = 0;
  // Q4_1 only: the largest |f16(m) - m| over all blocks, in units of the block's step d (the only
  // difference between the file and the AWQ checkpoint's weights).
  double max_min_rounding_steps = 0;
  std::string tokenizer_model, tokenizer_pre;
  std::vector<std::string> warnings;
};

// Validates everything it can before writing (model type, group size, tokenizer), then writes
// `out_path` atomically. Errors are awq::Error naming the directory, tensor or option.
ExportReport export_gguf(const ExportOptions& opts);

}  // namespace awq::gguf
