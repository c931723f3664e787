// Run-time dispatch: one decision, made the first time a kernel runs.
//
// Why per-ISA source files and not Highway (or another portable SIMD library): the kernels that
// matter here are a handful of tight loops built around specific instructions (vpdpbusd for
// int4 x int8, vpermps as a 16-entry nibble -> float table, vcvtph2ps), whose shapes differ per
// ISA anyway (AVX2 has no 16-lane permute and no VNNI, so its w4a8 loop uses pmaddubsw/pmaddwd).
// Plain intrinsics in *_avx2.cpp / *_avx512.cpp, compiled with their own -m flags (CMakeLists),
// keep each loop readable next to its scalar reference, add no dependency beyond the compiler,
// and let the dispatch be a table of function pointers chosen once (CTranslate2 does the same).
//
// ODR caution for those files: an inline function or template from a header, instantiated in an
// AVX-512 file, may be the copy the linker keeps for the whole program, and would then crash a
// CPU without AVX-512. So the ISA files use only intrinsics, their own static helpers, and
// plain data from w4_layout.h; the tables are constant data (no code runs to pick one).
#include <atomic>
#include <cstdlib>
#include <string>

#include "base/error.h"
#include "base/sysinfo.h"
#include "kernels/kernel_table.h"

namespace awq::kernels {
namespace {

Isa detect_cpu() {
  const CpuFeatures& f = cpu_features();
  if (f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx512vnni && f.fma && f.f16c &&
      f.avx2)
    return Isa::Avx512;
  if (f.avx2 && f.fma && f.f16c) return Isa::Avx2;
  return Isa::Scalar;
}

Isa parse_env_cap(Isa best) {
  const char* env = std::getenv("AWQ_ISA");
  if (!env || !*env) return best;
  const std::string v = env;
  Isa cap;
  if (v == "scalar")
    cap = Isa::Scalar;
  else if (v == "avx2")
    cap = Isa::Avx2;
  else if (v == "avx512")
    cap = Isa::Avx512;
  else
    fail("AWQ_ISA='{}' is not one of scalar, avx2, avx512", v);
  return cap < best ? cap : best;  // a cap above what the CPU has means "the best it has"
}

std::atomic<int>& active_slot() {
  static std::atomic<int> slot{int(parse_env_cap(cpu_best_isa()))};
  return slot;
}

}  // namespace

Isa cpu_best_isa() {
  static const Isa best = detect_cpu();
  return best;
}

Isa active_isa() {
  return Isa(active_slot().load(std::memory_order_relaxed));
}

void force_isa(Isa isa) {
  AWQ_CHECK(int(isa) <= int(cpu_best_isa()), "cannot use ISA {}: this CPU supports at most {}",
            isa_name(isa), isa_name(cpu_best_isa()));
  active_slot().store(int(isa), std::memory_order_relaxed);
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar:
      return "scalar";
    case Isa::Avx2:
      return "avx2";
    case Isa::Avx512:
      return "avx512";
  }
  return "?";
}

std::vector<Isa> available_isas() {
  std::vector<Isa> v;
  for (int i = 0; i <= int(cpu_best_isa()); ++i) v.push_back(Isa(i));
  return v;
}

namespace detail {

const KernelTable& table(Isa isa) {
  switch (isa) {
    case Isa::Avx512:
      return kAvx512Table;
    case Isa::Avx2:
      return kAvx2Table;
    case Isa::Scalar:
      break;
  }
  return kScalarTable;
}

const KernelTable& active_table() {
  return table(active_isa());
}

}  // namespace detail
}  // namespace awq::kernels
