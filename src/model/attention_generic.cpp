// The attention core for generic (see attention_kernels.inc).
#define AWQ_ATTN_NS generic
#include "model/attention_kernels.inc"
