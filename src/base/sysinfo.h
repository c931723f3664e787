// What the process and the machine report about themselves: peak RSS, wall time, CPU features.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace awq {

int64_t peak_rss_bytes();     // VmHWM from /proc/self/status
int64_t current_rss_bytes();  // VmRSS

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false, avx512f = false, avx512bw = false, avx512vl = false,
       avx512vnni = false, avx512dq = false;
  // AVX512_BF16 (vcvtne2ps2bf16, vdpbf16ps): Cooper Lake, Sapphire Rapids, Zen 4.
  bool avx512bf16 = false;
};
const CpuFeatures& cpu_features();
std::string cpu_name();

class Timer {
 public:
  Timer() : t0_(std::chrono::steady_clock::now()) {}
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }
  void reset() { t0_ = std::chrono::steady_clock::now(); }

 private:
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace awq
