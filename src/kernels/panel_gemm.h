// The compute-bound path of every dense and W4A16 product (internal): rows of W are turned, 32 at
// a time, into an f32 panel (k-major: panel[k * 32 + r]) that stays in L2, and the ISA's
// register-blocked microkernel (KernelTable::panel32) multiplies it with a block of tokens.
//
// Tokens go in blocks of kTokenBlock, so that x's block stays in cache while every panel passes
// over it (unblocked, n = 8192 fell from ~150 to ~128 GFLOP/s); the price is one more conversion
// of W per block, ~2% at 512. Each output is one FMA chain over k in order, whatever the chunking,
// so the result is the same for any thread count.
#pragma once
#include <algorithm>
#include <cstdint>

#include "base/thread_pool.h"
#include "kernels/kernel_table.h"
#include "kernels/scratch.h"

namespace awq::kernels::detail {

inline constexpr int64_t kPanelRows = 32;

// Dense products with up to this many tokens use the streaming row kernels instead: they read W
// once from memory for all tokens, while a panel costs a conversion that only a larger n
// amortizes. Rows per chunk of the streaming kernels: a function of the matrix only, so the split
// never depends on the thread count (each row's result does not depend on it either): 8 chunks
// of at least 32 rows, so that each thread streams long runs (the row kernels prefetch within a
// chunk only) and 8 chunks share out evenly over 1, 2 or 4 threads.
inline constexpr int64_t kDirectMaxN = 8;
inline constexpr int64_t kDirectRowGrain = 32;
inline int64_t direct_row_grain(int64_t out) {
  const int64_t g = (out + 7) / 8;
  return g < kDirectRowGrain ? kDirectRowGrain : (g + 3) / 4 * 4;
}
inline constexpr int64_t kTokenBlock = 512;

// fill(o0, rows, panel) writes rows [o0, o0 + rows) of W (rows <= 32) as a panel, zero beyond.
// One parallel_for over (token block, panel) tasks, block-major: a narrow matrix (out = 64: two
// panels) with many tokens was 2 tasks per parallel_for, one hand-off per 512 tokens; now the
// threads share out all the tasks of the product at once. Each task does what it did before.
template <typename Fill>
void panel_gemm(const KernelTable& k, const float* x, int64_t n, int64_t out, int64_t in,
                const float* bias, float* y, const Fill& fill) {
  const int64_t panels = (out + kPanelRows - 1) / kPanelRows;
  const int64_t blocks = (n + kTokenBlock - 1) / kTokenBlock;
  parallel_for(blocks * panels, 1, [&](int64_t i0, int64_t i1) {
    float* panel = thread_scratch_of<float>(0, size_t(kPanelRows * in));
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t t0 = i / panels * kTokenBlock, o0 = i % panels * kPanelRows;
      const int64_t nb = std::min(kTokenBlock, n - t0), rows = std::min(kPanelRows, out - o0);
      fill(o0, rows, panel);
      k.panel32(panel, in, x + t0 * in, nb, rows, bias ? bias + o0 : nullptr, y + t0 * out + o0,
                out);
    }
  });
}

}  // namespace awq::kernels::detail
