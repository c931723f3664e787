// gemm_w4a16 / gemm_w4a8 drivers: activation preparation (group sums, int8 quantization), then the
// per-ISA tile kernels over fixed chunks of row tiles.
#include <algorithm>

#include "base/error.h"
#include "base/thread_pool.h"
#include "kernels/blas.h"
#include "kernels/kernel_table.h"
#include "kernels/panel_gemm.h"
#include "kernels/scratch.h"
#include "kernels/w4.h"

namespace awq::kernels {

using detail::kTileRows;

namespace {

// Row tiles (of 16 rows) per parallel chunk. Every output depends only on its own row and the
// token blocking (a function of n), never on the chunk boundaries or the thread count. Decode
// gives each thread one contiguous run of at least 16 tiles (256 rows): every chunk boundary
// restarts the kernel's prefetch streams, and dynamically grabbed chunks are not adjacent in
// memory. bench/kernels_bench.cpp, 2 threads, decode/w4a8 (us per matrix, two runs each):
// 8 chunks q 87-90, gate 213-216, down 216-230; 4 chunks 80-82, 205-206, 204-208; 2 chunks (one
// per thread) 76-77, 205-206, 204-206; 16 and 32 chunks slower than 8. The whole TinyLlama-shape
// decode gained less (2 threads 44.2 -> 44.7 tok/s, 1 thread 23.2 -> 23.7, medians of three
// interleaved runs, within this VM's drift). The k/v-sized matrices (16 tiles) run inline
// without a hand-off. With many tokens, smaller chunks balance better.
int64_t tile_grain(int64_t n, int64_t tiles) {
  if (n > 4) return 4;
  const int64_t threads = num_threads();
  return std::max<int64_t>(16, (tiles + threads - 1) / threads);
}

// Up to this many tokens w4a16 streams the nibbles once for all tokens; above, dequantizing a
// chunk of rows to f32 and running sgemm is faster.
constexpr int64_t kW4A16DirectMaxN = 8;

detail::W4View view_of(const W4Matrix& w) {
  return {w.data(),        w.out(),    w.in(),
          w.group(),       w.groups(), w.tiles(),
          w.tile_stride(), 8 * w.in(), 8 * w.in() + 4 * kTileRows * w.groups()};
}

void check_args(const char* name, const float* x, int64_t n, const W4Matrix& w, float* y) {
  AWQ_CHECK(w.data() != nullptr, "{}: the W4 matrix is empty", name);
  AWQ_CHECK(n >= 0, "{}: negative token count {}", name, n);
  AWQ_CHECK(n == 0 || (x && y), "{}: null activations or output", name);
}

}  // namespace

void gemm_w4a16(const float* x, int64_t n, const W4Matrix& w, const float* bias, float* y) {
  check_args("gemm_w4a16", x, n, w, y);
  if (n == 0) return;
  const detail::KernelTable& k = detail::active_table();
  const detail::W4View v = view_of(w);
  const int64_t in = w.in();
  if (n <= kW4A16DirectMaxN) {
    // Sum of x over each group: the zero point's term, z * sum(x), computed once per token.
    float* xsum = detail::thread_scratch_of<float>(0, size_t(n * v.groups));
    for (int64_t t = 0; t < n; ++t)
      for (int64_t j = 0; j < v.groups; ++j) {
        float s = 0.0f;
        for (int64_t i = j * v.group; i < (j + 1) * v.group; ++i) s += x[t * in + i];
        xsum[t * v.groups + j] = s;
      }
    parallel_for(v.tiles, tile_grain(n, v.tiles),
                 [&](int64_t t0, int64_t t1) { k.w4a16(v, x, xsum, n, t0, t1, bias, y); });
    return;
  }
  if (k.panel32) {
    // Two tiles make a panel: dequantized (exactly) straight into the k-major panel layout.
    detail::panel_gemm(k, x, n, w.out(), in, bias, y, [&](int64_t o0, int64_t rows, float* p) {
      const int64_t t0 = o0 / kTileRows, t1 = (o0 + rows + kTileRows - 1) / kTileRows;
      if (t1 - t0 < 2) std::fill(p, p + detail::kPanelRows * in, 0.0f);  // no second tile
      k.w4_dequant(v, t0, t1, p, detail::kPanelRows);
    });
    return;
  }
  const int64_t chunk_rows = detail::sgemm_row_chunk(w.out());  // a multiple of kTileRows
  parallel_for(v.tiles, chunk_rows / kTileRows, [&](int64_t t0, int64_t t1) {
    const int64_t ld = (t1 - t0) * kTileRows;
    const int64_t o0 = t0 * kTileRows, o1 = std::min(w.out(), t1 * kTileRows);
    float* wt = detail::thread_scratch_of<float>(0, size_t(ld * in));
    k.w4_dequant(v, t0, t1, wt, ld);
    detail::sgemm(n, o1 - o0, in, x, in, wt, ld, /*trans_b=*/false, y + o0, w.out());
    if (bias)
      for (int64_t t = 0; t < n; ++t)
        for (int64_t o = o0; o < o1; ++o) y[t * w.out() + o] += bias[o];
  });
}

void gemm_w4a8(const float* x, int64_t n, const W4Matrix& w, const float* bias, float* y) {
  check_args("gemm_w4a8", x, n, w, y);
  if (n == 0) return;
  const detail::KernelTable& k = detail::active_table();
  const detail::W4View v = view_of(w);
  const int64_t in = w.in(), blocks = in / detail::kQBlock, groups = v.groups;
  const int64_t blocks_per_group = v.group / detail::kQBlock;
  auto* q = detail::thread_scratch_of<int8_t>(0, size_t(n * in));
  auto* d = detail::thread_scratch_of<float>(1, size_t(n * blocks));
  auto* sums = detail::thread_scratch_of<int32_t>(2, size_t(n * blocks));
  auto* gsum = detail::thread_scratch_of<float>(3, size_t(n * groups));
  parallel_for(n, 16, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      k.quantize_q8(x + t * in, in, q + t * in, d + t * blocks, sums + t * blocks);
      for (int64_t j = 0; j < groups; ++j) {
        float s = 0.0f;
        for (int64_t b = j * blocks_per_group; b < (j + 1) * blocks_per_group; ++b)
          s += d[t * blocks + b] * float(sums[t * blocks + b]);
        gsum[t * groups + j] = s;
      }
    }
  });
  const detail::Q8Acts a{q, d, gsum, in, blocks, groups};
  parallel_for(v.tiles, tile_grain(n, v.tiles),
               [&](int64_t t0, int64_t t1) { k.w4a8(v, a, n, t0, t1, bias, y); });
}

}  // namespace awq::kernels
