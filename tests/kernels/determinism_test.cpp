// The same inputs give the same bits with 1 or 2 threads, for every kernel and every ISA
// (DESIGN.md: determinism). Shapes span many parallel chunks so the threads really interleave.
#include <gtest/gtest.h>

#include "base/half.h"
#include "base/thread_pool.h"
#include "kernel_test_util.h"

namespace awq::kernels::test {
namespace {

TEST(Determinism, OneAndTwoThreadsGiveIdenticalBits) {
  IsaGuard guard;
  const int saved_threads = num_threads();
  std::mt19937 rng(30);
  const int64_t out = 1000, in = 512;
  const W4Data d = random_w4(rng, out, in, 128, false);
  const W4Matrix m = W4Matrix::pack(d.source());
  const std::vector<float> wf = random_floats(rng, size_t(out * in), 0.05f);
  const Q8Matrix m8 = Q8Matrix::pack(wf.data(), Q8RowType::F32, out, in, "w");
  std::vector<uint16_t> wh(wf.size()), wb(wf.size());
  for (size_t i = 0; i < wf.size(); ++i) {
    wh[i] = f32_to_f16(wf[i]);
    wb[i] = f32_to_bf16(wf[i]);
  }
  const std::vector<float> bias = random_floats(rng, size_t(out));
  for (Isa isa : available_isas()) {
    force_isa(isa);
    for (int64_t n : {1, 4, 33}) {
      const std::vector<float> x = random_floats(rng, size_t(n * in));
      auto run_all = [&] {
        std::vector<float> y(size_t(6 * n * out));
        gemm_f32(x.data(), n, wf.data(), out, in, bias.data(), y.data());
        gemm_f16(x.data(), n, wh.data(), out, in, bias.data(), y.data() + n * out);
        gemm_bf16(x.data(), n, wb.data(), out, in, bias.data(), y.data() + 2 * n * out);
        gemm_w4a16(x.data(), n, m, bias.data(), y.data() + 3 * n * out);
        gemm_w4a8(x.data(), n, m, bias.data(), y.data() + 4 * n * out);
        gemm_q8a8(x.data(), n, m8, bias.data(), y.data() + 5 * n * out);
        return y;
      };
      set_num_threads(1);
      const std::vector<float> one = run_all();
      set_num_threads(2);
      const std::vector<float> two = run_all();
      ASSERT_EQ(one.size(), two.size());
      for (size_t i = 0; i < one.size(); ++i)
        ASSERT_EQ(std::bit_cast<uint32_t>(one[i]), std::bit_cast<uint32_t>(two[i]))
            << isa_name(isa) << " n=" << n << " kernel " << i / size_t(n * out) << " at "
            << i % size_t(n * out);
    }
  }
  set_num_threads(saved_threads);
}

}  // namespace
}  // namespace awq::kernels::test
