// Per-thread reusable buffers (internal). The kernels run hundreds of times per token; reusing a
// thread's buffer keeps allocation and page faults out of the hot path.
#pragma once
#include <cstddef>

namespace awq::kernels::detail {

inline constexpr int kScratchSlots = 4;

// A 64-byte aligned buffer of at least `bytes`, private to the calling thread, valid until the
// same thread asks for the same slot again. Contents are unspecified.
void* thread_scratch(int slot, size_t bytes);

template <typename T>
T* thread_scratch_of(int slot, size_t count) {
  return static_cast<T*>(thread_scratch(slot, count * sizeof(T)));
}

}  // namespace awq::kernels::detail
