// The attention core for avx2 (see attention_kernels.inc).
#define AWQ_ATTN_NS avx2
#include "model/attention_kernels.inc"
