// How llama.cpp lays out a Llama-family model: GGUF architecture names, tensor names, and the
// Q/K row permutation between Hugging Face's rotate-half RoPE and llama.cpp's adjacent-pair RoPE.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "base/mat.h"
#include "model/architecture.h"
#include "quant/quantized_matrix.h"

namespace awq::gguf {

// general.architecture for a config.json model_type ("llama" and "mistral" -> "llama", "qwen2"
// -> "qwen2"); awq::Error for others.
std::string gguf_arch_for_model_type(const std::string& model_type);
// The model_type awq.cpp runs a GGUF architecture as; awq::Error naming `file` for others.
std::string model_type_for_gguf_arch(const std::string& arch, const std::string& file);

// llama.cpp's "llama" architecture uses adjacent-pair RoPE (ggml's normal mode), so the converter
// permutes the rows of q and k; "qwen2" runs rotate-half (NeoX mode) and keeps HF's order.
bool gguf_arch_permutes_qk(const std::string& arch);

// "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down".
const char* gguf_linear_name(LinearRole r);
// "blk.<layer>.<what>.<suffix>", e.g. blk.3.attn_q.weight.
std::string gguf_block_tensor(int64_t layer, const std::string& what,
                              const std::string& suffix = "weight");
std::string gguf_linear_tensor(int64_t layer, LinearRole r, const std::string& suffix = "weight");

inline constexpr const char* kTokenEmbd = "token_embd.weight";
inline constexpr const char* kOutputNorm = "output_norm.weight";
inline constexpr const char* kOutput = "output.weight";
inline constexpr const char* kAttnNorm = "attn_norm";
inline constexpr const char* kFfnNorm = "ffn_norm";

// The RoPE row permutation for a [n_head * head_dim, ...] q or k matrix: row r of the llama.cpp
// layout is row perm[r] of the Hugging Face layout. Within each head, HF rows are reshaped
// [2, head_dim / 2] and transposed to [head_dim / 2, 2]: (j, i) -> 2i + j. For k, n_head is the
// number of key/value heads. awq::Error unless rows = n_head * head_dim with head_dim even.
std::vector<int64_t> rope_row_permutation(int64_t rows, int64_t n_head);
// The inverse (llama.cpp layout -> HF layout).
std::vector<int64_t> inverse_permutation(const std::vector<int64_t>& perm);

// dst row r = src row perm[r]. Whole rows move, so per-row group quantization commutes with it.
Mat permute_rows(const Mat& m, const std::vector<int64_t>& perm);
std::vector<float> permute_rows(const std::vector<float>& v, const std::vector<int64_t>& perm);
QuantizedMatrix permute_rows(const QuantizedMatrix& q, const std::vector<int64_t>& perm);

}  // namespace awq::gguf
