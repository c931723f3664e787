// What the AWQ search decided for a model, block by block: the scale vector of every scaling
// group and the clipping of every clipped linear. Saved with --save-search and replayed with
// --load-search (no calibration, no search: the same folding, clipping and quantization code runs,
// so the output is byte-identical to the run that saved it).
#pragma once
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "quant/clip_search.h"

#include "awq/scales.h"
#include "model/architecture.h"

namespace awq {

// Which feed-forward of a sparse layer a group or clip belongs to: a routed expert's index, or
// one of these.
inline constexpr int kNoExpert = -1;  // the dense block's groups, and MoE's shared "moe.gate_up"
inline constexpr int kSharedExpert = -2;  // Qwen2-MoE's shared expert

struct GroupResult {
  std::string name;  // the architecture's group name, "attn.qkv", ..., or "moe.*" (moe_search.h)
  int expert = kNoExpert;
  std::string prev;  // tensor that absorbed 1/s (for reports)
  std::vector<LinearRole> layers;
  bool applied = false;  // false: skipped (v→o under GQA) or not searched (RTN)
  ScaleCandidate choice;
  double loss = 0, rtn_loss = 0;
  std::vector<float> scales;  // s, one per input channel of the group's linears
  double flops = 0;           // arithmetic of the inspected forwards (all candidates)
};

// Clipping of one linear, as the indices of the chosen shrink per (output row, group)
// (clip_search.h): the clamp is ±max|w_group| · (1 − hi / n_grid), or with asymmetric bounds
// [min · (1 − lo / n_grid), max · (1 − hi / n_grid)]. Indices (not floats) keep the file small and
// make the replay exact: the bounds are recomputed from the same scaled weight with the same
// expression.
struct ClipResult {
  LinearRole role = LinearRole::V;  // Gate, Up or Down for an expert's linears
  int expert = kNoExpert;
  int64_t out = 0, n_groups = 0;
  ClipChoice choice;          // [out, n_groups] each; choice.lo empty when symmetric
  double mean_shrink = 1.0;   // mean of (1 − index / n_grid) over the sides
  double frac_clipped = 0.0;  // fraction of groups with an index > 0
};

// GPTQ's rounding of one linear (quant/gptq.h; --method gptq / awq-gptq): its output error on the
// calibration inputs, (w - q) G (w - q)^T averaged over sampled rows, with plain rounding and
// with GPTQ. Reported, not needed to replay a search.
struct GptqLinearResult {
  LinearRole role = LinearRole::Q;
  int expert = kNoExpert;
  double rtn_loss = 0, loss = 0;
  double damp = 0;   // damping used, as a fraction of the mean diagonal
  int64_t dead = 0;  // input channels that never fired
};

struct BlockResult {
  int64_t layer = 0;
  std::vector<GroupResult> groups;
  std::vector<ClipResult> clips;
  // A sparse layer's feed-forward (moe_search.h): its groups and clips, and how many calibration
  // tokens each routed expert received (empty when not searched here).
  std::vector<GroupResult> moe_groups;
  std::vector<ClipResult> moe_clips;
  std::vector<int64_t> expert_tokens;
  std::vector<GptqLinearResult> gptq;
};

struct SearchHeader {
  std::string model_type;
  int64_t num_layers = 0, hidden_size = 0, intermediate_size = 0;  // after --pad-intermediate
  int bits = 4, group_size = 128;
  bool zero_point = true;
  bool f16_scales = true;
  int clip_grid = 20;
};

// JSON: {"awq_cpp_search": 1, header fields, "layers": [{"layer", "scales": [{"group", "prev",
// "choice", "duo", "alpha", "loss", "rtn_loss", "s": [...]}], "clips": [{"linear", "out",
// "groups", "shrink": "0120..." (one base-36 digit per group, row-major)}]}]}.
void save_search(const std::string& path, const SearchHeader& h,
                 const std::vector<BlockResult>& blocks);
// Reads a file written by save_search and checks it against `expect` (same model shape and
// quantizer settings); every mismatch is an awq::Error naming the file and the field.
std::vector<BlockResult> load_search(const std::string& path, const SearchHeader& expect,
                                     const Architecture& arch);

// One "layers" entry of the file. `full` also keeps what only reports show (groups that were not
// applied, the search's arithmetic, expert token counts): the resume stage (resume.h) stores blocks
// this way. block_from_json reads either form; a malformed entry is an awq::Error naming `path`
// (or a json exception, which callers turn into one).
nlohmann::ordered_json block_to_json(const BlockResult& b, bool full);
BlockResult block_from_json(const nlohmann::ordered_json& l, const SearchHeader& h,
                            const Architecture& arch, const std::string& path);

}  // namespace awq
