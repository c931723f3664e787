// The bandwidth probe: its summing loop on every ISA against a plain sum (ragged lengths
// included), and the probe's result on a small buffer with 1 and 2 threads.
#include "kernels/bandwidth.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernel_test_util.h"
#include "kernels/kernel_table.h"
#include "kernels/weight_memory.h"

namespace awq::kernels {
namespace {

using test::IsaGuard;

TEST(Bandwidth, ProbeLoopSumsOnEveryIsa) {
  IsaGuard guard;
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> v(-8, 8);
  const int64_t n_max = 4096 + 37;
  const std::shared_ptr<uint8_t> buf = alloc_weight_bytes(size_t(n_max) * 4);
  float* p = reinterpret_cast<float*>(buf.get());
  // Small integers: every partial sum is exact in f32, so any order gives the same value.
  for (int64_t i = 0; i < n_max; ++i) p[i] = float(v(rng));
  for (Isa isa : available_isas()) {
    force_isa(isa);
    for (int64_t n : {int64_t(0), int64_t(1), int64_t(7), int64_t(31), int64_t(64), int64_t(65),
                      int64_t(1000), int64_t(1024), n_max}) {
      double want = 0;
      for (int64_t i = 0; i < n; ++i) want += p[i];
      EXPECT_EQ(double(detail::active_table().sum_f32(p, n)), want) << isa_name(isa) << " n=" << n;
    }
  }
}

TEST(Bandwidth, ProbeReportsAFiniteRateForOneAndTwoThreads) {
  for (int threads : {1, 2}) {
    const double gbs = measure_memory_bandwidth_gbs(threads, int64_t(8) << 20);
    EXPECT_TRUE(std::isfinite(gbs)) << threads;
    EXPECT_GT(gbs, 0.1) << threads;  // any machine reads 8 MiB faster than 0.1 GB/s
  }
}

}  // namespace
}  // namespace awq::kernels
