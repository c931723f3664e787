// Microbenchmarks of the kernel layer on the TinyLlama-1.1B shapes (d 2048, ffn 5632, 4 kv heads
// of 64, vocab 32000, 22 layers), the model the project's peer numbers were taken on.
//
//   decode/<kernel>/<matrix>/threads:T   n = 1, memory-bound: GB/s of weights streamed. Each
//       iteration uses the next of enough copies of the matrix to exceed the caches
//       (AWQ_BENCH_POOL_MB, default 1024), so weights come from DRAM as in a real decode.
//   prompt/<kernel>/<matrix>/n:512/threads:T   compute-bound: GFLOP/s.
//   model_decode/<kernel>/threads:T   one token through the 154 linears of all 22 layers, every
//       matrix distinct (real DRAM traffic): tok/s for the layers (no lm_head, no attention).
//   model_prompt/<kernel>/threads:T   the 7 linears of one layer at n = 512; tok/s counter is
//       512 / (22 x layer time): the whole-model prompt rate of the linears.
//   memory_bandwidth/threads:T   the read-bandwidth probe (measure_memory_bandwidth_gbs).
//
// AWQ_ISA=scalar|avx2|avx512 picks the kernels (default: the best the CPU has). Rates use wall
// time; on a shared machine read the CPU column of the 1-thread rows instead (it excludes the
// time other processes held the core).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "base/half.h"
#include "base/thread_pool.h"
#include "kernels/kernels.h"

namespace {

using namespace awq;
using namespace awq::kernels;

struct Shape {
  const char* name;
  int64_t out, in;
};
const Shape kLayer[] = {{"q", 2048, 2048},   {"k", 256, 2048},     {"v", 256, 2048},
                        {"o", 2048, 2048},   {"gate", 5632, 2048}, {"up", 5632, 2048},
                        {"down", 2048, 5632}};
const Shape kHead = {"lm_head", 32000, 2048};
constexpr int kLayers = 22;
constexpr int kGroup = 128;

enum class Kind { F32, F16, BF16, W4A16, W4A8 };
const char* kind_name(Kind k) {
  switch (k) {
    case Kind::F32:
      return "f32";
    case Kind::F16:
      return "f16";
    case Kind::BF16:
      return "bf16";
    case Kind::W4A16:
      return "w4a16";
    case Kind::W4A8:
      return "w4a8";
  }
  return "?";
}

uint64_t next_random(uint64_t& s) {  // splitmix64: fast enough for a billion weights
  s += 0x9E3779B97F4A7C15ull;
  uint64_t z = s;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// One weight matrix in the form a kernel reads.
struct Weights {
  Kind kind;
  int64_t out, in;
  std::vector<float> f32;
  std::vector<uint16_t> half;
  W4Matrix w4;

  size_t bytes() const {
    if (kind == Kind::F32) return f32.size() * 4;
    if (kind == Kind::F16 || kind == Kind::BF16) return half.size() * 2;
    return w4.bytes();
  }
  void run(const float* x, int64_t n, float* y) const {
    switch (kind) {
      case Kind::F32:
        return gemm_f32(x, n, f32.data(), out, in, nullptr, y);
      case Kind::F16:
        return gemm_f16(x, n, half.data(), out, in, nullptr, y);
      case Kind::BF16:
        return gemm_bf16(x, n, half.data(), out, in, nullptr, y);
      case Kind::W4A16:
        return gemm_w4a16(x, n, w4, nullptr, y);
      case Kind::W4A8:
        return gemm_w4a8(x, n, w4, nullptr, y);
    }
  }
};

Weights make_weights(Kind kind, const Shape& s, uint64_t seed) {
  Weights w{kind, s.out, s.in, {}, {}, {}};
  const size_t count = size_t(s.out * s.in);
  uint64_t r = seed;
  auto uniform = [&] { return float(next_random(r) >> 40) * (1.0f / (1 << 24)) - 0.5f; };
  if (kind == Kind::F32) {
    w.f32.resize(count);
    for (auto& v : w.f32) v = uniform() * 0.1f;
  } else if (kind == Kind::F16 || kind == Kind::BF16) {
    w.half.resize(count);
    for (auto& v : w.half)
      v = kind == Kind::F16 ? f32_to_f16(uniform() * 0.1f) : f32_to_bf16(uniform() * 0.1f);
  } else {
    const int64_t groups = s.in / kGroup;
    std::vector<uint8_t> codes(count), zeros(size_t(s.out * groups));
    std::vector<float> scales(zeros.size());
    for (size_t i = 0; i < count; i += 8) {
      const uint64_t v = next_random(r);
      for (size_t k = 0; k < 8 && i + k < count; ++k) codes[i + k] = uint8_t((v >> (8 * k)) & 15);
    }
    for (size_t i = 0; i < zeros.size(); ++i) {
      zeros[i] = uint8_t(next_random(r) & 15);
      scales[i] = 0.001f + 0.01f * (uniform() + 0.5f);
    }
    w.w4 = W4Matrix::pack({s.out, s.in, kGroup, codes.data(), scales.data(), zeros.data()});
  }
  return w;
}

std::vector<float> activations(int64_t n, int64_t in) {
  std::vector<float> x(size_t(n * in));
  uint64_t r = 7;
  for (auto& v : x) v = float(int64_t(next_random(r) >> 40) - (1 << 23)) / float(1 << 23);
  return x;
}

int64_t pool_bytes() {
  const char* env = std::getenv("AWQ_BENCH_POOL_MB");
  return (env ? std::atoll(env) : 1024) << 20;
}

// Copies of one matrix adding up to pool_bytes(); only one pool is alive at a time.
const std::vector<Weights>& rotating_pool(Kind kind, const Shape& s) {
  static std::string key;
  static std::vector<Weights> pool;
  const std::string want = std::string(kind_name(kind)) + s.name;
  if (key != want) {
    pool.clear();
    pool.shrink_to_fit();
    const Weights first = make_weights(kind, s, 1);
    const int64_t copies = std::max<int64_t>(2, pool_bytes() / int64_t(first.bytes()) + 1);
    pool.reserve(size_t(copies));
    for (int64_t i = 0; i < copies; ++i) {
      pool.push_back(first);
      // W4Matrix copies share their bytes; a one-part concat is a copy into fresh memory.
      const W4Matrix* part[] = {&first.w4};
      if (kind == Kind::W4A16 || kind == Kind::W4A8) pool.back().w4 = W4Matrix::concat(part, 1);
    }
    key = want;
  }
  return pool;
}

void set_counters(benchmark::State& st, double bytes, double flops) {
  st.counters["GB/s"] =
      benchmark::Counter(bytes / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["GFLOP/s"] =
      benchmark::Counter(flops / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}

void bm_decode(benchmark::State& st, Kind kind, Shape s) {
  set_num_threads(int(st.range(0)));
  const std::vector<Weights>& pool = rotating_pool(kind, s);
  const std::vector<float> x = activations(1, s.in);
  std::vector<float> y(size_t(s.out));
  size_t i = 0;
  for (auto _ : st) {
    pool[i].run(x.data(), 1, y.data());
    benchmark::DoNotOptimize(y.data());
    i = (i + 1) % pool.size();
  }
  set_counters(st, double(pool[0].bytes()), 2.0 * double(s.out * s.in));
}

void bm_prompt(benchmark::State& st, Kind kind, Shape s) {
  set_num_threads(int(st.range(1)));
  const int64_t n = st.range(0);
  const Weights w = make_weights(kind, s, 1);
  const std::vector<float> x = activations(n, s.in);
  std::vector<float> y(size_t(n * s.out));
  for (auto _ : st) {
    w.run(x.data(), n, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  set_counters(st, double(w.bytes()), 2.0 * double(n * s.out * s.in));
}

// All 154 layer matrices, distinct, built once per kind (W4 ~0.5 GB, F16 ~1.9 GB).
const std::vector<Weights>& model(Kind kind) {
  static Kind built = Kind::F32;
  static std::vector<Weights> m;
  if (m.empty() || built != kind) {
    m.clear();
    m.shrink_to_fit();
    uint64_t seed = 100;
    for (int l = 0; l < kLayers; ++l)
      for (const Shape& s : kLayer) m.push_back(make_weights(kind, s, seed++));
    built = kind;
  }
  return m;
}

void bm_model_decode(benchmark::State& st, Kind kind) {
  set_num_threads(int(st.range(0)));
  const std::vector<Weights>& m = model(kind);
  const std::vector<float> x2048 = activations(1, 2048), x5632 = activations(1, 5632);
  std::vector<float> y(5632);
  double bytes = 0, flops = 0;
  for (const Weights& w : m) {
    bytes += double(w.bytes());
    flops += 2.0 * double(w.out * w.in);
  }
  for (auto _ : st) {
    for (const Weights& w : m) w.run(w.in == 2048 ? x2048.data() : x5632.data(), 1, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  set_counters(st, bytes, flops);
  st.counters["tok/s"] = benchmark::Counter(1, benchmark::Counter::kIsIterationInvariantRate);
}

void bm_model_prompt(benchmark::State& st, Kind kind) {
  set_num_threads(int(st.range(1)));
  const int64_t n = st.range(0);
  std::vector<Weights> layer;
  for (const Shape& s : kLayer) layer.push_back(make_weights(kind, s, 1));
  const std::vector<float> x = activations(n, 5632);
  std::vector<float> y(size_t(n * 5632));
  double flops = 0;
  for (const Weights& w : layer) flops += 2.0 * double(n * w.out * w.in);
  for (auto _ : st) {
    for (const Weights& w : layer) w.run(x.data(), n, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  set_counters(st, 0, flops);
  st.counters["tok/s"] =
      benchmark::Counter(double(n) / kLayers, benchmark::Counter::kIsIterationInvariantRate);
}

void bm_bandwidth(benchmark::State& st) {
  double gbs = 0;
  for (auto _ : st) gbs = measure_memory_bandwidth_gbs(int(st.range(0)));
  st.counters["GB/s"] = gbs;
}

int register_all() {
  using benchmark::RegisterBenchmark;
  const Kind decode_kinds[] = {Kind::W4A8, Kind::W4A16, Kind::F16, Kind::BF16, Kind::F32};
  std::vector<Shape> shapes(std::begin(kLayer), std::end(kLayer));
  shapes.erase(shapes.begin() + 2);  // v has k's shape
  shapes.erase(shapes.begin() + 2);  // o has q's shape
  shapes.erase(shapes.begin() + 3);  // up has gate's shape
  shapes.push_back(kHead);
  RegisterBenchmark("memory_bandwidth", bm_bandwidth)
      ->ArgName("threads")
      ->Arg(1)
      ->Arg(2)
      ->Iterations(1)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  for (Kind k : decode_kinds)
    for (const Shape& s : shapes)
      RegisterBenchmark((std::string("decode/") + kind_name(k) + "/" + s.name).c_str(), bm_decode,
                        k, s)
          ->ArgName("threads")
          ->Arg(1)
          ->Arg(2)
          ->Unit(benchmark::kMicrosecond)
          ->MinTime(0.3)
          ->UseRealTime();
  for (Kind k : {Kind::W4A8, Kind::W4A16, Kind::F16, Kind::F32})
    for (const Shape& s : shapes)
      RegisterBenchmark((std::string("prompt/") + kind_name(k) + "/" + s.name).c_str(), bm_prompt,
                        k, s)
          ->ArgNames({"n", "threads"})
          ->Args({512, 1})
          ->Args({512, 2})
          ->Args({64, 1})
          ->Unit(benchmark::kMillisecond)
          ->MinTime(0.3)
          ->UseRealTime();
  for (Kind k : {Kind::W4A8, Kind::W4A16, Kind::F16})
    RegisterBenchmark((std::string("model_decode/") + kind_name(k)).c_str(), bm_model_decode, k)
        ->ArgName("threads")
        ->Arg(1)
        ->Arg(2)
        ->Unit(benchmark::kMillisecond)
        ->MinTime(2.0)
        ->UseRealTime();
  for (Kind k : {Kind::W4A8, Kind::W4A16, Kind::F16, Kind::F32})
    RegisterBenchmark((std::string("model_prompt/") + kind_name(k)).c_str(), bm_model_prompt, k)
        ->ArgNames({"n", "threads"})
        ->Args({512, 1})
        ->Args({512, 2})
        ->Unit(benchmark::kMillisecond)
        ->MinTime(1.0)
        ->UseRealTime();
  return 0;
}

const int registered = register_all();

}  // namespace
