// Internal to the quant layer: the quantizer's hot loops, compiled once per instruction set
// (group_kernels_{generic,avx2,avx512}.cpp from group_kernels_impl.inc) and chosen once at run
// time. The scalar per-group arithmetic (scale, zero) lives in one baseline function that every
// variant calls, so all variants produce the same codes; only the clip objective may differ in its
// last bits between variants with and without FMA.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace awq::qk {

// Scale and zero of one group, from the group's min and max (AutoAWQ pseudo_quantize_tensor, the
// scale rounded to f16 when f16_scale). zero is integer-valued. scale is +inf when it overflows
// f16 (with f16_scale).
struct GroupParams {
  float scale;
  float zero;
};
GroupParams group_params(float minv, float maxv, int bits, bool zero_point, bool f16_scale = true);

// Outcome of quantize_rows: the first row (in the job) that failed, and why.
struct RowsStatus {
  int64_t row = -1;
  int kind = 0;  // 0 ok, 1 non-finite weight, 2 scale overflows f16
};

// Quantize rows [0, rows) of w [rows, in] in groups of `group`. Outputs are optional (nullptr);
// `deq` may alias `w` (fake quantization in place). Stops at the first bad group.
struct RowsJob {
  const float* w = nullptr;
  int64_t rows = 0, in = 0;
  int group = 0, bits = 4;
  bool zero_point = true;
  bool f16_scale = true;
  uint8_t* codes = nullptr;  // [rows, in]
  float* deq = nullptr;      // [rows, in]
  float* scales = nullptr;   // [rows, in/group]
  uint8_t* zeros = nullptr;  // [rows, in/group]
};

// Clip search for one batch of rows. For group k the objective of a correction d (length
// `group`) is ||A_k d||^2 where A_k has a_rows rows starting at a[k], row stride a_stride; when
// `triangular`, row i of A_k is zero before column i.
struct ClipJob {
  const float* w = nullptr;
  int64_t out = 0, in = 0;
  int group = 0, bits = 4;
  bool zero_point = true;
  bool f16_scale = true;
  int n_cand = 0;  // candidates m = m0 * shrink[c], c = 0..n_cand-1, shrink[0] = 1
  const float* shrink = nullptr;
  const float* const* a = nullptr;
  int64_t a_rows = 0, a_stride = 0;
  bool triangular = false;
};

// Rows the Gram kernel converts and multiplies at a time (256 x 128 doubles = 256 KiB at most for
// the factored form's groups: the chunk stays in L2 across all the tiles instead of streaming all
// rows from memory once per tile).
inline constexpr int64_t kGramChunkTokens = 256;

struct KernelTable {
  const char* name;
  int lanes;  // rows per clip batch
  RowsStatus (*quantize_rows)(const RowsJob&);
  size_t (*clip_scratch_floats)(const ClipJob&);
  // Rows [row0, min(row0 + lanes, out)): writes max_val[row * n_groups + k].
  void (*clip_batch)(const ClipJob&, int64_t row0, float* scratch, float* max_val);
  // Upper triangle (b >= a) of G[a][b] = sum_t x[t*ld + a] * x[t*ld + b], a, b < g, in double:
  // each chunk of kGramChunkTokens rows summed on its own, the chunk sums added into G (zeroed
  // first) in chunk order. So the sum of the calls on each chunk, added in chunk order, has the
  // same bits as one call on all of them (what a parallel split relies on).
  size_t (*gram_scratch_doubles)(int64_t t, int g);
  void (*gram)(const float* x, int64_t t, int64_t ld, int g, double* scratch, double* G);
};

const KernelTable& kernels();  // the best this CPU runs, capped by AWQ_ISA; see override below
// Tests and benchmarks: make kernels() return `t` (nullptr: back to the best). Not to be called
// while a quantization runs.
void override_kernels(const KernelTable* t);
// "generic", "avx2" or "avx512"; nullptr when this CPU cannot run it.
const KernelTable* kernels_named(const char* name);
// All the variants this CPU runs, generic first.
std::vector<const KernelTable*> usable_kernels();

// Defined by the per-ISA files.
const KernelTable& generic_table();
const KernelTable& avx2_table();
const KernelTable& avx512_table();

}  // namespace awq::qk
