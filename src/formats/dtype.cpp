#include "formats/dtype.h"

#include <cstring>

#include "base/error.h"
#include "base/half.h"

namespace awq {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F64:
    case DType::I64:
      return 8;
    case DType::F32:
    case DType::I32:
      return 4;
    case DType::F16:
    case DType::BF16:
    case DType::I16:
      return 2;
    case DType::I8:
    case DType::U8:
    case DType::BOOL:
      return 1;
  }
  return 0;
}

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::F32:
      return "F32";
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
    case DType::F64:
      return "F64";
    case DType::I64:
      return "I64";
    case DType::I32:
      return "I32";
    case DType::I16:
      return "I16";
    case DType::I8:
      return "I8";
    case DType::U8:
      return "U8";
    case DType::BOOL:
      return "BOOL";
  }
  return "?";
}

std::optional<DType> dtype_from_name(std::string_view s) {
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::F64, DType::I64, DType::I32,
                  DType::I16, DType::I8, DType::U8, DType::BOOL}) {
    if (s == dtype_name(t)) return t;
  }
  return std::nullopt;
}

void convert_to_f32(DType t, const void* src, int64_t n, float* dst) {
  // Elements are read with memcpy: a safetensors file need not align a tensor's data to its
  // element size (an odd offset is legal), and a misaligned typed load is undefined behaviour.
  // On x86 the copies compile to plain unaligned loads.
  const auto* b = static_cast<const uint8_t*>(src);
  switch (t) {
    case DType::F32:
      std::memcpy(dst, src, size_t(n) * 4);
      return;
    case DType::F16: {
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, b + 2 * i, 2);
        dst[i] = f16_to_f32(h);
      }
      return;
    }
    case DType::BF16: {
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, b + 2 * i, 2);
        dst[i] = bf16_to_f32(h);
      }
      return;
    }
    case DType::F64: {
      for (int64_t i = 0; i < n; ++i) {
        double d;
        std::memcpy(&d, b + 8 * i, 8);
        dst[i] = float(d);
      }
      return;
    }
    default:
      fail("cannot convert {} tensor data to f32", dtype_name(t));
  }
}

}  // namespace awq
