#include "kernels/scratch.h"

#include <cstdlib>
#include <memory>

#include "base/error.h"

namespace awq::kernels::detail {
namespace {

struct Buffer {
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  std::unique_ptr<void, Free> data;
  size_t capacity = 0;
};

}  // namespace

void* thread_scratch(int slot, size_t bytes) {
  thread_local Buffer buffers[kScratchSlots];
  Buffer& b = buffers[slot];
  if (bytes > b.capacity) {
    const size_t cap = (bytes + (bytes >> 2) + 63) / 64 * 64;  // some headroom against regrowth
    b.data.reset(std::aligned_alloc(64, cap));
    if (!b.data) fail("out of memory allocating a {} byte kernel scratch buffer", cap);
    b.capacity = cap;
  }
  return b.data.get();
}

}  // namespace awq::kernels::detail
