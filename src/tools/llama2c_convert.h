// llama2.c checkpoint (+ its tokenizer.bin) -> a Hugging Face Llama directory: config.json,
// model.safetensors (F32, HF tensor names, q/k rows permuted from llama2.c's interleaved-pair RoPE
// to HF's rotate-half), tokenizer.json and tokenizer_config.json. Written through a StagedDir: the
// output appears complete or not at all.
#pragma once
#include <string>
#include <vector>

namespace awq {

void convert_llama2c(const std::string& model_bin, const std::string& tokenizer_bin,
                     const std::string& out_dir);

// The q/k row permutation: rows of a [n_heads * head_dim, in] matrix, per head reshaped
// [head_dim/2, 2] -> [2, head_dim/2] (new row c*head_dim/2 + i = old row 2i + c).
std::vector<float> permute_rows_for_rotate_half(const std::vector<float>& w, int64_t n_heads,
                                                int64_t head_dim, int64_t in);

}  // namespace awq
