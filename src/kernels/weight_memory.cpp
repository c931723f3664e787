#include "kernels/weight_memory.h"

#include <cstdlib>
#include <cstring>

#include "base/error.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace awq::kernels {

std::shared_ptr<uint8_t> alloc_weight_bytes(size_t bytes) {
  constexpr size_t kHuge = size_t(2) << 20;
  const bool huge = bytes >= 2 * kHuge;
  const size_t align = huge ? kHuge : 64;
  const size_t rounded = bytes == 0 ? align : (bytes + align - 1) / align * align;
  auto* p = static_cast<uint8_t*>(std::aligned_alloc(align, rounded));
  if (!p) fail("out of memory allocating {} bytes of weights", bytes);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (huge) madvise(p, rounded, MADV_HUGEPAGE);  // advice only: failure leaves 4 KiB pages
#endif
  std::memset(p, 0, rounded);
  return std::shared_ptr<uint8_t>(p, [](uint8_t* q) { std::free(q); });
}

}  // namespace awq::kernels
