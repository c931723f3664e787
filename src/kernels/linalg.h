// Dense symmetric factorizations in double (LAPACK from the BLAS library, run single-threaded as
// every BLAS call here: blas.h). GPTQ's only heavy linear algebra.
#pragma once
#include <cstdint>
#include <vector>

namespace awq::kernels {

// The upper-triangular U with U^T U = H^-1 for a symmetric positive definite H [n, n] (row-major,
// both triangles filled), returned row-major with zeros below the diagonal: what GPTQ calls
// Hinv (torch: cholesky(cholesky_inverse(cholesky(H)), upper=True)). Computed with one Cholesky
// factorization and one triangular inverse instead of the reference's three factorizations: if
// J is the exchange matrix and J H J = L L^T, then U = J L^-1 J. Returns false (h unspecified)
// when H is not positive definite to working precision.
bool inverse_cholesky_upper(std::vector<double>& h, int64_t n);

}  // namespace awq::kernels
