#include "awq/block_search.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <span>

#include "awq/fold.h"
#include "awq/gram_loss.h"
#include "base/error.h"
#include "base/interrupt.h"
#include "base/thread_pool.h"
#include "quant/quantize.h"

namespace awq {

const Mat& capture_input(const BlockCapture& cap, LinearRole r) {
  switch (r) {
    case LinearRole::Q:
    case LinearRole::K:
    case LinearRole::V:
      return cap.attn_in;
    case LinearRole::O:
      return cap.o_in;
    case LinearRole::Gate:
    case LinearRole::Up:
      return cap.mlp_in;
    case LinearRole::Down:
      return cap.down_in;
  }
  return cap.attn_in;
}

Mat& capture_input(BlockCapture& cap, LinearRole r) {
  return const_cast<Mat&>(capture_input(std::as_const(cap), r));
}

bool group_applies(const ScalingGroup& g, const BlockWeights& w) {
  // A sparse layer's dense gate/up/down are empty: its feed-forward has its own groups
  // (awq/moe_search.h).
  for (LinearRole l : g.layers)
    if (w[l].out == 0) return false;
  if (!g.only_if_square) return true;
  // AutoAWQ compares v_proj.weight.shape with o_proj.weight.shape; the fold itself needs the
  // previous op's output width to equal the consumers' input width.
  return !g.prev_is_norm && w[g.prev_linear].out == w[g.layers[0]].in &&
         w[g.prev_linear].in == w[g.layers[0]].out;
}

// A Linear that reads another's f32 weight without copying it (Linear's w32 form).
Linear borrow(const Linear& l, bool bf16_products) {
  Linear b;
  b.in = l.in;
  b.out = l.out;
  b.bias = l.bias;
  b.w32 = l.w.data.data();
  b.bf16_products = bf16_products;
  return b;
}

// How many tokens the clip search of a layer with groups of `group` inputs samples: `requested`
// when positive; otherwise every token while the objective takes the factored form (its cost
// then does not grow with the tokens), and the reference's 512 for wider groups (whole rows of
// wide layers), whose objective reads X itself.
int64_t clip_sample_tokens(int64_t requested, int64_t group) {
  if (requested > 0) return requested;
  return group <= kClipMaxFactoredGroup ? 0 : 512;
}

// Every stride-th row of x (stride max(1, rows / n_tokens), AutoAWQ's clip sampling); every row
// when n_tokens <= 0. Returns x itself when the stride is 1 (no copy of what may be tens of MB,
// made by one thread while the other waits); otherwise the rows copied into `storage`.
const Mat& sample_rows(const Mat& x, int64_t n_tokens, Mat& storage) {
  const int64_t stride = n_tokens <= 0 ? 1 : std::max<int64_t>(1, x.rows / n_tokens);
  if (stride == 1) return x;
  const int64_t t = (x.rows + stride - 1) / stride;
  storage.resize_for_overwrite(t, x.cols);
  for (int64_t i = 0; i < t; ++i)
    std::copy(x.row(i * stride), x.row(i * stride) + x.cols, storage.row(i));
  return storage;
}

ClipInputs prepare_clip_rows(const RowSource& x, int64_t n_tokens, const QuantSpec& spec,
                             const std::string& tensor, Mat& storage) {
  const int64_t stride = n_tokens <= 0 ? 1 : std::max<int64_t>(1, x.rows / n_tokens);
  if (stride > 1) {
    const int64_t t = (x.rows + stride - 1) / stride;
    storage.resize_for_overwrite(t, x.cols);
    for (int64_t i = 0; i < t; ++i) x.read(i * stride, 1, storage.row(i));
    return prepare_clip_inputs(storage.data.data(), storage.rows, storage.cols, spec, tensor);
  }
  if (clip_inputs_factored(x.rows, x.cols, spec)) return prepare_clip_inputs(x, spec, tensor);
  x.read_into(0, x.rows, storage);  // X itself is the objective's matrix: few tokens
  return prepare_clip_inputs(storage.data.data(), storage.rows, storage.cols, spec, tensor);
}

// Q(W·s)/s from the untouched original (AutoAWQ: weight.mul_(s); pseudo_quantize(weight) / s).
// With `xs` (the sampled inputs already divided by s), W·s is first clipped as the clip search
// would clip it.
Linear scaled_fake_quant(const Linear& orig, const std::vector<float>& s, const QuantSpec& spec,
                         const std::string& name, const ClipInputs* xs, const ClipOptions& copt) {
  Linear l;
  l.in = orig.in;
  l.out = orig.out;
  l.bias = orig.bias;
  l.w = orig.w;  // a real copy: the original stays untouched for the next candidate
  scale_columns(l.w, s);
  if (xs) {
    const ClipChoice c = search_clip(l.w.data.data(), l.out, l.in, *xs, spec, copt, name);
    apply_clip(l.w.data.data(), l.out, l.in, c, spec.group_for(l.in), copt.n_grid, name);
  }
  fake_quantize(l.w.data.data(), l.out, l.in, spec, name);
  divide_columns(l.w, s);
  return l;
}

namespace {

// The inspected module's output with the unmodified weights when the capture holds it (the
// block's forward computed exactly this: same kernels, same inputs), else nullptr.
const Mat* captured_output(const BlockCapture& cap, const ScalingGroup& g, int64_t rows) {
  const Mat* m = nullptr;
  if (g.inspect == InspectKind::Attention ||
      (g.inspect == InspectKind::Linear && g.layers[0] == LinearRole::O))
    m = &cap.attn_out;
  if (g.inspect == InspectKind::Mlp ||
      (g.inspect == InspectKind::Linear && g.layers[0] == LinearRole::Down))
    m = &cap.mlp_out;
  return m != nullptr && m->rows == rows && !m->empty() ? m : nullptr;
}

// The tensor that absorbs 1/s, as the checkpoint names it (a fused qkv_proj for Phi-3's v).
std::string prev_name(const Architecture& arch, int64_t layer, const ScalingGroup& g) {
  if (g.prev_is_norm) return arch.norm_name(layer, g.prev_norm);
  std::string n = arch.stored_linear_name(layer, g.prev_linear) + ".weight";
  if (arch.is_fused(g.prev_linear)) n += fmt::format(" ({} rows)", linear_role_name(g.prev_linear));
  return n;
}

}  // namespace

double inspect_flops(const ModelConfig& c, InspectKind kind, LinearRole first, int64_t n_seq,
                     int64_t T) {
  const double N = double(n_seq * T), d = double(c.hidden_size), f = double(c.intermediate_size);
  const double qd = double(c.q_dim()), kvd = double(c.kv_dim());
  switch (kind) {
    case InspectKind::Attention: {
      // q, k, v, o projections plus QK^T and PV over the causal triangle.
      const double lin = 2 * N * (d * qd + 2 * d * kvd + qd * d);
      const double core = 4.0 * double(n_seq) * double(c.num_attention_heads) * double(c.head_dim) *
                          double(T) * double(T + 1) / 2;
      return lin + core;
    }
    case InspectKind::Mlp:
      return 2 * N * 3 * d * f;
    case InspectKind::Linear: {
      switch (first) {
        case LinearRole::O:
          return 2 * N * qd * d;
        case LinearRole::Down:
          return 2 * N * f * d;
        case LinearRole::Q:
          return 2 * N * d * qd;
        case LinearRole::K:
        case LinearRole::V:
          return 2 * N * d * kvd;
        case LinearRole::Gate:
        case LinearRole::Up:
          return 2 * N * d * f;
      }
    }
  }
  return 0;
}

std::vector<GroupResult> search_block_scales(const ModelConfig& cfg, const Architecture& arch,
                                             int64_t layer, const BlockWeights& w,
                                             const BlockCapture& cap, int64_t n_seq, int64_t T,
                                             const ScaleSearchOptions& opt) {
  std::vector<GroupResult> results;
  for (const ScalingGroup& g : arch.scaling_groups) {
    throw_if_interrupted();  // between groups: a large model's group takes minutes
    GroupResult r;
    r.name = g.name;
    r.prev = prev_name(arch, layer, g);
    r.layers = g.layers;
    const bool off =
        std::find(opt.skip_groups.begin(), opt.skip_groups.end(), g.name) != opt.skip_groups.end();
    if (off || !group_applies(g, w)) {
      results.push_back(std::move(r));
      continue;
    }
    r.applied = true;
    const Mat& x = capture_input(cap, g.layers[0]);
    // Streamed: the input is read a few sequences at a time, never whole in f32 (kept_capture.h).
    const RowSource* stream = x.empty() && opt.input != nullptr ? opt.input : nullptr;
    AWQ_CHECK(stream == nullptr || opt.x_mean != nullptr,
              "layer {} group {}: a streamed input needs its mean |x|", layer, g.name);
    const int64_t x_rows = stream ? stream->rows : x.rows, x_cols = stream ? stream->cols : x.cols;
    const std::vector<float> x_mean = opt.x_mean ? *opt.x_mean : mean_abs_columns(x);
    std::vector<float> w_mean;
    if (opt.mode != ScaleMode::X) {
      std::vector<const Mat*> ws;
      for (LinearRole l : g.layers) ws.push_back(&w[l].w);
      w_mean = weight_mean_normalized(ws, opt.spec.group_size);
    }

    // The inspected module's forward on `xin` (ns sequences) with some linears replaced; `sub`
    // maps roles to weights. A candidate's forward (sub not empty) multiplies in bf16 when asked;
    // the reference, as the captured one, in f32.
    using Sub = std::vector<std::pair<LinearRole, const Linear*>>;
    auto inspect = [&](const Sub& sub, const Mat& xin, int64_t ns, Mat& out) {
      const bool bf16 = opt.bf16_products && !sub.empty();
      if (g.inspect == InspectKind::Linear) {
        borrow(sub.empty() ? w[g.layers[0]] : *sub[0].second, bf16).forward(xin, out);
        return;
      }
      // Borrows every linear of the module (replaced ones from `sub`) and carries what else the
      // attention reads: the layer index (its window and RoPE) and the per-head q/k norms.
      BlockWeights v;
      v.layer = w.layer;
      if (g.inspect == InspectKind::Attention) {
        v.q_norm = w.q_norm;
        v.k_norm = w.k_norm;
      }
      const LinearRole roles_attn[] = {LinearRole::Q, LinearRole::K, LinearRole::V, LinearRole::O};
      const LinearRole roles_mlp[] = {LinearRole::Gate, LinearRole::Up, LinearRole::Down};
      const bool attn = g.inspect == InspectKind::Attention;
      for (LinearRole role : attn ? std::span<const LinearRole>(roles_attn)
                                  : std::span<const LinearRole>(roles_mlp)) {
        const Linear* src = &w[role];
        for (const auto& [sr, sl] : sub)
          if (sr == role) src = sl;
        v[role] = borrow(*src, bf16);
      }
      if (attn) {
        attention_forward(cfg, v, xin, ns, T, out);
      } else {
        mlp_forward(cfg, v, xin, out);
      }
    };

    const std::string what = fmt::format("layer {} group {}", layer, g.name);
    auto clipped = [&](LinearRole l) {
      if (!opt.clip_aware) return false;
      for (LinearRole c : arch.clip_skip)
        if (c == l) return false;
      return true;
    };
    bool any_clipped = false;
    for (LinearRole l : g.layers) any_clipped |= clipped(l);
    // Clip-aware scoring: the clip objective's matrices for the sampled unscaled inputs, built
    // once; each candidate rescales them (ClipInputs::scaled) instead of rebuilding them.
    Mat xs_storage;
    ClipInputs clip_in;
    if (any_clipped) {
      const int64_t n_tokens = clip_sample_tokens(opt.clip_tokens, opt.spec.group_for(x_cols));
      if (stream) {
        clip_in = prepare_clip_rows(*stream, n_tokens, opt.spec, what, xs_storage);
      } else {
        const Mat& xs = sample_rows(x, n_tokens, xs_storage);
        clip_in = prepare_clip_inputs(xs.data.data(), xs.rows, xs.cols, opt.spec, what);
      }
    }
    // The group's weights for scales s: Q(W·s)/s per linear (clipped first when clip-aware).
    // They do not depend on the inputs the loss is measured on.
    // Candidates are scored with symmetric clipping even when the written clip is asymmetric:
    // the asymmetric search tries every (lower, upper) pair, 10x the candidates, on every scale
    // candidate; phi-4-mini's AWQ/RTN KL was 0.465 either way (docs/history.md), at 5x the time.
    ClipOptions score_clip = opt.clip_opts;
    score_clip.asymmetric = false;
    auto candidate_weights = [&](const std::vector<float>& s) {
      std::vector<Linear> q;
      q.reserve(g.layers.size());
      ClipInputs clip_s;
      if (any_clipped) clip_s = clip_in.scaled(s);
      for (LinearRole l : g.layers)
        q.push_back(scaled_fake_quant(w[l], s, opt.spec, arch.linear_name(layer, l),
                                      clipped(l) ? &clip_s : nullptr, score_clip));
      return q;
    };

    // A single inspected linear is scored through its input's Gram matrix when that costs less
    // than the forwards (gram_loss.h): every candidate on all the data, no screening, no
    // reference output.
    const int64_t n_cand = int64_t(scale_grid(opt.mode, opt.n_grid).size());
    const bool screen = opt.screen_seqs > 0 && opt.screen_seqs < n_seq;
    const Linear& first = w[g.layers[0]];
    const double direct_evals =
        screen ? double(opt.finalists + 1) + double(n_cand * opt.screen_seqs) / double(n_seq)
               : double(n_cand);
    const bool by_gram = g.inspect == InspectKind::Linear && g.layers.size() == 1 &&
                         gram_search_cost(x_rows, x_cols, first.out, n_cand) <
                             direct_search_cost(x_rows, x_cols, first.out, direct_evals);
    ScaleSearchResult sr;
    if (by_gram) {
      const InputGram gram = stream ? input_gram(*stream) : input_gram(x);
      const ScaleLoss gram_loss_of = [&](const std::vector<float>& s) {
        std::vector<Linear> q = candidate_weights(s);
        Mat& d = q[0].w;  // W' - W
        for (size_t i = 0; i < d.data.size(); ++i) d.data[i] -= first.w.data[i];
        return gram_loss(gram, d);
      };
      sr = search_scales_screened(x_mean, w_mean, opt.mode, gram_loss_of, nullptr, 0, true, what,
                                  opt.n_grid);
      r.flops = 2 * gram_search_cost(x_rows, x_cols, first.out, n_cand);
    } else {
      // A streamed input is read in chunks of whole sequences, ~stream_chunk_bytes of f32 each.
      const int64_t chunk_seqs =
          std::max<int64_t>(1, opt.stream_chunk_bytes / std::max<int64_t>(1, T * x_cols * 4));
      Mat ref_own;
      const Mat* ref_cap = stream ? nullptr : captured_output(cap, g, x.rows);
      if (stream) {
        Mat xc, oc;
        for (int64_t c0 = 0; c0 < n_seq; c0 += chunk_seqs) {
          const int64_t cn = std::min(chunk_seqs, n_seq - c0);
          stream->read_into(c0 * T, cn * T, xc);
          inspect({}, xc, cn, oc);
          if (c0 == 0) ref_own.resize_for_overwrite(x_rows, oc.cols);
          std::copy(oc.data.begin(), oc.data.end(), ref_own.row(c0 * T));
        }
      } else if (!ref_cap) {
        inspect({}, x, n_seq, ref_own);
      }
      const Mat& ref = ref_cap ? *ref_cap : ref_own;
      // The loss of scales s on inputs xin (ns sequences) against the unmodified output (its
      // rows from ref_out on).
      auto loss_on = [&](const std::vector<float>& s, const Mat& xin, int64_t ns,
                         const float* ref_out) {
        const std::vector<Linear> q = candidate_weights(s);
        Sub sub;
        for (size_t i = 0; i < g.layers.size(); ++i) sub.emplace_back(g.layers[i], &q[i]);
        Mat out;
        inspect(sub, xin, ns, out);
        return mean_squared_error(ref_out, out.data.data(), out.size());
      };
      // The loss on sequences [s0, s0 + ns) of a streamed input, chunk by chunk: the mean of the
      // chunks' squared errors weighted by their sizes.
      auto loss_streamed = [&](const std::vector<float>& s, int64_t s0, int64_t ns) {
        const std::vector<Linear> q = candidate_weights(s);
        Sub sub;
        for (size_t i = 0; i < g.layers.size(); ++i) sub.emplace_back(g.layers[i], &q[i]);
        double sum = 0, mse = 0;
        int64_t n = 0;
        Mat xc, out;
        for (int64_t c0 = s0; c0 < s0 + ns; c0 += chunk_seqs) {
          const int64_t cn = std::min(chunk_seqs, s0 + ns - c0);
          stream->read_into(c0 * T, cn * T, xc);
          inspect(sub, xc, cn, out);
          mse = mean_squared_error(ref.row(c0 * T), out.data.data(), out.size());
          sum += mse * double(out.size());
          n += out.size();
        }
        // One chunk: the unstreamed loss's bits.
        return ns <= chunk_seqs ? mse : n > 0 ? sum / double(n) : 0.0;
      };
      const ScaleLoss loss_of = [&](const std::vector<float>& s) {
        return stream ? loss_streamed(s, 0, n_seq) : loss_on(s, x, n_seq, ref.data.data());
      };
      // Screening subset: every k-th sequence, and the reference output on it (its rows of the
      // full reference: sequences are independent).
      Mat x_sub, ref_sub;
      int64_t n_sub = 0;
      if (screen) {
        const int64_t stride = n_seq / opt.screen_seqs;
        n_sub = opt.screen_seqs;
        x_sub.resize_for_overwrite(n_sub * T, x_cols);
        ref_sub.resize_for_overwrite(n_sub * T, ref.cols);
        for (int64_t i = 0; i < n_sub; ++i) {
          if (stream) {
            stream->read(i * stride * T, T, x_sub.row(i * T));
          } else {
            std::copy(x.row(i * stride * T), x.row(i * stride * T + T), x_sub.row(i * T));
          }
          std::copy(ref.row(i * stride * T), ref.row(i * stride * T + T), ref_sub.row(i * T));
        }
      }
      const ScaleLoss screen_loss_of = [&](const std::vector<float>& s) {
        return loss_on(s, x_sub, n_sub, ref_sub.data.data());
      };
      // The finalists' halves (SplitLoss): the first n_seq / 2 sequences, then the rest, through
      // one buffer of the half's inputs, refilled when the second half starts (the stages run
      // one after the other); the reference rows are read in place.
      const int64_t seq_a = n_seq / 2;
      Mat x_part;
      int part_loaded = -1;
      auto part_loss = [&](const std::vector<float>& s, int part) {
        const int64_t s0 = part == 0 ? 0 : seq_a, ns = part == 0 ? seq_a : n_seq - seq_a;
        if (stream) return loss_streamed(s, s0, ns);
        if (part_loaded != part) {
          x_part.resize_for_overwrite(ns * T, x.cols);
          std::copy(x.row(s0 * T), x.row(s0 * T) + ns * T * x.cols, x_part.row(0));
          part_loaded = part;
        }
        return loss_on(s, x_part, ns, ref.row(s0 * T));
      };
      SplitLoss split;
      split.first = [&](const std::vector<float>& s) { return part_loss(s, 0); };
      split.second = [&](const std::vector<float>& s) { return part_loss(s, 1); };
      split.first_weight = double(seq_a) / double(n_seq);
      split.keep = opt.keep;
      const bool halves = screen && opt.keep > 0 && seq_a > 0;
      sr = search_scales_screened(
          x_mean, w_mean, opt.mode, loss_of, screen ? &screen_loss_of : nullptr, opt.finalists,
          opt.parallel_candidates, what, opt.n_grid, halves ? &split : nullptr);
      // The reference (unless captured) and the candidates scored on all the data, then the
      // screening forwards.
      r.flops = inspect_flops(cfg, g.inspect, g.layers[0], n_seq, T) *
                (sr.full_evals + (ref_cap ? 0 : 1));
      if (screen)
        r.flops +=
            inspect_flops(cfg, g.inspect, g.layers[0], n_sub, T) * double(sr.screen_losses.size());
    }
    r.choice = sr.best;
    r.loss = sr.loss;
    r.rtn_loss = sr.identity_loss;
    r.scales = std::move(sr.scales);
    results.push_back(std::move(r));
  }
  return results;
}

void apply_block_scales(const Architecture& arch, int64_t layer, BlockWeights& w, BlockCapture* cap,
                        const std::vector<GroupResult>& groups) {
  for (const GroupResult& r : groups) {
    if (!r.applied) continue;
    const ScalingGroup* g = nullptr;
    for (const auto& cand : arch.scaling_groups)
      if (cand.name == r.name) g = &cand;
    AWQ_CHECK(g != nullptr, "layer {}: unknown scaling group '{}'", layer, r.name);
    const int64_t n = w[g->layers[0]].in;
    AWQ_CHECK(int64_t(r.scales.size()) == n, "layer {} group {}: {} scales for width {}", layer,
              r.name, r.scales.size(), n);
    AWQ_CHECK(group_applies(*g, w), "layer {} group {}: the group does not apply to this block",
              layer, r.name);
    for (float s : r.scales)
      AWQ_CHECK(std::isfinite(s) && s > 0, "layer {} group {}: scale {} is not a positive number",
                layer, r.name, s);
    if (g->prev_is_norm) {
      divide_vector(g->prev_norm == NormRole::Attn ? w.attn_norm : w.mlp_norm, r.scales);
    } else {
      divide_tail_rows(w[g->prev_linear], r.scales);
    }
    for (LinearRole l : g->layers) scale_columns(w[l].w, r.scales);
    if (cap) {
      // q/k/v (and gate/up) share one captured input: divide it once.
      Mat& x = capture_input(*cap, g->layers[0]);
      divide_columns(x, r.scales);
    }
  }
  // The reference asserts the same after folding (llm-awq auto_scale.py:47-51).
  auto finite = [](std::span<const float> v) {
    for (float x : v)
      if (!std::isfinite(x)) return false;
    return true;
  };
  AWQ_CHECK(finite(w.attn_norm) && finite(w.mlp_norm),
            "layer {}: a norm weight is not finite after scaling", layer);
  for (LinearRole r : kAllLinearRoles)
    AWQ_CHECK(finite(w[r].w.data) && finite(w[r].bias), "layer {}: {} is not finite after scaling",
              layer, linear_role_name(r));
}

std::vector<ClipResult> search_block_clips(const Architecture& arch, int64_t layer,
                                           const BlockWeights& w, const BlockCapture& cap,
                                           const QuantSpec& spec, const ClipOptions& copt,
                                           int64_t n_tokens) {
  std::vector<ClipResult> out;
  // The objective's matrices per captured input, built once: gate and up (and q, k, v) read the
  // same one. Map nodes stay put, so inputs that point into their sampled rows (or into the
  // capture, when every row is taken) stay valid.
  struct Prepared {
    Mat xs;  // sampled rows, when not all of them
    ClipInputs in;
  };
  std::map<const Mat*, Prepared> prepared;
  for (LinearRole role : kAllLinearRoles) {
    throw_if_interrupted();
    bool skip = false;
    for (LinearRole s : arch.clip_skip) skip |= s == role;
    if (skip) continue;
    const Linear& l = w[role];
    if (l.out == 0) continue;  // a sparse layer's dense MLP roles
    const std::string name = arch.linear_name(layer, role);
    const Mat& x = capture_input(cap, role);
    auto [it, fresh] = prepared.try_emplace(&x);
    if (fresh) {
      Prepared& p = it->second;
      const Mat& xs = sample_rows(x, clip_sample_tokens(n_tokens, spec.group_for(x.cols)), p.xs);
      p.in = prepare_clip_inputs(xs.data.data(), xs.rows, xs.cols, spec, name);
    }
    ClipResult c = search_linear_clip(l, it->second.in, spec, copt, name);
    c.role = role;
    out.push_back(std::move(c));
  }
  return out;
}

ClipResult search_linear_clip(const Linear& l, const ClipInputs& in, const QuantSpec& spec,
                              const ClipOptions& copt, const std::string& name) {
  ClipResult c;
  c.out = l.out;
  c.n_groups = l.in / spec.group_for(l.in);
  c.choice = search_clip(l.w.data.data(), l.out, l.in, in, spec, copt, name);
  return c;
}

void apply_block_clips(BlockWeights& w, std::vector<ClipResult>& clips, const QuantSpec& spec,
                       int n_grid) {
  for (ClipResult& c : clips)
    apply_linear_clip(w[c.role], c, spec, n_grid, linear_role_name(c.role));
}

void apply_linear_clip(Linear& l, ClipResult& c, const QuantSpec& spec, int n_grid,
                       const std::string& name) {
  const int64_t g = spec.group_for(l.in), ng = l.in / g;
  AWQ_CHECK(c.out == l.out && c.n_groups == ng,
            "{}: clip table is [{}, {}], the weight needs [{}, {}]", name, c.out, c.n_groups, l.out,
            ng);
  apply_clip(l.w.data.data(), l.out, l.in, c.choice, int(g), n_grid, name);
  fill_clip_stats(c, n_grid);
}

void fill_clip_stats(ClipResult& c, int n_grid) {
  double shrink_sum = 0;
  int64_t clipped = 0, sides = 0;
  for (const std::vector<uint8_t>* side : {&c.choice.hi, &c.choice.lo}) {
    for (uint8_t idx : *side) {
      shrink_sum += double(clip_shrink(idx, n_grid));
      ++sides;
    }
  }
  for (size_t i = 0; i < c.choice.hi.size(); ++i)
    clipped += c.choice.hi[i] > 0 || (!c.choice.lo.empty() && c.choice.lo[i] > 0);
  c.mean_shrink = sides == 0 ? 1.0 : shrink_sum / double(sides);
  c.frac_clipped = c.choice.hi.empty() ? 0.0 : double(clipped) / double(c.choice.hi.size());
}

void pad_intermediate(BlockWeights& w, int64_t width) {
  Linear& gate = w[LinearRole::Gate];
  Linear& up = w[LinearRole::Up];
  Linear& down = w[LinearRole::Down];
  const int64_t f = gate.out;
  AWQ_CHECK(width >= f && up.out == f && down.in == f,
            "pad_intermediate: cannot pad width {} to {}", f, width);
  if (width == f) return;
  for (Linear* l : {&gate, &up}) {
    l->w.data.resize(size_t(width * l->in), 0.0f);  // zero rows appended
    l->w.rows = width;
    l->out = width;
    if (!l->bias.empty()) l->bias.resize(size_t(width), 0.0f);
  }
  Mat d(down.out, width);
  for (int64_t o = 0; o < down.out; ++o) std::copy(down.w.row(o), down.w.row(o) + f, d.row(o));
  down.w = std::move(d);
  down.in = width;
}

}  // namespace awq
