#include "kernels/linalg.h"

#include <climits>

#include "base/error.h"
#include "kernels/blas.h"

extern "C" {
// LAPACK (column-major), provided by OpenBLAS.
void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info);
void dtrtri_(const char* uplo, const char* diag, const int* n, double* a, const int* lda,
             int* info);
}

namespace awq::kernels {

bool inverse_cholesky_upper(std::vector<double>& h, int64_t n) {
  AWQ_CHECK(n >= 0 && n <= INT_MAX && int64_t(h.size()) == n * n,
            "inverse_cholesky_upper: {} values for a [{}, {}] matrix", h.size(), n, n);
  if (n == 0) return true;
  detail::blas_single_thread_once();
  // A = J H J, symmetric, so its row-major and column-major layouts are the same array.
  std::vector<double> a(h.size());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) a[size_t(i * n + j)] = h[size_t((n - 1 - i) * n + (n - 1 - j))];
  const int ni = int(n);
  int info = 0;
  dpotrf_("L", &ni, a.data(), &ni, &info);  // A = L L^T, L in the column-major lower triangle
  if (info != 0) return false;
  dtrtri_("L", "N", &ni, a.data(), &ni, &info);  // L^-1, in place
  if (info != 0) return false;
  // U[i][j] = L^-1(n-1-i, n-1-j); column-major element (r, c) is a[c * n + r].
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      h[size_t(i * n + j)] = j < i ? 0.0 : a[size_t((n - 1 - j) * n + (n - 1 - i))];
    }
  }
  return true;
}

}  // namespace awq::kernels
