// The AWQ scale search's products, f32 against bf16 (--search-precision): GFLOP/s of gemm_f32
// (own AVX-512 panel kernel) and gemm_f32_in_bf16 (AVX512-BF16 panel kernel) on search-like
// shapes: TinyLlama's d 2048 and ffn 5632, n = the calibration tokens a product sees (the MLP
// runs in chunks of 2048 rows, attention's linears on all 32 x 512 = 16384 and more).
//
//   search_gemm/<f32|bf16>/<out>x<in>/n:N/threads:T
//
// Each f32 benchmark is registered next to its bf16 twin; on a shared machine run them
// interleaved, e.g.
//   build/awq_bench --benchmark_filter=search_gemm --benchmark_repetitions=3 \
//     --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true
// and read the medians. bf16 rows are skipped where bf16_products_available() is false.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "base/thread_pool.h"
#include "kernels/kernels.h"

namespace {

using namespace awq;
using namespace awq::kernels;

std::vector<float> filled(size_t count, uint32_t seed, float scale) {
  std::vector<float> v(count);
  uint32_t s = seed;
  for (float& f : v) {  // xorshift: fast, and values that are not already bf16
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    f = (float(s >> 8) / float(1 << 24) - 0.5f) * scale;
  }
  return v;
}

void bm_search_gemm(benchmark::State& st, bool bf16, int64_t out, int64_t in) {
  if (bf16 && !bf16_products_available()) {
    st.SkipWithError("no AVX512-BF16 (or AWQ_ISA below avx512)");
    return;
  }
  const int64_t n = st.range(0);
  set_num_threads(int(st.range(1)));
  const std::vector<float> x = filled(size_t(n * in), 1, 2.0f);
  const std::vector<float> w = filled(size_t(out * in), 2, 0.1f);
  std::vector<float> y(size_t(n * out));
  for (auto _ : st) {
    if (bf16) {
      gemm_f32_in_bf16(x.data(), n, w.data(), out, in, nullptr, y.data());
    } else {
      gemm_f32(x.data(), n, w.data(), out, in, nullptr, y.data());
    }
    benchmark::DoNotOptimize(y.data());
  }
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(n * out * in) * 1e-9,
                                              benchmark::Counter::kIsIterationInvariantRate);
}

int register_search_gemm() {
  struct Shape {
    int64_t out, in;
  };
  for (Shape s : {Shape{2048, 2048}, Shape{5632, 2048}, Shape{2048, 5632}})
    for (int64_t n : {2048, 4096, 16384, 65536}) {
      // 65536 tokens of a 5632-wide input are 1.5 GB of x alone: the square shape only.
      if (n == 65536 && (s.out != 2048 || s.in != 2048)) continue;
      for (int threads : {1, 2})
        for (bool bf16 : {false, true})
          benchmark::RegisterBenchmark(("search_gemm/" + std::string(bf16 ? "bf16/" : "f32/") +
                                        std::to_string(s.out) + "x" + std::to_string(s.in))
                                           .c_str(),
                                       bm_search_gemm, bf16, s.out, s.in)
              ->ArgNames({"n", "threads"})
              ->Args({n, threads})
              ->Unit(benchmark::kMillisecond)
              ->MinTime(0.5)
              ->UseRealTime();
    }
  return 0;
}
const int registered = register_search_gemm();

}  // namespace
