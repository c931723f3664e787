#include "kernels/blas.h"

#include <cblas.h>

#include <algorithm>

#include "base/error.h"
#include "base/thread_pool.h"
#include "kernels/gemm.h"
#include "kernels/kernel_table.h"
#include "kernels/panel_gemm.h"

namespace awq::kernels {
namespace detail {

void sgemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
           int64_t ldb, bool trans_b, float* c, int64_t ldc) {
  blas_single_thread_once();
  cblas_sgemm(CblasRowMajor, CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, int(m), int(n),
              int(k), 1.0f, a, int(lda), b, int(ldb), 0.0f, c, int(ldc));
}

int64_t sgemm_row_chunk(int64_t out) {
  return out >= 2048 ? 256 : 128;
}

}  // namespace detail

void gemm_f32(const float* x, int64_t n, const float* w, int64_t out, int64_t in, const float* bias,
              float* y) {
  AWQ_CHECK(n >= 0 && out >= 0 && in > 0, "gemm_f32: bad shape n={} out={} in={}", n, out, in);
  AWQ_CHECK(in < (int64_t(1) << 31) && out < (int64_t(1) << 31) && n < (int64_t(1) << 31),
            "gemm_f32: shape n={} out={} in={} exceeds BLAS int range", n, out, in);
  if (n == 0 || out == 0) return;
  const detail::KernelTable& k = detail::active_table();
  if (n <= detail::kDirectMaxN && k.f32_rows) {  // decode: stream W once (memory-bound)
    parallel_for(out, detail::direct_row_grain(out),
                 [&](int64_t o0, int64_t o1) { k.f32_rows(x, n, w, in, o0, o1, bias, y, out); });
    return;
  }
  if (k.f32_panel32 && k.panel32) {
    // Our own panel microkernel, not OpenBLAS, wherever the ISA has one: on this project's
    // machines it measured 150-155 GFLOP/s on one core (n = 512..2048) against 110-130 for
    // OpenBLAS 0.3.21 called per chunk of rows (each call repacks x), and it does not depend on
    // OpenBLAS recognizing the CPU (0.3.21 runs its generic Prescott kernels, ~32 GFLOP/s, on
    // Emerald Rapids).
    detail::panel_gemm(k, x, n, out, in, bias, y, [&](int64_t o0, int64_t rows, float* p) {
      k.f32_panel32(w + o0 * in, in, rows, p);
    });
    return;
  }
  parallel_for(out, detail::sgemm_row_chunk(out), [&](int64_t o0, int64_t o1) {
    detail::sgemm(n, o1 - o0, in, x, in, w + o0 * in, in, /*trans_b=*/true, y + o0, out);
    if (bias)
      for (int64_t t = 0; t < n; ++t)
        for (int64_t o = o0; o < o1; ++o) y[t * out + o] += bias[o];
  });
}

}  // namespace awq::kernels
