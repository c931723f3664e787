// ggml's 32-weight blocks (llama-cpp-and-cpu.md §1), converted exactly from AWQ groups: no
// re-quantization, the codes are the quantizer's.
//   Q4_0 (type 2), 18 bytes: f16 d, u8 qs[16];        x = d * (q - 8)
//   Q4_1 (type 3), 20 bytes: f16 d, f16 m, u8 qs[16]; x = d * q + m
//   Q8_0 (type 8), 34 bytes: f16 d, i8 qs[32];        x = d * q
// qs[j] = q[j] | q[j + 16] << 4 (low nibbles hold elements 0..15). Blocks run along `in`, rows
// one after another; f16 values are little-endian.
//
// Asymmetric AWQ (q - z) * s is Q4_1 with d = s, m = -z * s; m's f16 rounding is the only loss
// (s is f16 already and -z*s is exact in f32). Symmetric 4-bit AWQ is Q4_0 with d = s, exactly.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "quant/quantized_matrix.h"

namespace awq {

inline constexpr int kGgmlQ4_0 = 2;
inline constexpr int kGgmlQ4_1 = 3;
inline constexpr int kGgmlQ8_0 = 8;

// Bytes of a [out, in] tensor of the given type (in a multiple of 32); throws for other types.
size_t ggml_tensor_bytes(int ggml_type, int64_t out, int64_t in);

// A matrix of at most 4 bits (asymmetric or symmetric) with a group size that is a multiple of 32.
std::vector<uint8_t> to_ggml_q4_1(const QuantizedMatrix& q, const std::string& tensor = "weight");
// A symmetric matrix (zeros all 2^(bits-1)) of at most 4 bits, group a multiple of 32.
std::vector<uint8_t> to_ggml_q4_0(const QuantizedMatrix& q, const std::string& tensor = "weight");

// ggml's quantize_row_q8_0_ref: per block d = max|x| / 127, q = roundf(x * (1/d)) (half away from
// zero), d stored as f16. For tensors kept at 8 bits (embeddings, output). Rejects NaN/inf.
std::vector<uint8_t> quantize_ggml_q8_0(const float* x, int64_t out, int64_t in,
                                        const std::string& tensor = "tensor");

// blocks -> f32 [out, in] (ggml_type 2, 3 or 8), as ggml's dequantize_row_* computes it.
void dequantize_ggml(int ggml_type, const uint8_t* blocks, int64_t out, int64_t in, float* dst);

// Codes back from blocks (for the W4 kernels on GGUF input). Q4_0 always converts (symmetric,
// zeros 8). Q4_1 converts only blocks written from AWQ groups, whose m is f16(-z * d) for an
// integer z in [0, 15]; llama.cpp's own Q4_1 (m = block minimum) is rejected with the block named.
// Consecutive blocks that share d and z are merged into the largest such group size.
QuantizedMatrix from_ggml_q4_0(const uint8_t* blocks, int64_t out, int64_t in,
                               const std::string& tensor = "weight");
QuantizedMatrix from_ggml_q4_1(const uint8_t* blocks, int64_t out, int64_t in,
                               const std::string& tensor = "weight");

}  // namespace awq
