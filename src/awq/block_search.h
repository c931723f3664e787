// The AWQ work on one decoder block, as separate steps so that the pipeline, --load-search and
// the tests compose them: search the scales of every group on the unmodified block, fold them,
// search and apply clipping, quantize. The inspected forwards are the model's own block code
// (attention_forward, mlp_forward, Linear::forward): what is calibrated is what runs.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "awq/search_result.h"
#include "base/row_source.h"
#include "model/block.h"
#include "quant/clip_search.h"
#include "quant/quant_spec.h"
#include "quant/quantized_matrix.h"

namespace awq {

// Input of a linear in the capture (q, k, v share the normed attention input; gate, up the MLP's).
const Mat& capture_input(const BlockCapture& cap, LinearRole r);
Mat& capture_input(BlockCapture& cap, LinearRole r);

// Whether a scaling group applies to this block (v→o needs v's output width == o's input width).
bool group_applies(const ScalingGroup& g, const BlockWeights& w);

struct ScaleSearchOptions {
  QuantSpec spec;
  ScaleMode mode = ScaleMode::Both;
  // Score candidates concurrently (each forward then runs on one thread). Chosen by the pipeline
  // from the working-set size; the results are identical either way.
  bool parallel_candidates = false;
  // Score each candidate with the clipping it would get (clip search on W·s and the sampled x/s
  // inside the loop, for the linears that are clipped) instead of plain Q(W·s)/s: the loss then
  // measures the weights that are actually written, and the identity candidate is RTN with
  // clipping. Off: the reference's objective. On stories260K it lowered perplexity in 5 of 6
  // settings (by 1-2%); it costs one clip search per candidate and clipped linear.
  bool clip_aware = false;
  ClipOptions clip_opts;
  // Tokens the clip objective samples (every k-th); <= 0: all of them for groups up to 1024
  // wide (the Gram form's cost does not grow with tokens), 512 for wider groups.
  int64_t clip_tokens = 0;
  int n_grid = 20;  // α = i / n_grid, i = 0 .. n_grid-1, per mode
  // Screening (see search_scales_screened): every candidate is first scored on `screen_seqs`
  // calibration sequences (every k-th), then the `finalists` best and the identity on all of
  // them (in two halves: `keep`). 0, or a value >= the number of sequences: every candidate on
  // all the data.
  int64_t screen_seqs = 0;
  int finalists = 4;
  // After screening, the finalists are scored on the first half of the sequences and only the
  // `keep` best (and the identity) on the second (SplitLoss). 0: every finalist on all the data.
  int keep = 3;
  // Groups (by name) left unsearched and unscaled in every block: the architecture's groups that
  // are off by default and those the user turned off (QuantizeOptions::groups_off).
  std::vector<std::string> skip_groups;
  // The candidates' forwards multiply in bfloat16 with f32 sums (--search-precision bf16, where
  // kernels::bf16_products_available()); the reference output stays f32 (the captured one).
  bool bf16_products = false;
  // The searched group's per-channel mean |x| when computed elsewhere: from the f32 input before
  // it was rounded to 16 bits (kept_capture.h). Null: from the captured input.
  const std::vector<float>* x_mean = nullptr;
  // The searched group's input when the capture does not hold it in f32 (kept_capture.h): read a
  // few sequences at a time, never whole. Needs x_mean; only for a call that searches one group.
  const RowSource* input = nullptr;
  int64_t stream_chunk_bytes = int64_t(256) << 20;  // f32 bytes of it read at a time
};

// Searches the scales of every group of `arch` on the unmodified block `w` with the captured
// inputs (awq-spec §1.9). Every candidate is built from `w`, which is never modified.
std::vector<GroupResult> search_block_scales(const ModelConfig& cfg, const Architecture& arch,
                                             int64_t layer, const BlockWeights& w,
                                             const BlockCapture& cap, int64_t n_seq, int64_t T,
                                             const ScaleSearchOptions& opt);

// Folds each applied group's scales (in table order): 1/s into the norm or the previous linear's
// last rows (and bias), s into the consumers' columns; divides the captured inputs by s when
// `cap` is given (so the clip search sees the scaled activations). Checks that no weight became
// NaN or infinite.
void apply_block_scales(const Architecture& arch, int64_t layer, BlockWeights& w, BlockCapture* cap,
                        const std::vector<GroupResult>& groups);

// Clip search for every linear not in arch.clip_skip, on ~n_tokens rows of its (scaled) captured
// input taken with stride max(1, rows / n_tokens) (AutoAWQ: 512); n_tokens <= 0: as
// ScaleSearchOptions::clip_tokens.
std::vector<ClipResult> search_block_clips(const Architecture& arch, int64_t layer,
                                           const BlockWeights& w, const BlockCapture& cap,
                                           const QuantSpec& spec, const ClipOptions& copt,
                                           int64_t n_tokens = 0);

// Clamps each clipped linear's groups to the bounds of its chosen candidate (apply_clip, computed
// on the group's current weights); fills the clip statistics of `clips`.
void apply_block_clips(BlockWeights& w, std::vector<ClipResult>& clips, const QuantSpec& spec,
                       int n_grid);
// The statistics of a clip table (mean shrink, fraction of groups clipped) without applying it.
void fill_clip_stats(ClipResult& c, int n_grid);

// Building blocks the MoE search (moe_search.h) shares with the dense one.
// A Linear that reads another's f32 weight without copying it; with bf16_products, its products
// round x and W to bfloat16 (Linear::bf16_products).
Linear borrow(const Linear& l, bool bf16_products = false);
// Q(W·s)/s from the untouched original; with `xs` (sampled inputs already divided by s) W·s is
// first clipped as the clip search would clip it.
Linear scaled_fake_quant(const Linear& orig, const std::vector<float>& s, const QuantSpec& spec,
                         const std::string& name, const ClipInputs* xs, const ClipOptions& copt);
// Every stride-th row of x (stride max(1, rows / n_tokens)); x itself when the stride is 1.
const Mat& sample_rows(const Mat& x, int64_t n_tokens, Mat& storage);
// The clip objective's matrices of the rows sample_rows would take, read from `x` without
// holding it whole in f32 (sampled rows go to `storage`; all of them: the per-group Gram matrices
// are summed a chunk of rows at a time).
ClipInputs prepare_clip_rows(const RowSource& x, int64_t n_tokens, const QuantSpec& spec,
                             const std::string& tensor, Mat& storage);
// How many tokens the clip search samples for groups of `group` inputs (see clip_tokens).
int64_t clip_sample_tokens(int64_t requested, int64_t group);
// The clip search of one linear on prepared inputs, as a table of shrink indices (role unset).
ClipResult search_linear_clip(const Linear& l, const ClipInputs& in, const QuantSpec& spec,
                              const ClipOptions& copt, const std::string& name);
// Clamps l's groups as `c` says and fills c's statistics; errors name `name`.
void apply_linear_clip(Linear& l, ClipResult& c, const QuantSpec& spec, int n_grid,
                       const std::string& name);

// The FLOPs of one forward of a group's inspected module on n_seq × T tokens.
double inspect_flops(const ModelConfig& cfg, InspectKind kind, LinearRole first, int64_t n_seq,
                     int64_t T);

// Zero-pads the MLP's intermediate width to `width` (gate/up get zero rows and bias, down zero
// columns): the block computes exactly the same function.
void pad_intermediate(BlockWeights& w, int64_t width);

}  // namespace awq
