#include "awq/moe_search.h"

#include <fmt/format.h>

#include <cmath>
#include <span>

#include "awq/fold.h"
#include "awq/gram_loss.h"
#include "awq/scales.h"
#include "base/error.h"
#include "base/interrupt.h"
#include "base/thread_pool.h"

namespace awq {

Linear& moe_linear(BlockWeights& w, int expert, LinearRole role) {
  return const_cast<Linear&>(moe_linear(std::as_const(w), expert, role));
}

const Linear& moe_linear(const BlockWeights& w, int expert, LinearRole role) {
  AWQ_CHECK(expert == kSharedExpert || (expert >= 0 && size_t(expert) < w.moe.experts.size()),
            "layer {}: expert {} does not exist ({} experts)", w.layer, expert,
            w.moe.experts.size());
  AWQ_CHECK(expert != kSharedExpert || w.moe.shared.present(),
            "layer {}: the model has no shared expert", w.layer);
  const FfnWeights& f = expert == kSharedExpert ? w.moe.shared : w.moe.experts[size_t(expert)];
  switch (role) {
    case LinearRole::Gate:
      return f.gate;
    case LinearRole::Up:
      return f.up;
    case LinearRole::Down:
      return f.down;
    default:
      fail("layer {}: an expert has no {}", w.layer, linear_role_name(role));
  }
}

std::vector<int64_t> expert_token_counts(const BlockCapture& cap, int64_t n_experts) {
  std::vector<int64_t> n(size_t(n_experts), 0);
  for (size_t e = 0; e < cap.moe.tokens.size() && e < n.size(); ++e)
    n[e] = int64_t(cap.moe.tokens[e].size());
  return n;
}

std::vector<int> experts_of(const BlockWeights& w) {
  std::vector<int> v;
  for (size_t e = 0; e < w.moe.experts.size(); ++e) v.push_back(int(e));
  if (w.moe.shared.present()) v.push_back(kSharedExpert);
  return v;
}

namespace {

std::string expert_name(const Architecture& arch, int64_t layer, int expert, LinearRole r) {
  return expert == kSharedExpert ? arch.shared_expert_linear_name(layer, r)
                                 : arch.expert_linear_name(layer, expert, r);
}

// The feed-forwards a sparse block calibrates: every routed expert, then the shared one.
const FfnWeights& ffn_of(const BlockWeights& w, int expert) {
  return expert == kSharedExpert ? w.moe.shared : w.moe.experts[size_t(expert)];
}

// Whether expert e is calibrated on its routed tokens (else on every token). The shared expert
// sees every token anyway.
bool routed_enough(const BlockCapture& cap, int expert, int64_t min_tokens) {
  if (expert == kSharedExpert) return true;
  return size_t(expert) < cap.moe.tokens.size() &&
         int64_t(cap.moe.tokens[size_t(expert)].size()) >= min_tokens;
}

Mat gather_rows(const Mat& x, const std::vector<int32_t>& rows) {
  Mat g;
  g.resize_for_overwrite(int64_t(rows.size()), x.cols);
  for (size_t i = 0; i < rows.size(); ++i) std::copy_n(x.row(rows[i]), x.cols, g.row(int64_t(i)));
  return g;
}

// act(gate x) ⊙ up x of one feed-forward on every row of x.
Mat down_input_on_all(const ModelConfig& cfg, const FfnWeights& f, const Mat& x) {
  Mat out, din;
  ffn_forward(cfg, f.gate, f.up, f.down, x, out, &din);
  return din;
}

// The down projection's calibration input of `expert`: its routed tokens' (captured), or, for an
// expert under min_tokens, every token's through its current gate/up (`own` holds it).
const Mat& down_input(const ModelConfig& cfg, const BlockWeights& w, const BlockCapture& cap,
                      int expert, int64_t min_tokens, Mat& own) {
  if (expert == kSharedExpert) return cap.moe.shared_down_in;
  if (routed_enough(cap, expert, min_tokens)) return cap.moe.down_in[size_t(expert)];
  own = down_input_on_all(cfg, ffn_of(w, expert), cap.mlp_in);
  return own;
}

// The scale search of one consumer linear on its input x, scored through the input's Gram
// matrix (every candidate on all the data): an expert's down projection.
ScaleSearchResult search_linear_scales(const Linear& l, const Mat& x, const MoeSearchOptions& opt,
                                       const std::string& name, const std::string& what,
                                       double* flops) {
  const std::vector<float> x_mean = mean_abs_columns(x);
  std::vector<float> w_mean;
  if (opt.scale.mode != ScaleMode::X) {
    const Mat* ws[] = {&l.w};
    w_mean = weight_mean_normalized(ws, opt.scale.spec.group_size);
  }
  const int64_t n_cand = int64_t(scale_grid(opt.scale.mode, opt.scale.n_grid).size());
  const bool by_gram = gram_search_cost(x.rows, x.cols, l.out, n_cand) <
                       direct_search_cost(x.rows, x.cols, l.out, double(n_cand));
  InputGram gram;
  Mat ref;
  if (by_gram) {
    gram = input_gram(x);
  } else {
    l.forward(x, ref);
  }
  const ScaleLoss loss_of = [&](const std::vector<float>& s) {
    Linear q = scaled_fake_quant(l, s, opt.scale.spec, name, nullptr, opt.scale.clip_opts);
    if (by_gram) {
      for (size_t i = 0; i < q.w.data.size(); ++i) q.w.data[i] -= l.w.data[i];
      return gram_loss(gram, q.w);
    }
    Mat out;
    q.bf16_products = opt.scale.bf16_products;
    q.forward(x, out);
    return mean_squared_error(ref.data.data(), out.data.data(), out.size());
  };
  *flops += by_gram ? 2 * gram_search_cost(x.rows, x.cols, l.out, n_cand)
                    : 2.0 * double(x.rows * x.cols * l.out) * double(n_cand + 1);
  return search_scales_screened(x_mean, w_mean, opt.scale.mode, loss_of, nullptr, 0, true, what,
                                opt.scale.n_grid);
}

}  // namespace

void expert_inputs(const ModelConfig& cfg, const BlockWeights& w, const BlockCapture& cap,
                   int expert, int64_t min_tokens, ExpertInputs& in) {
  const bool own_rows = expert != kSharedExpert && routed_enough(cap, expert, min_tokens);
  if (own_rows) in.gate_up_own = gather_rows(cap.mlp_in, cap.moe.tokens[size_t(expert)]);
  in.gate_up = own_rows ? &in.gate_up_own : &cap.mlp_in;
  in.down = &down_input(cfg, w, cap, expert, min_tokens, in.down_own);
}

std::vector<GroupResult> search_moe_scales(const ModelConfig& cfg, const Architecture& arch,
                                           int64_t layer, const BlockWeights& w,
                                           const BlockCapture& cap, int64_t n_seq, int64_t T,
                                           const MoeSearchOptions& opt) {
  AWQ_CHECK(w.is_moe(), "layer {}: not a sparse layer", layer);
  const MoeWeights& m = w.moe;
  const QuantSpec& spec = opt.scale.spec;
  const Mat& x = cap.mlp_in;
  AWQ_CHECK(x.rows == n_seq * T && x.rows > 0 && x.cols == cfg.hidden_size &&
                int64_t(cap.moe.tokens.size()) == int64_t(m.experts.size()),
            "layer {}: the capture holds no MoE input or routing", layer);
  const std::vector<int> ffns = experts_of(w);
  std::vector<GroupResult> results;

  // moe.gate_up: one s for every expert's gate and up (and the shared expert's).
  {
    GroupResult r;
    r.name = "moe.gate_up";
    r.prev = arch.norm_name(layer, NormRole::Mlp);
    r.layers = {LinearRole::Gate, LinearRole::Up};
    r.applied = true;
    const std::string what = fmt::format("layer {} group moe.gate_up", layer);
    const std::vector<float> x_mean = mean_abs_columns(x);
    std::vector<float> w_mean;
    if (opt.scale.mode != ScaleMode::X) {
      std::vector<const Mat*> ws;
      for (int e : ffns) {
        ws.push_back(&ffn_of(w, e).gate.w);
        ws.push_back(&ffn_of(w, e).up.w);
      }
      w_mean = weight_mean_normalized(ws, spec.group_size);
    }
    const Mat& ref = cap.mlp_out;
    AWQ_CHECK(ref.rows == x.rows && ref.cols == cfg.hidden_size,
              "layer {}: the capture holds no MoE output", layer);
    // Candidate weights: Q(W·s)/s for the gate/up of every expert that some calibration token
    // reaches (the others cannot change the output); downs, router and shared gate as they are.
    // The router is the original and the input unscaled, so routing is the full-precision one.
    auto candidate = [&](const std::vector<float>& s) {
      MoeWeights v;
      v.router = m.router;
      v.shared_gate = m.shared_gate;
      v.experts.resize(m.experts.size());
      for (int e : ffns) {
        const FfnWeights& f = ffn_of(w, e);
        FfnWeights& c = e == kSharedExpert ? v.shared : v.experts[size_t(e)];
        const bool bf16 = opt.scale.bf16_products;
        c.down = borrow(f.down, bf16);
        if (e != kSharedExpert && cap.moe.tokens[size_t(e)].empty()) {
          c.gate = borrow(f.gate, bf16);
          c.up = borrow(f.up, bf16);
          continue;
        }
        c.gate = scaled_fake_quant(f.gate, s, spec, expert_name(arch, layer, e, LinearRole::Gate),
                                   nullptr, opt.scale.clip_opts);
        c.up = scaled_fake_quant(f.up, s, spec, expert_name(arch, layer, e, LinearRole::Up),
                                 nullptr, opt.scale.clip_opts);
        c.gate.bf16_products = c.up.bf16_products = bf16;
      }
      return v;
    };
    auto loss_on = [&](const std::vector<float>& s, const Mat& xin, const float* ref_out) {
      const MoeWeights v = candidate(s);
      Mat out;
      moe_forward(cfg, v, xin, out);
      return mean_squared_error(ref_out, out.data.data(), out.size());
    };
    const ScaleLoss loss_of = [&](const std::vector<float>& s) {
      return loss_on(s, x, ref.data.data());
    };
    // Screening on every k-th block of rows (tokens are independent in the feed-forward).
    Mat x_sub, ref_sub;
    const bool screen = opt.scale.screen_seqs > 0 && opt.scale.screen_seqs < n_seq;
    if (screen) {
      const int64_t stride = n_seq / opt.scale.screen_seqs;
      const int64_t n_sub = opt.scale.screen_seqs;
      x_sub.resize_for_overwrite(n_sub * T, x.cols);
      ref_sub.resize_for_overwrite(n_sub * T, ref.cols);
      for (int64_t i = 0; i < n_sub; ++i) {
        std::copy(x.row(i * stride * T), x.row(i * stride * T + T), x_sub.row(i * T));
        std::copy(ref.row(i * stride * T), ref.row(i * stride * T + T), ref_sub.row(i * T));
      }
    }
    const ScaleLoss screen_loss_of = [&](const std::vector<float>& s) {
      return loss_on(s, x_sub, ref_sub.data.data());
    };
    const ScaleSearchResult sr = search_scales_screened(
        x_mean, w_mean, opt.scale.mode, loss_of, screen ? &screen_loss_of : nullptr,
        opt.scale.finalists, false, what, opt.scale.n_grid);
    // The routed experts' gate/up/down on k tokens each (and the shared expert on all), per
    // forward: the full-data evaluations and the screening ones.
    const double per_token =
        2.0 * 3.0 * double(cfg.hidden_size) *
        (double(cfg.moe_intermediate_size) * double(cfg.num_experts_per_tok) +
         (m.shared.present() ? double(cfg.shared_expert_intermediate_size) : 0.0));
    r.flops = per_token * double(x.rows) * double(sr.full_evals) +
              per_token * double(x_sub.rows) * double(sr.screen_losses.size());
    r.choice = sr.best;
    r.loss = sr.loss;
    r.rtn_loss = sr.identity_loss;
    r.scales = sr.scales;
    results.push_back(std::move(r));
  }

  // moe.down per expert: up → down on the expert's own calibration rows.
  for (int e : ffns) {
    throw_if_interrupted();  // a layer of 128 experts takes minutes: Ctrl-C answers between them
    GroupResult r;
    r.name = "moe.down";
    r.expert = e;
    r.prev = expert_name(arch, layer, e, LinearRole::Up) + ".weight";
    r.layers = {LinearRole::Down};
    Mat own;
    const Mat& xd = down_input(cfg, w, cap, e, opt.min_tokens, own);
    if (xd.rows == 0) {
      results.push_back(std::move(r));  // no token at all and no fallback asked for: RTN
      continue;
    }
    r.applied = true;
    const std::string what =
        fmt::format("layer {} group moe.down (expert {})", layer,
                    e == kSharedExpert ? std::string("shared") : std::to_string(e));
    const ScaleSearchResult sr = search_linear_scales(
        ffn_of(w, e).down, xd, opt, expert_name(arch, layer, e, LinearRole::Down), what, &r.flops);
    r.choice = sr.best;
    r.loss = sr.loss;
    r.rtn_loss = sr.identity_loss;
    r.scales = sr.scales;
    results.push_back(std::move(r));
  }
  return results;
}

void apply_moe_scales(int64_t layer, BlockWeights& w, BlockCapture* cap,
                      const std::vector<GroupResult>& groups) {
  AWQ_CHECK(w.is_moe(), "layer {}: MoE scales given for a dense layer", layer);
  MoeWeights& m = w.moe;
  const int64_t H = m.router.cols;
  for (const GroupResult& r : groups) {
    if (!r.applied) continue;
    for (float s : r.scales)
      AWQ_CHECK(std::isfinite(s) && s > 0, "layer {} group {}: scale {} is not a positive number",
                layer, r.name, s);
    if (r.name == "moe.gate_up") {
      AWQ_CHECK(int64_t(r.scales.size()) == H, "layer {} group {}: {} scales for width {}", layer,
                r.name, r.scales.size(), H);
      divide_vector(w.mlp_norm, r.scales);
      for (int e : experts_of(w)) {
        scale_columns(moe_linear(w, e, LinearRole::Gate).w, r.scales);
        scale_columns(moe_linear(w, e, LinearRole::Up).w, r.scales);
      }
      // The router and the shared-expert gate read the same normed input: their columns take s
      // too, so their outputs (and so routing) are unchanged.
      scale_columns(m.router, r.scales);
      for (size_t j = 0; j < m.shared_gate.size(); ++j) m.shared_gate[j] *= r.scales[j];
      if (cap) divide_columns(cap->mlp_in, r.scales);
    } else if (r.name == "moe.down") {
      Linear& up = moe_linear(w, r.expert, LinearRole::Up);
      Linear& down = moe_linear(w, r.expert, LinearRole::Down);
      AWQ_CHECK(int64_t(r.scales.size()) == down.in && up.out == down.in,
                "layer {} group {} (expert {}): {} scales for width {}", layer, r.name, r.expert,
                r.scales.size(), down.in);
      divide_tail_rows(up, r.scales);
      scale_columns(down.w, r.scales);
      if (cap) {
        Mat& d = r.expert == kSharedExpert ? cap->moe.shared_down_in
                                           : cap->moe.down_in[size_t(r.expert)];
        if (d.rows > 0) divide_columns(d, r.scales);
      }
    } else {
      fail("layer {}: unknown MoE scaling group '{}'", layer, r.name);
    }
  }
  auto finite = [](std::span<const float> v) {
    for (float x : v)
      if (!std::isfinite(x)) return false;
    return true;
  };
  AWQ_CHECK(finite(w.mlp_norm) && finite(m.router.data) && finite(m.shared_gate),
            "layer {}: the MoE norm, router or shared gate is not finite after scaling", layer);
  for (int e : experts_of(w))
    for (LinearRole r : {LinearRole::Gate, LinearRole::Up, LinearRole::Down})
      AWQ_CHECK(finite(moe_linear(w, e, r).w.data),
                "layer {}: expert {} {} is not finite after "
                "scaling",
                layer, e, linear_role_name(r));
}

std::vector<ClipResult> search_moe_clips(const ModelConfig& cfg, const Architecture& arch,
                                         int64_t layer, const BlockWeights& w,
                                         const BlockCapture& cap, const QuantSpec& spec,
                                         const ClipOptions& copt, int64_t min_tokens,
                                         int64_t clip_tokens) {
  std::vector<ClipResult> out;
  for (int e : experts_of(w)) {
    throw_if_interrupted();
    // gate/up: the MoE input rows routed to the expert (all rows for the shared expert and for
    // experts under min_tokens); down: its down input.
    ExpertInputs in;
    expert_inputs(cfg, w, cap, e, min_tokens, in);
    const Mat& xg = *in.gate_up;
    const Mat& xd = *in.down;
    if (xg.rows == 0 || xd.rows == 0) continue;  // no calibration rows: plain rounding
    Mat sg, sd;
    const Mat& xgs = sample_rows(xg, clip_sample_tokens(clip_tokens, spec.group_for(xg.cols)), sg);
    const Mat& xds = sample_rows(xd, clip_sample_tokens(clip_tokens, spec.group_for(xd.cols)), sd);
    const std::string gname = expert_name(arch, layer, e, LinearRole::Gate);
    const ClipInputs in_g = prepare_clip_inputs(xgs.data.data(), xgs.rows, xgs.cols, spec, gname);
    const ClipInputs in_d = prepare_clip_inputs(xds.data.data(), xds.rows, xds.cols, spec,
                                                expert_name(arch, layer, e, LinearRole::Down));
    for (LinearRole r : {LinearRole::Gate, LinearRole::Up, LinearRole::Down}) {
      ClipResult c = search_linear_clip(moe_linear(w, e, r), r == LinearRole::Down ? in_d : in_g,
                                        spec, copt, expert_name(arch, layer, e, r));
      c.role = r;
      c.expert = e;
      out.push_back(std::move(c));
    }
  }
  return out;
}

void apply_moe_clips(int64_t layer, BlockWeights& w, std::vector<ClipResult>& clips,
                     const QuantSpec& spec, int n_grid) {
  for (ClipResult& c : clips)
    apply_linear_clip(
        moe_linear(w, c.expert, c.role), c, spec, n_grid,
        fmt::format("layer {} expert {} {}", layer, c.expert, linear_role_name(c.role)));
}

}  // namespace awq
