// The quantizer's kernels compiled for AVX-512, 16 lanes (see group_kernels_impl.inc).
#include <cstdint>

#include "quant/group_kernels.h"

namespace awq::qk::avx512 {
constexpr const char* kIsaName = "avx512";
#include "quant/group_kernels_impl.inc"
}  // namespace awq::qk::avx512

const awq::qk::KernelTable& awq::qk::avx512_table() {
  return avx512::kTable;
}
