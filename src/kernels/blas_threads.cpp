// Kept apart from blas.cpp on purpose: this file does not include cblas.h, so it can declare the
// OpenBLAS-only thread controls as weak symbols. With OpenBLAS (Debian's libopenblas0-pthread
// exports both) they exist; with another BLAS behind libblas they are null and we skip them.
#include <cstdlib>
#include <mutex>

#include "kernels/blas.h"

extern "C" {
void openblas_set_num_threads(int num_threads) __attribute__((weak));
void goto_set_num_threads(int num_threads) __attribute__((weak));
}

namespace awq::kernels::detail {

void blas_single_thread_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (openblas_set_num_threads)
      openblas_set_num_threads(1);
    else if (goto_set_num_threads)
      goto_set_num_threads(1);
  });
}

}  // namespace awq::kernels::detail
