// Decode attention on the TinyLlama-1.1B shape (32 query heads sharing 4 key/value heads of 64):
//
//   attention_decode/ctx:N/threads:T   one token's attention in all 22 layers at context N
//       (attend_cached, T = 1), each layer with its own key/value cache (22 x 2 x N x 1 KiB: 92 MB
//       at N = 2048), rotating over copies that exceed the caches as the weights' pool does. GB/s
//       of keys and values read; tok/s for the attention alone.
//   attention_decode_variant/ctx:N/window:W/softcap:C/threads:T   the same with AttnVariant
//       {W, C} (a sliding window of W keys, 0: none; soft-capping at C, 0: none): GB/s of the keys
//       and values the window covers.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "base/thread_pool.h"
#include "model/ops.h"

namespace {

using namespace awq;

constexpr int64_t kLayers = 22, kHeads = 32, kKvHeads = 4, kHeadDim = 64;

template <typename Vec>
void fill_random(Vec& v, uint64_t seed) {  // uniform in [-1, 1)
  for (auto& x : v) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    x = float(int64_t(seed >> 40) - (1 << 23)) / float(1 << 23);
  }
}

void run_decode(benchmark::State& st, int64_t ctx, const AttnVariant& variant, int threads) {
  set_num_threads(threads);
  // Enough caches for AWQ_BENCH_POOL_MB (default 1024) of keys and values, used 22 at a time in
  // turn: in a real decode ~650 MB of weights stream between two visits of a layer's cache, so its
  // keys and values come from DRAM, not from the last-level cache.
  const char* env = std::getenv("AWQ_BENCH_POOL_MB");
  const int64_t pool = (env ? std::atoll(env) : 1024) << 20;
  const int64_t per_cache = 2 * kKvHeads * ctx * kHeadDim * 4;
  const int64_t sets = std::max<int64_t>(1, pool / (kLayers * per_cache));
  std::vector<KvCache> caches(static_cast<size_t>(sets * kLayers));
  uint64_t seed = 1;
  for (KvCache& c : caches) {
    c.resize(kKvHeads, ctx, kHeadDim);
    // Random keys and values through store(), one position at a time as decode writes them.
    Mat k(1, kKvHeads * kHeadDim), v(1, kKvHeads * kHeadDim);
    for (int64_t p = 0; p < ctx; ++p) {
      fill_random(k.data, seed++);
      fill_random(v.data, seed++);
      c.store(k, v, p);
    }
  }
  std::vector<float> q(static_cast<size_t>(kHeads * kHeadDim));
  fill_random(q, 99);
  std::vector<float> out(q.size());
  const float scale = float(1.0 / std::sqrt(double(kHeadDim)));
  int64_t set = 0;
  for (auto _ : st) {
    for (int64_t l = 0; l < kLayers; ++l)
      attend_cached(q.data(), kHeads * kHeadDim, 1, kHeads, ctx - 1,
                    caches[size_t(set * kLayers + l)], scale, out.data(), kHeads * kHeadDim,
                    variant);
    benchmark::DoNotOptimize(out.data());
    set = (set + 1) % sets;
  }
  const int64_t seen = variant.window > 0 ? std::min(ctx, variant.window) : ctx;
  const double bytes = double(kLayers) * double(caches[0].bytes()) * double(seen) / double(ctx);
  st.counters["GB/s"] =
      benchmark::Counter(bytes / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["tok/s"] = benchmark::Counter(1, benchmark::Counter::kIsIterationInvariantRate);
}

void bm_attention_decode(benchmark::State& st) {
  run_decode(st, st.range(0), {}, int(st.range(1)));
}

void bm_attention_decode_variant(benchmark::State& st) {
  run_decode(st, st.range(0), {st.range(1), float(st.range(2))}, int(st.range(3)));
}

const int registered = [] {
  benchmark::RegisterBenchmark("attention_decode", bm_attention_decode)
      ->ArgNames({"ctx", "threads"})
      ->ArgsProduct({{64, 512, 2048}, {1, 2}})
      ->Unit(benchmark::kMicrosecond)
      ->MinTime(0.3)
      ->UseRealTime();
  benchmark::RegisterBenchmark("attention_decode_variant", bm_attention_decode_variant)
      ->ArgNames({"ctx", "window", "softcap", "threads"})
      ->ArgsProduct({{8192}, {0, 512, 4096}, {0, 50}, {1, 2}})
      ->Unit(benchmark::kMicrosecond)
      ->MinTime(0.3)
      ->UseRealTime();
  return 0;
}();

}  // namespace
