// AutoAWQ "GEMM" tensors (awq-spec §3.1), the layout transformers and vLLM load. For a linear with
// K = in_features, N = out_features, G = group size:
//   qweight [K, N/8] int32: 4-bit codes of W^T packed along the output dimension,
//   qzeros  [K/G, N/8] int32: zero points packed the same way,
//   scales  [K/G, N] f16: natural column order.
// Nibble i (bits 4i..4i+3) of word j holds column 8j + kAwqOrder[i]; words are the raw 32-bit
// pattern (two's complement int32). Example: columns 0..7 holding 1..8 pack to 0x86427531.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "quant/quantized_matrix.h"

namespace awq {

inline constexpr int kAwqOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};         // nibble -> column
inline constexpr int kAwqReverseOrder[8] = {0, 4, 1, 5, 2, 6, 3, 7};  // column -> nibble

struct AwqGemmTensors {
  int64_t K = 0, N = 0;
  int group = 0;
  std::vector<int32_t> qweight;      // [K, N/8]
  std::vector<int32_t> qzeros;       // [K/G, N/8]
  std::vector<uint16_t> scales_f16;  // [K/G, N]
};

// From the quantized HF weight [out = N, in = K]. Needs 4 bits and N % 8 == 0 (a symmetric matrix
// packs too: its zeros are all 8). Codes, zeros and scales are carried over exactly.
AwqGemmTensors pack_awq_gemm(const QuantizedMatrix& q, const std::string& tensor = "weight");

// The exact inverse, for reading AutoAWQ checkpoints. With zero_point false every zero must be 8.
// Checks the tensor sizes against K, N and group, naming `tensor` on a mismatch.
QuantizedMatrix unpack_awq_gemm(const AwqGemmTensors& t, bool zero_point,
                                const std::string& tensor = "weight");

}  // namespace awq
