#include "kernels/bandwidth.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "base/error.h"
#include "base/sysinfo.h"
#include "kernels/gemm.h"
#include "kernels/kernel_table.h"
#include "kernels/weight_memory.h"

namespace awq::kernels {

// The probe runs its own threads instead of awq::parallel_for: it must use exactly `threads`
// threads, whatever the size of the process-wide pool, and each thread must stream one long
// contiguous slice (as a decode kernel does), not many small chunks.
BandwidthProbe::BandwidthProbe(int threads, int64_t buffer_bytes) : threads_(std::max(1, threads)) {
  if (buffer_bytes <= 0) {
    const char* env = std::getenv("AWQ_BW_BYTES");
    buffer_bytes = env ? std::atoll(env) : (int64_t(1) << 30);
  }
  per_thread_ = std::max<int64_t>(buffer_bytes / threads_ / 4096, 1) * 1024;  // floats
  floats_ = per_thread_ * threads_;
  // The same kind of memory as the weights the decode kernels stream (huge pages where granted),
  // so that the roofline compares like with like.
  buf_ = alloc_weight_bytes(size_t(floats_) * 4);
  measure(1);  // faults the pages in: the first read of a fresh buffer is not a bandwidth
}

double BandwidthProbe::measure(int passes) const {
  const float* p = reinterpret_cast<const float*>(buf_.get());
  const auto& k = detail::active_table();
  std::vector<double> gbs;
  std::atomic<float> sink{0.0f};
  for (int run = 0; run < std::max(1, passes); ++run) {
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads_; ++t) {
      pool.emplace_back([&, t] {
        const float* slice = p + t * per_thread_;
        ready.fetch_add(1);
        while (!go.load(std::memory_order_acquire)) {
        }
        const float s = k.sum_f32(slice, per_thread_);
        float cur = sink.load();
        while (!sink.compare_exchange_weak(cur, cur + s)) {
        }
      });
    }
    while (ready.load() < threads_) std::this_thread::yield();
    const auto t0 = std::chrono::steady_clock::now();
    go.store(true, std::memory_order_release);
    for (auto& th : pool) th.join();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    gbs.push_back(double(floats_) * 4 / dt / 1e9);
  }
  std::sort(gbs.begin(), gbs.end());
  return gbs[gbs.size() / 2];
}

double measure_memory_bandwidth_gbs(int threads, int64_t buffer_bytes) {
  return BandwidthProbe(threads, buffer_bytes).measure(5);
}

double measure_sgemm_gflops() {
  const int64_t n = 1024;
  std::vector<float> a(size_t(n * n)), b(size_t(n * n)), c(size_t(n * n));
  for (size_t i = 0; i < a.size(); ++i) {
    a[i] = float(int(i % 17) - 8) * 0.01f;
    b[i] = float(int(i % 13) - 6) * 0.01f;
  }
  double best = 1e30;
  for (int rep = 0; rep < 3; ++rep) {
    Timer t;
    gemm_f32(a.data(), n, b.data(), n, n, nullptr, c.data());
    best = std::min(best, t.seconds());
  }
  return 2.0 * double(n) * double(n) * double(n) / best / 1e9;
}

}  // namespace awq::kernels
