// The attention core for avx512 (see attention_kernels.inc).
#define AWQ_ATTN_NS avx512
#include "model/attention_kernels.inc"
