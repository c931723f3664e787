#include "base/sysinfo.h"

#include <cpuid.h>

#include <fstream>
#include <string>

namespace awq {

static int64_t proc_status_kb(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::string k = key;
  while (std::getline(in, line)) {
    if (line.compare(0, k.size(), k) == 0) return std::stoll(line.substr(k.size() + 1)) * 1024;
  }
  return 0;
}

int64_t peak_rss_bytes() {
  return proc_status_kb("VmHWM");
}
int64_t current_rss_bytes() {
  return proc_status_kb("VmRSS");
}

static CpuFeatures detect() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & bit_OSXSAVE;
  f.fma = c & bit_FMA;
  f.f16c = c & bit_F16C;
  uint64_t xcr0 = 0;
  if (osxsave) {
    unsigned lo, hi;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    xcr0 = (uint64_t(hi) << 32) | lo;
  }
  const bool ymm = (xcr0 & 0x6) == 0x6;
  const bool zmm = (xcr0 & 0xe6) == 0xe6;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
    f.avx2 = ymm && (b & bit_AVX2);
    f.avx512f = zmm && (b & bit_AVX512F);
    f.avx512bw = zmm && (b & bit_AVX512BW);
    f.avx512vl = zmm && (b & bit_AVX512VL);
    f.avx512dq = zmm && (b & bit_AVX512DQ);
    f.avx512vnni = zmm && (c & bit_AVX512VNNI);
    // Leaf 7 sub-leaf 1 exists when sub-leaf 0 reports it (eax = highest sub-leaf).
    unsigned a1, b1, c1, d1;
    if (a >= 1 && __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1))
      f.avx512bf16 = f.avx512f && (a1 & bit_AVX512BF16);
  }
  f.fma = f.fma && ymm;
  f.f16c = f.f16c && ymm;
  return f;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

std::string cpu_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto p = line.find(':');
      return p == std::string::npos ? line : line.substr(p + 2);
    }
  }
  return "unknown";
}

}  // namespace awq
