// gemm_f16 / gemm_bf16: the dispatch between the streaming kernel (small n, memory-bound) and
// convert-a-chunk-then-sgemm (large n, compute-bound).
#include "base/error.h"
#include "base/thread_pool.h"
#include "kernels/blas.h"
#include "kernels/gemm.h"
#include "kernels/kernel_table.h"
#include "kernels/panel_gemm.h"
#include "kernels/scratch.h"

namespace awq::kernels {
namespace {

void gemm_half(bool bf16, const float* x, int64_t n, const uint16_t* w, int64_t out, int64_t in,
               const float* bias, float* y) {
  const char* name = bf16 ? "gemm_bf16" : "gemm_f16";
  AWQ_CHECK(n >= 0 && out >= 0 && in > 0, "{}: bad shape n={} out={} in={}", name, n, out, in);
  if (n == 0 || out == 0) return;
  const detail::KernelTable& k = detail::active_table();
  if (n <= detail::kDirectMaxN) {
    const auto rows = bf16 ? k.bf16_rows : k.f16_rows;
    parallel_for(out, detail::direct_row_grain(out),
                 [&](int64_t o0, int64_t o1) { rows(x, n, w, in, o0, o1, bias, y, out); });
    return;
  }
  const auto to_panel = bf16 ? k.bf16_panel32 : k.f16_panel32;
  if (to_panel && k.panel32) {
    detail::panel_gemm(k, x, n, out, in, bias, y, [&](int64_t o0, int64_t rows, float* p) {
      to_panel(w + o0 * in, in, rows, p);
    });
    return;
  }
  const auto convert = bf16 ? k.bf16_to_f32 : k.f16_to_f32;
  parallel_for(out, detail::sgemm_row_chunk(out), [&](int64_t o0, int64_t o1) {
    float* wf = detail::thread_scratch_of<float>(0, size_t((o1 - o0) * in));
    convert(w + o0 * in, wf, (o1 - o0) * in);
    detail::sgemm(n, o1 - o0, in, x, in, wf, in, /*trans_b=*/true, y + o0, out);
    if (bias)
      for (int64_t t = 0; t < n; ++t)
        for (int64_t o = o0; o < o1; ++o) y[t * out + o] += bias[o];
  });
}

}  // namespace

void gemm_f16(const float* x, int64_t n, const uint16_t* w, int64_t out, int64_t in,
              const float* bias, float* y) {
  gemm_half(false, x, n, w, out, in, bias, y);
}

void gemm_bf16(const float* x, int64_t n, const uint16_t* w, int64_t out, int64_t in,
               const float* bias, float* y) {
  gemm_half(true, x, n, w, out, in, bias, y);
}

}  // namespace awq::kernels
