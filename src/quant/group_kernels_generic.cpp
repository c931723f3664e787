// The quantizer's kernels compiled for baseline x86-64 (SSE2), 4 lanes (see
// group_kernels_impl.inc).
#include <cstdint>

#include "quant/group_kernels.h"

namespace awq::qk::generic {
constexpr const char* kIsaName = "generic";
#include "quant/group_kernels_impl.inc"
}  // namespace awq::qk::generic

const awq::qk::KernelTable& awq::qk::generic_table() {
  return generic::kTable;
}
