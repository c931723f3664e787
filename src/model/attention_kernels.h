// The causal attention core and the SwiGLU/GeGLU activations, compiled once per instruction set
// (attention_{generic,avx2,avx512}.cpp include attention_kernels.inc with different flags) and
// chosen at run time with the kernels layer's ISA (kernels::active_isa(), so AWQ_ISA and force_isa
// apply here too). Internal to the model layer: callers use attend_causal and attend_cached
// (model/ops.h).
#pragma once
#include <cstdint>

namespace awq::model_detail {

struct AttnArgs {
  const float* q;  // [nq, ldq]: this head's queries
  int64_t ldq, nq, p0;
  const float* k;  // [p0 + nq, ldkv]: this head's keys (already offset to the head's columns)
                   // or, with k_tiled, its tiles
  const float* v;
  int64_t ldkv, hd;
  float scale;
  float* out;  // [nq, ldo]
  int64_t ldo;
  // Query heads sharing these keys/values (grouped-query attention). With heads > 1, nq is 1 and
  // head h's query and output are at q + h * hd and out + h * hd.
  int64_t heads = 1;
  // Keys in the KV cache's tiles (KvCache): position j's key element d at
  // k[(j / 16) * 16 * hd + d * 16 + j % 16] (ldkv applies to v only).
  bool k_tiled = false;
  // AttnVariant: query position i sees keys i - window < j <= i (window 0: all j <= i); scores
  // s = q·k·scale become softcap·tanh(s / softcap) (softcap 0: unchanged).
  int64_t window = 0;
  float softcap = 0;
};

namespace generic {
void attend(const AttnArgs& a);
void swiglu(float* gate, const float* up, int64_t n);
void geglu(float* gate, const float* up, int64_t n);
}  // namespace generic
namespace avx2 {
void attend(const AttnArgs& a);
void swiglu(float* gate, const float* up, int64_t n);
void geglu(float* gate, const float* up, int64_t n);
}  // namespace avx2
namespace avx512 {
void attend(const AttnArgs& a);
void swiglu(float* gate, const float* up, int64_t n);
void geglu(float* gate, const float* up, int64_t n);
}  // namespace avx512

}  // namespace awq::model_detail
