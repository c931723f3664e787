// The quantizer's kernels compiled for AVX2 + FMA, 8 lanes (see group_kernels_impl.inc).
#include <cstdint>

#include "quant/group_kernels.h"

namespace awq::qk::avx2 {
constexpr const char* kIsaName = "avx2";
#include "quant/group_kernels_impl.inc"
}  // namespace awq::qk::avx2

const awq::qk::KernelTable& awq::qk::avx2_table() {
  return avx2::kTable;
}
