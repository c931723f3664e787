// Element types of tensors in checkpoint files (safetensors names; GGUF maps onto these too).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace awq {

enum class DType { F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL };

size_t dtype_size(DType t);
std::string_view dtype_name(DType t);                      // "F32", "F16", ...
std::optional<DType> dtype_from_name(std::string_view s);  // safetensors spelling

// Converts n elements of a float type (F32/F16/BF16/F64) to f32. Other types: awq::Error.
void convert_to_f32(DType t, const void* src, int64_t n, float* dst);

}  // namespace awq
