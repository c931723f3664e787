#include "kernels/linalg.h"

#include <algorithm>
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
  // A = J H J in place (element (i, j) <-> (n-1-i, n-1-j): reversing the whole array). A is
  // symmetric, so its row-major and column-major layouts are the same array.
  std::reverse(h.begin(), h.end());
  const int ni = int(n);
  int info = 0;
  dpotrf_("L", &ni, h.data(), &ni, &info);  // A = L L^T, L in the column-major lower triangle
  if (info != 0) return false;
  dtrtri_("L", "N", &ni, h.data(), &ni, &info);  // L^-1, in place
  if (info != 0) return false;
  // U[i][j] = L^-1(n-1-i, n-1-j), and column-major (r, c) is h[c * n + r]: U[i][j] sits at
  // h[(n-1-j) * n + (n-1-i)], i.e. U = reverse(h) transposed, zero below the diagonal.
  std::reverse(h.begin(), h.end());  // now h[j * n + i] = U[i][j]: U^T row-major
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i + 1; j < n; ++j) {
      h[size_t(i * n + j)] = h[size_t(j * n + i)];
      h[size_t(j * n + i)] = 0.0;
    }
  return true;
}

}  // namespace awq::kernels
