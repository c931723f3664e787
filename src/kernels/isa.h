// Which SIMD instruction set the kernels use. The choice is made once, at the first call that needs
// it: the best the CPU supports, capped by the environment variable AWQ_ISA=scalar|avx2|avx512.
// Tests and benchmarks lower it with force_isa to run every variant on one machine.
#pragma once
#include <vector>

namespace awq::kernels {

// Ordered: a larger value needs more of the CPU.
//   Avx2:   AVX2 + FMA + F16C (Haswell and later, Zen 1 and later).
//   Avx512: AVX-512 F/BW/VL/DQ + VNNI (Ice Lake / Sapphire Rapids, Zen 4).
enum class Isa { Scalar = 0, Avx2 = 1, Avx512 = 2 };

Isa active_isa();
// Switches every kernel to `isa`; throws awq::Error when the CPU cannot run it. Not thread-safe
// against kernels running at the same moment: call it between kernel calls.
void force_isa(Isa isa);
const char* isa_name(Isa isa);
Isa cpu_best_isa();                 // the best this CPU can run, ignoring AWQ_ISA
std::vector<Isa> available_isas();  // Scalar .. cpu_best_isa(), in increasing order

}  // namespace awq::kernels
