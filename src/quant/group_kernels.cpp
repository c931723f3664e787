#include "quant/group_kernels.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "base/error.h"
#include "base/half.h"
#include "base/sysinfo.h"

namespace awq::qk {

GroupParams group_params(float minv, float maxv, int bits, bool zero_point, bool f16_scale) {
  auto rounded = [&](float s) { return f16_scale ? round_to_f16(s) : s; };
  if (!zero_point) {
    const float absmax = std::max(maxv, -minv);
    const float scale = rounded(std::max(absmax, 1e-5f) / float((1 << (bits - 1)) - 1));
    return {scale, float(1 << (bits - 1))};
  }
  const int maxq = (1 << bits) - 1;
  const float scale = rounded(std::max(maxv - minv, 1e-5f) / float(maxq));
  // -round(min / scale), clamped. The clamp to +-2^20 first keeps the conversion defined and
  // cannot change the result (the zero is clamped to [0, 255] anyway).
  const float y = std::clamp(minv / scale, -1048576.0f, 1048576.0f);
  const int zero = std::clamp(-int(std::nearbyint(y)), 0, maxq);
  return {scale, float(zero)};
}

ClipBounds clip_bounds(float minv, float maxv, float lo_shrink, float hi_shrink) {
  if (lo_shrink < 0.0f) {
    const float m = std::max(maxv, -minv) * hi_shrink;
    return {-m, m};
  }
  return {minv * lo_shrink, maxv * hi_shrink};
}

namespace {

bool usable(const KernelTable& t) {
  const CpuFeatures& f = cpu_features();
  if (std::strcmp(t.name, "avx512") == 0)
    return f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx2 && f.fma && f.f16c;
  if (std::strcmp(t.name, "avx2") == 0) return f.avx2 && f.fma && f.f16c;
  return true;
}

}  // namespace

std::vector<const KernelTable*> usable_kernels() {
  std::vector<const KernelTable*> out;
  for (const KernelTable* t : {&generic_table(), &avx2_table(), &avx512_table()}) {
    if (usable(*t)) out.push_back(t);
  }
  return out;
}

const KernelTable* kernels_named(const char* name) {
  for (const KernelTable* t : usable_kernels()) {
    if (std::strcmp(t->name, name) == 0) return t;
  }
  return nullptr;
}

namespace {

std::atomic<const KernelTable*> g_override{nullptr};

// The best variant, capped by AWQ_ISA (scalar, avx2, avx512) as the kernels layer reads it, so
// one variable pins the whole program's instruction set.
const KernelTable* pick() {
  const std::vector<const KernelTable*> usable = usable_kernels();
  const char* env = std::getenv("AWQ_ISA");
  if (!env || !*env) return usable.back();
  const std::string v = env;
  AWQ_CHECK(v == "scalar" || v == "avx2" || v == "avx512",
            "AWQ_ISA='{}' is not one of scalar, avx2, avx512", v);
  const KernelTable* chosen = usable.front();
  for (const KernelTable* t : usable) {
    if (v == "avx512" || (v == "avx2" && std::strcmp(t->name, "avx2") == 0)) chosen = t;
  }
  return chosen;
}

}  // namespace

void override_kernels(const KernelTable* t) {
  g_override.store(t);
}

const KernelTable& kernels() {
  static const KernelTable* best = pick();
  const KernelTable* o = g_override.load(std::memory_order_relaxed);
  return o ? *o : *best;
}

}  // namespace awq::qk
