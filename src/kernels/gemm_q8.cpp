// gemm_q8a8 driver: the int8 quantization of the activations (the same per-ISA quantize_q8 as
// gemm_w4a8), then the per-ISA tile kernels over fixed chunks of row tiles.
#include <algorithm>

#include "base/error.h"
#include "base/thread_pool.h"
#include "kernels/kernel_table.h"
#include "kernels/q8.h"
#include "kernels/q8_layout.h"
#include "kernels/scratch.h"

namespace awq::kernels {

namespace {

// Row tiles per parallel chunk, as gemm_w4.cpp chooses them (see the measurements there): decode
// gives each thread one contiguous run (chunk boundaries restart the prefetch streams); many
// tokens take small chunks to balance. Each output depends only on its own row, never on the
// chunking, so the result is the same for any thread count.
int64_t tile_grain(int64_t n, int64_t tiles) {
  if (n > 4) return 4;
  const int64_t threads = num_threads();
  return std::max<int64_t>(16, (tiles + threads - 1) / threads);
}

}  // namespace

void gemm_q8a8(const float* x, int64_t n, const Q8Matrix& w, const float* bias, float* y) {
  AWQ_CHECK(w.data() != nullptr, "gemm_q8a8: the Q8 matrix is empty");
  AWQ_CHECK(n >= 0, "gemm_q8a8: negative token count {}", n);
  AWQ_CHECK(n == 0 || (x && y), "gemm_q8a8: null activations or output");
  if (n == 0) return;
  const detail::KernelTable& k = detail::active_table();
  const int64_t in = w.in(), blocks = w.blocks();
  auto* q = detail::thread_scratch_of<int8_t>(0, size_t(n * in));
  auto* d = detail::thread_scratch_of<float>(1, size_t(n * blocks));
  auto* sums = detail::thread_scratch_of<int32_t>(2, size_t(n * blocks));
  parallel_for(n, 16, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t)
      k.quantize_q8(x + t * in, in, q + t * in, d + t * blocks, sums + t * blocks);
  });
  const detail::Q8View v{w.data(), w.out(), w.in(), blocks, w.tiles(), w.tile_stride(), 16 * in};
  const detail::Q8Inputs a{q, d, sums, in, blocks};
  parallel_for(w.tiles(), tile_grain(n, w.tiles()),
               [&](int64_t t0, int64_t t1) { k.q8a8(v, a, n, t0, t1, bias, y); });
}

}  // namespace awq::kernels
