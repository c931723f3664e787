#include "awq/kept_capture.h"

#include <fmt/format.h>

#include <algorithm>

#include "awq/fold.h"
#include "awq/scales.h"
#include "base/error.h"

namespace awq {

ActMat& KeptCapture::input(LinearRole r) {
  switch (r) {
    case LinearRole::Q:
    case LinearRole::K:
    case LinearRole::V:
      return attn_in;
    case LinearRole::O:
      return o_in;
    case LinearRole::Gate:
    case LinearRole::Up:
      return mlp_in;
    case LinearRole::Down:
      return down_in;
  }
  return attn_in;
}

void keep_capture(BlockCapture& cap, KeptCapture& kept, int64_t layer) {
  cap.on_captured = [&cap, &kept, layer](Mat& m) {
    const auto keep = [&](LinearRole owner, const char* what) {
      kept.mean[int(owner)] = mean_abs_columns(m);
      kept.input(owner).put(std::move(m), fmt::format("layer {} {}", layer, what));
    };
    if (&m == &cap.attn_in) {
      keep(LinearRole::Q, "attention input (q/k/v_proj's)");
    } else if (&m == &cap.o_in) {
      keep(LinearRole::O, "o_proj input");
    } else if (&m == &cap.mlp_in) {
      keep(LinearRole::Gate, "MLP input (gate/up_proj's)");
    } else if (&m == &cap.down_in) {
      keep(LinearRole::Down, "down_proj input");
    }
    m = Mat();  // the outputs are dropped; a kept input's buffer is released
  };
}

namespace {

// The first role of each captured input, in kAllLinearRoles order, and the input a role reads.
constexpr LinearRole kInputOwners[] = {LinearRole::Q, LinearRole::O, LinearRole::Gate,
                                       LinearRole::Down};
LinearRole input_owner(LinearRole r) {
  switch (r) {
    case LinearRole::K:
    case LinearRole::V:
      return LinearRole::Q;
    case LinearRole::Up:
      return LinearRole::Gate;
    default:
      return r;
  }
}

}  // namespace

std::vector<GroupResult> search_kept_scales(const ModelConfig& cfg, const Architecture& arch,
                                            int64_t layer, const BlockWeights& w, KeptCapture& kept,
                                            int64_t n_seq, int64_t T,
                                            const ScaleSearchOptions& opt) {
  std::vector<GroupResult> results(arch.scaling_groups.size());
  for (size_t i = 0; i < arch.scaling_groups.size(); ++i) {
    const ScalingGroup& g = arch.scaling_groups[i];
    // Every other group is skipped in this call: its result comes from its own.
    ScaleSearchOptions one = opt;
    const std::vector<float>& mean = kept.mean[int(input_owner(g.layers[0]))];
    if (!mean.empty()) one.x_mean = &mean;
    for (const ScalingGroup& other : arch.scaling_groups)
      if (other.name != g.name) one.skip_groups.push_back(other.name);
    const bool skipped =
        std::find(opt.skip_groups.begin(), opt.skip_groups.end(), g.name) != opt.skip_groups.end();
    ActMat& src = kept.input(g.layers[0]);
    BlockCapture cap;
    if (!skipped && group_applies(g, w)) capture_input(cap, g.layers[0]) = src.take();
    std::vector<GroupResult> r = search_block_scales(cfg, arch, layer, w, cap, n_seq, T, one);
    results[i] = std::move(r[i]);
    Mat& x = capture_input(cap, g.layers[0]);
    // Back to 16 bits: exact, the values came from there.
    if (!x.empty()) src.put(std::move(x), fmt::format("layer {} group {} input", layer, g.name));
  }
  return results;
}

void apply_kept_scales(const Architecture& arch, int64_t layer, BlockWeights& w, KeptCapture& kept,
                       const std::vector<GroupResult>& groups) {
  apply_block_scales(arch, layer, w, nullptr, groups);
  for (const GroupResult& r : groups) {
    if (!r.applied) continue;
    ActMat& src = kept.input(r.layers[0]);
    Mat x = src.take();
    divide_columns(x, r.scales);
    src.put(std::move(x), fmt::format("layer {} group {} input / scales", layer, r.name));
  }
}

std::vector<ClipResult> search_kept_clips(const Architecture& arch, int64_t layer,
                                          const BlockWeights& w, KeptCapture& kept,
                                          const QuantSpec& spec, const ClipOptions& copt,
                                          int64_t n_tokens) {
  std::vector<ClipResult> out;
  for (LinearRole owner : kInputOwners) {
    // The block's clip search restricted to the linears that read this input.
    Architecture one = arch;
    for (LinearRole r : kAllLinearRoles)
      if (input_owner(r) != owner) one.clip_skip.push_back(r);
    BlockCapture cap;
    capture_input(cap, owner) = kept.input(owner).take();
    for (ClipResult& c : search_block_clips(one, layer, w, cap, spec, copt, n_tokens))
      out.push_back(std::move(c));
  }
  // In kAllLinearRoles order, as search_block_clips lists them.
  std::stable_sort(out.begin(), out.end(), [](const ClipResult& a, const ClipResult& b) {
    return int(a.role) < int(b.role);
  });
  return out;
}

}  // namespace awq
