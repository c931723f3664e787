// The one place that calls BLAS (internal). OpenBLAS runs single-threaded inside each call: we
// parallelize outside over fixed chunks of output rows, so results do not depend on how many
// threads either library would pick, and the two thread pools never oversubscribe the cores.
#pragma once
#include <cstdint>

namespace awq::kernels::detail {

// C[m, n] (row stride ldc) = A[m, k] (row stride lda) · B, where B is [k, n] with row stride
// ldb (trans_b = false) or B^T is [n, k] with row stride ldb (trans_b = true).
void sgemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
           int64_t ldb, bool trans_b, float* c, int64_t ldc);

// Makes sure BLAS runs single-threaded (done once, before the first sgemm).
void blas_single_thread_once();

// Output-row chunk for the sgemm-based paths: a function of the shape only (never of the thread
// count), big enough that BLAS's repacking of x is amortized, small enough to give both cores
// work on the narrow k/v projections.
int64_t sgemm_row_chunk(int64_t out);

}  // namespace awq::kernels::detail
