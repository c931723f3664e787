// gemm_f32_in_bf16: f32 operands rounded to bfloat16, products summed in f32 (gemm.h), on the
// AVX512-BF16 panel kernel (kernels_avx512bf16.cpp).
//
// The same task split as panel_gemm (panel_gemm.h): (block of kTokenBlock tokens, 32-row panel)
// tasks, block-major, each converting its rows of W to a pair panel in L2. x is converted once
// per (thread, token block): a task keeps the pairs of its block in a buffer of its thread and
// the next task of the same block (block-major order hands a thread runs of them) reuses it,
// so the conversion costs 1/32 or less of the products without a whole copy of x in bf16 (for
// 16k tokens x 5632 that copy would be 184 MB).
#include <algorithm>
#include <atomic>
#include <vector>

#include "base/error.h"
#include "base/sysinfo.h"
#include "base/thread_pool.h"
#include "kernels/bf16_dot.h"
#include "kernels/gemm.h"
#include "kernels/isa.h"
#include "kernels/panel_gemm.h"
#include "kernels/scratch.h"

namespace awq::kernels {
namespace {

// The token block whose pairs a thread holds, by call (every call gets a new number, so a block
// of an earlier call's x is never taken for this one's).
struct XBlock {
  uint64_t call = 0;
  int64_t t0 = -1;
  std::vector<uint32_t> pairs;
};
thread_local XBlock t_xblock;
std::atomic<uint64_t> g_calls{0};

}  // namespace

bool bf16_products_available() {
  return active_isa() == Isa::Avx512 && cpu_features().avx512bf16;
}

void gemm_f32_in_bf16(const float* x, int64_t n, const float* w, int64_t out, int64_t in,
                      const float* bias, float* y) {
  AWQ_CHECK(n >= 0 && out >= 0 && in > 0, "gemm_f32_in_bf16: bad shape n={} out={} in={}", n, out,
            in);
  AWQ_CHECK(bf16_products_available(),
            "gemm_f32_in_bf16: needs AVX512-BF16 and the avx512 kernels (CPU: {}, AWQ_ISA: {})",
            cpu_features().avx512bf16 ? "has it" : "lacks it", isa_name(active_isa()));
  if (n == 0 || out == 0) return;
  using detail::kPanelRows, detail::kTokenBlock;
  const int64_t pairs = (in + 1) / 2;
  const int64_t panels = (out + kPanelRows - 1) / kPanelRows;
  const int64_t blocks = (n + kTokenBlock - 1) / kTokenBlock;
  const uint64_t call = g_calls.fetch_add(1, std::memory_order_relaxed) + 1;
  parallel_for(blocks * panels, 1, [&](int64_t i0, int64_t i1) {
    auto* panel = detail::thread_scratch_of<uint32_t>(0, size_t(kPanelRows * pairs));
    XBlock& xb = t_xblock;
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t t0 = i / panels * kTokenBlock, o0 = i % panels * kPanelRows;
      const int64_t nb = std::min(kTokenBlock, n - t0), rows = std::min(kPanelRows, out - o0);
      if (xb.call != call || xb.t0 != t0) {
        xb.pairs.resize(size_t(kTokenBlock * pairs));
        detail::bf16_pair_rows(x + t0 * in, nb, in, xb.pairs.data());
        xb.call = call;
        xb.t0 = t0;
      }
      detail::bf16_pair_panel32(w + o0 * in, in, rows, panel);
      detail::bf16_dot_panel32(panel, pairs, xb.pairs.data(), nb, rows, bias ? bias + o0 : nullptr,
                               y + t0 * out + o0, out);
    }
  });
}

}  // namespace awq::kernels
