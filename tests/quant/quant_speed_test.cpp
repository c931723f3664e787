// Speed of the quantizer's hot paths on a TinyLlama-sized MLP weight (2048 x 5632, t = 512).
// Disabled by default (it measures, it does not check); run with
//   test_quant --gtest_also_run_disabled_tests --gtest_filter='QuantSpeed.*'
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "base/sysinfo.h"
#include "base/thread_pool.h"
#include "quant/clip_search.h"
#include "quant/group_kernels.h"
#include "quant/quantize.h"
#include "quant_reference.h"

namespace awq {
namespace {

TEST(QuantSpeed, DISABLED_FakeQuantizeAndClipSearch2048x5632) {
  const int64_t out = 2048, in = 5632, t = 512;
  const std::vector<float> w = test::random_weights(out, in, 1);
  const std::vector<float> x = test::random_inputs(t, in, 2);
  const QuantSpec spec;  // 4 bits, g128, zero point
  std::printf("threads %d, cpu %s\n", num_threads(), cpu_name().c_str());
  for (const qk::KernelTable* k : qk::usable_kernels()) {
    qk::override_kernels(k);
    std::vector<float> fq = w;
    double fq_s = 1e9;  // best of 5: the machine is shared
    for (int r = 0; r < 5; ++r) {
      fq = w;
      Timer tm;
      fake_quantize(fq.data(), out, in, spec);
      fq_s = std::min(fq_s, tm.seconds());
    }
    Timer tc;
    const ClipChoice mv = search_clip(w.data(), out, in, x.data(), t, spec);
    const double clip_s = tc.seconds();
    // Objective work as the reference does it: 10 candidates x out x t x in multiply-adds.
    const double ref_gmac = 10.0 * out * t * in / 1e9;
    std::printf(
        "%-8s fake_quantize %.1f ms (%.2f Gweights/s) | search_clip %.3f s "
        "(reference-equivalent %.0f GMAC/s)\n",
        k->name, fq_s * 1e3, out * in / fq_s / 1e9, clip_s, ref_gmac / clip_s);
    EXPECT_EQ(mv.hi.size(), size_t(out * in / 128));
  }
  qk::override_kernels(nullptr);
}

}  // namespace
}  // namespace awq
