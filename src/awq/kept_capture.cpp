#include "awq/kept_capture.h"

#include <fmt/format.h>

#include <algorithm>
#include <memory>

#include "awq/fold.h"
#include "awq/scales.h"
#include "base/error.h"
#include "base/interrupt.h"

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
      kept.mean[size_t(owner)] = mean_abs_columns(m);
      kept.input(owner).put(std::move(m), fmt::format("layer {} {}", layer, what));
    };
    if (&m == &cap.attn_in) {
      keep(LinearRole::Q, "attention input (q/k/v_proj's)");
    } else if (&m == &cap.o_in) {
      keep(LinearRole::O, "o_proj input");
    } else if (&m == &cap.mlp_in) {
      keep(LinearRole::Gate, "MLP input (gate/up_proj's)");
    }
    m = Mat();  // the outputs are dropped; a kept input's buffer is released
  };
  // down_proj's input, the widest, goes into 16 bits a chunk of rows at a time as the MLP
  // computes it: never whole in f32.
  auto mean = std::make_shared<ColumnAbsMean>();
  cap.down_in_rows = [&kept, layer, mean](int64_t r0, int64_t total, const Mat& rows) {
    ActMat& d = kept.down_in;
    if (r0 == 0) {
      d.begin(total, rows.cols);
      *mean = ColumnAbsMean();
    }
    mean->add(rows);
    d.put_rows(r0, rows, fmt::format("layer {} down_proj input", layer));
    if (r0 + rows.rows == total) kept.mean[size_t(LinearRole::Down)] = mean->mean();
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
    const std::vector<float>& mean = kept.mean[size_t(input_owner(g.layers[0]))];
    if (!mean.empty()) one.x_mean = &mean;
    for (const ScalingGroup& other : arch.scaling_groups)
      if (other.name != g.name) one.skip_groups.push_back(other.name);
    const bool skipped =
        std::find(opt.skip_groups.begin(), opt.skip_groups.end(), g.name) != opt.skip_groups.end();
    // The input is read from its 16 bits a few sequences at a time (ScaleSearchOptions::input).
    const RowSource rows = kept.input(g.layers[0]).rows_source();
    if (!skipped && group_applies(g, w)) one.input = &rows;
    const BlockCapture none;
    std::vector<GroupResult> r = search_block_scales(cfg, arch, layer, w, none, n_seq, T, one);
    results[i] = std::move(r[i]);
  }
  return results;
}

void apply_kept_scales(const Architecture& arch, int64_t layer, BlockWeights& w, KeptCapture& kept,
                       const std::vector<GroupResult>& groups) {
  apply_block_scales(arch, layer, w, nullptr, groups);
  for (const GroupResult& r : groups) {
    if (!r.applied) continue;
    kept.input(r.layers[0])
        .divide_columns(r.scales, fmt::format("layer {} group {} input / scales", layer, r.name));
  }
}

std::vector<ClipResult> search_kept_clips(const Architecture& arch, int64_t layer,
                                          const BlockWeights& w, KeptCapture& kept,
                                          const QuantSpec& spec, const ClipOptions& copt,
                                          int64_t n_tokens) {
  std::vector<ClipResult> out;
  for (LinearRole owner : kInputOwners) {
    // search_block_clips for the linears that read this input, which is read from its 16 bits a
    // chunk of rows at a time, then released (nothing reads the captures after the clip search).
    ActMat& src = kept.input(owner);
    Mat storage;
    ClipInputs in;
    bool prepared = false;
    for (LinearRole role : kAllLinearRoles) {
      if (input_owner(role) != owner ||
          std::find(arch.clip_skip.begin(), arch.clip_skip.end(), role) != arch.clip_skip.end())
        continue;
      throw_if_interrupted();
      const Linear& l = w[role];
      if (l.out == 0) continue;
      const std::string name = arch.linear_name(layer, role);
      if (!prepared) {
        const int64_t nt = clip_sample_tokens(n_tokens, spec.group_for(src.cols()));
        in = prepare_clip_rows(src.rows_source(), nt, spec, name, storage);
        prepared = true;
      }
      ClipResult c = search_linear_clip(l, in, spec, copt, name);
      c.role = role;
      out.push_back(std::move(c));
    }
    src = ActMat(src.dtype());
  }
  // In kAllLinearRoles order, as search_block_clips lists them.
  std::stable_sort(out.begin(), out.end(), [](const ClipResult& a, const ClipResult& b) {
    return int(a.role) < int(b.role);
  });
  return out;
}

}  // namespace awq
