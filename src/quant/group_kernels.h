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

// The interval a clip candidate clamps a group to, from the group's min and max. Symmetric
// (lo_shrink < 0; AutoAWQ's only kind): ±m0·hi_shrink with m0 = max|w|. Asymmetric: each side
// shrunk towards zero on its own, [min·lo_shrink, max·hi_shrink], which with a zero point can
// clip the outlying side of a lopsided group without touching the other. One baseline function,
// so that the search's kernels and the replay of a chosen candidate clamp to the same floats.
struct ClipBounds {
  float lo, hi;
};
ClipBounds clip_bounds(float minv, float maxv, float lo_shrink, float hi_shrink);

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
// `triangular`, row i of A_k is zero before column i. Candidate c clamps each group to
// clip_bounds(min, max, lo_shrink ? lo_shrink[c] : -1, shrink[c]).
struct ClipJob {
  const float* w = nullptr;
  int64_t out = 0, in = 0;
  int group = 0, bits = 4;
  bool zero_point = true;
  bool f16_scale = true;
  int n_cand = 0;  // candidates c = 0..n_cand-1; c = 0 must not clip (the fallback of ties)
  const float* shrink = nullptr;     // [n_cand] upper side (both sides when symmetric)
  const float* lo_shrink = nullptr;  // [n_cand] lower side; nullptr: symmetric candidates
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
  // Rows [row0, min(row0 + lanes, out)): writes the best candidate's index to
  // choice[row * n_groups + k] (ties keep the lower index).
  void (*clip_batch)(const ClipJob&, int64_t row0, float* scratch, int32_t* choice);
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
