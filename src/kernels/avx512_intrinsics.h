// <immintrin.h> for the AVX-512 kernel files, with GCC 12's false positive silenced: it flags
// "__Y = __Y" inside its own _mm512_undefined_*() helpers, which intrinsics such as
// _mm512_cvtph_ps use as a don't-care source (GCC bug 105593). Include it first, so that the
// pragmas precede the header; they hold for the including file only (nothing includes a kernel
// file).
#pragma once
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <immintrin.h>
