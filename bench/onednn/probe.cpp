// Not part of the build: the measurement that chose own AVX512-BF16 kernels over oneDNN for the
// scale search's bf16 products (README, "Quantization speed"). oneDNN (Debian's libdnnl-dev) is
// not a dependency of awq.cpp; to repeat the measurement:
//
//   apt-get install libdnnl-dev
//   g++ -O2 -std=c++20 bench/onednn/probe.cpp -ldnnl -o /tmp/onednn_probe
//   OMP_NUM_THREADS=1 ONEDNN_VERBOSE=1 /tmp/onednn_probe 4096 2048 2048
//
// One search product as the search needs it: x [n, in] and W [out, in] arrive in f32 on every
// call (W is a fresh candidate each time), so the f32 -> bf16 reorders count, then y = x W^T in
// f32. Prints GFLOP/s of the whole call (median of 5) and of the matmul alone, and the f32
// matmul for comparison.
#include <algorithm>
#include <bit>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <dnnl.hpp>
#include <vector>

using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;

static double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int main(int argc, char** argv) {
  const int64_t n = argc > 1 ? atoll(argv[1]) : 4096, out = argc > 2 ? atoll(argv[2]) : 2048,
                in = argc > 3 ? atoll(argv[3]) : 2048;
  engine eng(engine::kind::cpu, 0);
  stream s(eng);
  std::vector<float> x(size_t(n * in)), w(size_t(out * in)), y(size_t(n * out));
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(i % 97) * 0.01f - 0.5f;
  for (size_t i = 0; i < w.size(); ++i) w[i] = float(i % 89) * 0.001f - 0.04f;
  const double flops = 2.0 * double(n) * double(out) * double(in);
  for (bool bf16 : {false, true}) {
    const dt d = bf16 ? dt::bf16 : dt::f32;
    memory::desc xd({n, in}, d, tag::ab), wd({in, out}, d, tag::any),
        yd({n, out}, dt::f32, tag::ab);
    matmul::primitive_desc pd(matmul::desc(xd, wd, yd), eng);
    memory xf({{n, in}, dt::f32, tag::ab}, eng, x.data());
    memory wf({{in, out}, dt::f32, tag::ba}, eng, w.data());  // W^T as [in, out], column-major
    memory ym(pd.dst_desc(), eng, y.data());
    memory xm(pd.src_desc(), eng), wm(pd.weights_desc(), eng);
    reorder rx(xf, xm), rw(wf, wm);
    matmul mm(pd);
    std::vector<double> whole, mat;
    for (int rep = 0; rep < 6; ++rep) {
      const double t0 = now();
      rx.execute(s, xf, xm);
      rw.execute(s, wf, wm);
      s.wait();
      const double t1 = now();
      mm.execute(s, {{DNNL_ARG_SRC, xm}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DST, ym}});
      s.wait();
      const double t2 = now();
      if (rep > 0) {
        whole.push_back(flops / (t2 - t0) * 1e-9);
        mat.push_back(flops / (t2 - t1) * 1e-9);
      }
    }
    std::sort(whole.begin(), whole.end());
    std::sort(mat.begin(), mat.end());
    // A hash of y's bits: compare it between OMP_NUM_THREADS=1 and 2 (awq.cpp's products give
    // the same bits for any thread count).
    uint64_t h = 1469598103934665603ull;
    for (float v : y) h = (h ^ std::bit_cast<uint32_t>(v)) * 1099511628211ull;
    std::printf(
        "%s n=%ld out=%ld in=%ld: %.1f GFLOP/s with reorders, %.1f matmul alone (%s), "
        "y hash %016lx\n",
        bf16 ? "bf16" : "f32 ", long(n), long(out), long(in), whole[2], mat[2], pd.impl_info_str(),
        (unsigned long)h);
  }
}
