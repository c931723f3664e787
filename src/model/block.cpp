#include "model/block.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>

#include "base/error.h"
#include "base/mapped_file.h"
#include "base/thread_pool.h"
#include "kernels/w4.h"
#include "model/awq_dequant.h"
#include "model/rope.h"

namespace awq {

std::pair<int64_t, int64_t> linear_shape(const ModelConfig& c, LinearRole r) {
  switch (r) {
    case LinearRole::Q:
      return {c.q_dim(), c.hidden_size};
    case LinearRole::K:
    case LinearRole::V:
      return {c.kv_dim(), c.hidden_size};
    case LinearRole::O:
      return {c.hidden_size, c.q_dim()};
    case LinearRole::Gate:
    case LinearRole::Up:
      return {c.intermediate_size, c.hidden_size};
    case LinearRole::Down:
      return {c.hidden_size, c.intermediate_size};
  }
  return {0, 0};
}

StoredRows stored_rows(const ModelConfig& c, const Architecture& a, LinearRole r) {
  const int64_t out = linear_shape(c, r).first;
  if (!a.is_fused(r)) return {0, out};
  switch (r) {
    case LinearRole::Q:
      return {0, c.q_dim() + 2 * c.kv_dim()};
    case LinearRole::K:
      return {c.q_dim(), c.q_dim() + 2 * c.kv_dim()};
    case LinearRole::V:
      return {c.q_dim() + c.kv_dim(), c.q_dim() + 2 * c.kv_dim()};
    case LinearRole::Gate:
      return {0, 2 * c.intermediate_size};
    case LinearRole::Up:
      return {c.intermediate_size, 2 * c.intermediate_size};
    default:
      return {0, out};
  }
}

bool linear_has_bias(const ModelConfig& c, LinearRole r) {
  switch (r) {
    case LinearRole::Q:
    case LinearRole::K:
    case LinearRole::V: {
      // A config read from config.json already has the architecture's q/k/v bias folded into
      // attention_bias; one built in code (tests, bench shapes) may not.
      const Architecture* a = find_architecture(c.model_type);
      return c.attention_bias || (a != nullptr && a->qkv_bias);
    }
    case LinearRole::O:
      return c.o_bias;
    default:
      return c.mlp_bias;
  }
}

namespace {

bool is_float_dtype(DType t) {
  return t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::F64;
}

const TensorInfo& float_tensor(const Checkpoint& ck, const std::string& name,
                               const std::vector<int64_t>& shape) {
  const TensorInfo& t = ck.get(name, shape);
  AWQ_CHECK(is_float_dtype(t.dtype), "{}: tensor '{}' has dtype {}, expected F32, F16 or BF16",
            t.file, name, dtype_name(t.dtype));
  return t;
}

bool is_awq_quantized(const Checkpoint& ck, const ModelConfig& cfg, const std::string& name) {
  if (!cfg.quant) return false;
  return ck.has(name + ".qweight");
}

// Loads the linear stored as `name` (without ".weight"), [out, in] at rows.row0 of its
// rows.rows, in the form `opts` asks for. A fused checkpoint tensor (Phi-3's qkv_proj,
// gate_up_proj) is read whole and the role's rows taken from it. A bias is read when `bias` says
// the linear has one or the checkpoint holds one.
Linear load_linear_named(const Checkpoint& ck, const ModelConfig& cfg, const std::string& name,
                         int64_t out, int64_t in, StoredRows rows, bool bias_expected,
                         const LoadOptions& opts) {
  const bool native = opts.weights != WeightForm::F32;
  Linear l;
  l.in = in;
  l.out = out;
  if (is_awq_quantized(ck, cfg, name)) {
    if (opts.weights == WeightForm::W4) {
      const QuantizedMatrix q = read_awq_linear(ck, name, *cfg.quant, rows.rows, in);
      kernels::W4Source src;
      src.out = out;
      src.in = in;
      src.group = q.group == in ? -1 : q.group;
      src.codes = q.codes.data() + rows.row0 * in;
      src.scales = q.scales.data() + rows.row0 * q.n_groups();
      src.zeros = q.zeros.data() + rows.row0 * q.n_groups();
      try {
        l.w4 = std::make_shared<const kernels::W4Matrix>(kernels::W4Matrix::pack(src));
      } catch (const Error& e) {
        fail("{}: '{}' cannot run on the 4-bit kernels: {}", ck.dir(), name, e.what());
      }
      l.w4a8 = opts.w4a8;
    } else {
      Mat all = dequantize_awq_linear(ck, name, *cfg.quant, rows.rows, in);
      if (rows.rows == out) {
        l.w = std::move(all);
      } else {
        l.w.resize(out, in);
        std::copy(all.row(rows.row0), all.row(rows.row0 + out), l.w.row(0));
      }
    }
  } else {
    const TensorInfo& t = float_tensor(ck, name + ".weight", {rows.rows, in});
    const uint8_t* data = t.data + size_t(rows.row0 * in) * dtype_size(t.dtype);
    if (native) {
      l = linear_in_place(data, t.dtype, out, in);
    } else {
      l.w.resize(out, in);
      convert_to_f32(t.dtype, data, out * in, l.w.data.data());
      drop_mapped_pages(data,
                        size_t(out * in) * dtype_size(t.dtype));  // copied: one block resident
    }
  }
  const std::string bias = name + ".bias";
  if (bias_expected || ck.has(bias)) {
    float_tensor(ck, bias, {rows.rows});
    const std::vector<float> all = ck.read_vec(bias, rows.rows);
    l.bias.assign(all.begin() + rows.row0, all.begin() + rows.row0 + out);
  }
  return l;
}

Linear load_linear(const Checkpoint& ck, const ModelConfig& cfg, const Architecture& arch,
                   int64_t layer, LinearRole r, const LoadOptions& opts) {
  const auto [out, in] = linear_shape(cfg, r);
  return load_linear_named(ck, cfg, arch.stored_linear_name(layer, r), out, in,
                           stored_rows(cfg, arch, r), linear_has_bias(cfg, r), opts);
}

bool is_ffn_role(LinearRole r) {
  return r == LinearRole::Gate || r == LinearRole::Up || r == LinearRole::Down;
}

// An expert (or the shared expert) of width I: gate and up [I, hidden], down [hidden, I], no
// biases (transformers' experts have none). W4 gate|up are stacked as a dense block's are.
FfnWeights load_ffn(const Checkpoint& ck, const ModelConfig& cfg,
                    const std::function<std::string(LinearRole)>& name, int64_t I,
                    const LoadOptions& opts) {
  const int64_t d = cfg.hidden_size;
  FfnWeights f;
  f.gate = load_linear_named(ck, cfg, name(LinearRole::Gate), I, d, {0, I}, false, opts);
  f.up = load_linear_named(ck, cfg, name(LinearRole::Up), I, d, {0, I}, false, opts);
  f.down = load_linear_named(ck, cfg, name(LinearRole::Down), d, I, {0, d}, false, opts);
  if (opts.weights == WeightForm::W4) {
    Linear* gate_up[] = {&f.gate, &f.up};
    fuse_w4(gate_up);
  }
  return f;
}

// A sparse layer's router (f32; dequantized if the checkpoint quantized it), experts, shared
// expert and its gate. Every tensor is checked for presence and shape, naming it.
MoeWeights load_moe(const Checkpoint& ck, const ModelConfig& cfg, const Architecture& arch,
                    int64_t layer, const LoadOptions& opts) {
  const int64_t d = cfg.hidden_size, E = cfg.num_experts;
  MoeWeights m;
  const std::string router = arch.router_name(layer);
  if (is_awq_quantized(ck, cfg, router)) {
    m.router = dequantize_awq_linear(ck, router, *cfg.quant, E, d);
  } else {
    const TensorInfo& t = float_tensor(ck, router + ".weight", {E, d});
    m.router.resize_for_overwrite(E, d);
    convert_to_f32(t.dtype, t.data, E * d, m.router.data.data());
  }
  m.experts.reserve(size_t(E));
  for (int64_t e = 0; e < E; ++e)
    m.experts.push_back(load_ffn(
        ck, cfg, [&](LinearRole r) { return arch.expert_linear_name(layer, e, r); },
        cfg.moe_intermediate_size, opts));
  if (!arch.moe.shared_expert.empty() && cfg.shared_expert_intermediate_size > 0) {
    m.shared = load_ffn(
        ck, cfg, [&](LinearRole r) { return arch.shared_expert_linear_name(layer, r); },
        cfg.shared_expert_intermediate_size, opts);
    const std::string gate = arch.shared_gate_name(layer) + ".weight";
    const TensorInfo& t = float_tensor(ck, gate, {1, d});
    m.shared_gate.resize(size_t(d));
    convert_to_f32(t.dtype, t.data, d, m.shared_gate.data());
  }
  return m;
}

// A norm weight as its effective multiplier (w + the family's offset), checked to be [n].
std::vector<float> load_norm(const Checkpoint& ck, const Architecture& arch,
                             const std::string& name, int64_t n) {
  float_tensor(ck, name, {n});
  std::vector<float> v = ck.read_vec(name, n);
  const float off = arch.norm_offset();
  if (off != 0)
    for (float& x : v) x += off;  // in f32, as HF computes 1 + w
  return v;
}

}  // namespace

int fuse_block_w4(BlockWeights& b) {
  Linear* qkv[] = {&b[LinearRole::Q], &b[LinearRole::K], &b[LinearRole::V]};
  Linear* gate_up[] = {&b[LinearRole::Gate], &b[LinearRole::Up]};
  return int(fuse_w4(qkv)) + int(fuse_w4(gate_up));
}

BlockWeights load_block(const Checkpoint& ck, const ModelConfig& cfg, const Architecture& arch,
                        int64_t layer, const LoadOptions& opts) {
  AWQ_CHECK(layer >= 0 && layer < cfg.num_hidden_layers,
            "{}: block {} does not exist (the model has {})", ck.dir(), layer,
            cfg.num_hidden_layers);
  BlockWeights b;
  b.layer = layer;
  const int64_t d = cfg.hidden_size;
  b.attn_norm = load_norm(ck, arch, arch.norm_name(layer, NormRole::Attn), d);
  b.mlp_norm = load_norm(ck, arch, arch.norm_name(layer, NormRole::Mlp), d);
  if (arch.has_qk_norm()) {
    b.q_norm =
        load_norm(ck, arch, arch.layer_name(layer, arch.q_norm_name + ".weight"), cfg.head_dim);
    b.k_norm =
        load_norm(ck, arch, arch.layer_name(layer, arch.k_norm_name + ".weight"), cfg.head_dim);
  }
  if (arch.has_post_norms()) {
    b.post_attn_norm =
        load_norm(ck, arch, arch.layer_name(layer, arch.post_attn_norm_name + ".weight"), d);
    b.post_mlp_norm =
        load_norm(ck, arch, arch.layer_name(layer, arch.post_mlp_norm_name + ".weight"), d);
  }
  const bool sparse = cfg.is_moe_layer(layer);
  for (LinearRole r : kAllLinearRoles)
    if (!(sparse && is_ffn_role(r))) b[r] = load_linear(ck, cfg, arch, layer, r, opts);
  if (sparse) b.moe = load_moe(ck, cfg, arch, layer, opts);
  if (opts.weights == WeightForm::W4) fuse_block_w4(b);
  return b;
}

namespace {

// The layer's per-head RMSNorm (Qwen3, Gemma-3: before RoPE) and RoPE on every head of every row
// of m; row r is at position pos0 + r % T. Only the first rotary_dim dimensions of a head rotate
// (partial_rotary_factor); the table depends on the layer (Gemma-3's local layers) and, for the
// dynamic and longrope types, on the sequence's length.
void norm_and_rope(const ModelConfig& c, int64_t layer, const std::vector<float>& head_norm, Mat& m,
                   int64_t n_heads, int64_t T, int64_t pos0) {
  const int64_t hd = c.head_dim;
  const RopeSpec spec = c.rope(layer);
  const auto table = rotary_table(spec, pos0 + T);
  const int64_t rot = spec.rotary_dim;
  parallel_for(m.rows, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t pos = pos0 + r % T;
      for (int64_t h = 0; h < n_heads; ++h) {
        float* x = m.row(r) + h * hd;
        if (!head_norm.empty()) rmsnorm_row(x, head_norm.data(), hd, c.rms_norm_eps, x);
        rope_rotate_half(x, rot, table->cos_at(pos), table->sin_at(pos));
      }
    }
  });
}

void check_ffn(const FfnWeights& f, int64_t hidden, int64_t I, const char* what) {
  AWQ_CHECK(f.gate.out == I && f.gate.in == hidden && f.up.out == I && f.up.in == hidden &&
                f.down.out == hidden && f.down.in == I,
            "block weights: {} is gate [{} x {}], up [{} x {}], down [{} x {}]; the config needs "
            "[{} x {}], [{} x {}], [{} x {}]",
            what, f.gate.out, f.gate.in, f.up.out, f.up.in, f.down.out, f.down.in, I, hidden, I,
            hidden, hidden, I);
}

void check_block(const ModelConfig& c, const BlockWeights& w) {
  const bool sparse = c.is_moe_layer(w.layer);
  AWQ_CHECK(sparse == w.is_moe(),
            "block weights: layer {} is {} in the config but its weights are {}", w.layer,
            sparse ? "a sparse MoE layer" : "dense", w.is_moe() ? "an MoE's" : "a dense MLP's");
  if (sparse) {
    for (const FfnWeights& f : w.moe.experts)
      check_ffn(f, c.hidden_size, c.moe_intermediate_size, "an expert");
    if (w.moe.shared.present())
      check_ffn(w.moe.shared, c.hidden_size, c.shared_expert_intermediate_size,
                "the shared expert");
  }
  for (LinearRole r : kAllLinearRoles) {
    if (sparse && is_ffn_role(r)) continue;
    const auto [out, in] = linear_shape(c, r);
    AWQ_CHECK(w[r].in == in && w[r].out == out,
              "block weights: {} is [{} x {}], the config needs [{} x {}]", linear_role_name(r),
              w[r].out, w[r].in, out, in);
  }
  // Optional norms are either absent (the block has none) or of the right width.
  AWQ_CHECK(w.q_norm.empty() || int64_t(w.q_norm.size()) == c.head_dim,
            "block weights: q_norm has {} elements, expected head_dim {}", w.q_norm.size(),
            c.head_dim);
  AWQ_CHECK(w.k_norm.empty() || int64_t(w.k_norm.size()) == c.head_dim,
            "block weights: k_norm has {} elements, expected head_dim {}", w.k_norm.size(),
            c.head_dim);
  for (const auto* n : {&w.post_attn_norm, &w.post_mlp_norm})
    AWQ_CHECK(n->empty() || int64_t(n->size()) == c.hidden_size,
              "block weights: a post norm has {} elements, expected hidden {}", n->size(),
              c.hidden_size);
}

// Attention for n_seq sequences of T new tokens at positions pos0..pos0+T-1. Without a cache the
// sequences' own keys/values are all there is (pos0 == 0); with one (n_seq == 1) the new keys and
// values are stored at positions pos0.. and the queries attend over positions 0..pos0+T-1.
void attention_impl(const ModelConfig& c, const BlockWeights& w, const Mat& xn, int64_t n_seq,
                    int64_t T, int64_t pos0, KvCache* cache, Mat& out, Mat* o_in) {
  const int64_t N = n_seq * T, hd = c.head_dim, nh = c.num_attention_heads,
                nkv = c.num_key_value_heads;
  const int64_t qd = c.q_dim(), kvd = c.kv_dim();
  AWQ_CHECK(xn.rows == N && xn.cols == c.hidden_size,
            "attention: input is [{} x {}], expected [{} x {}]", xn.rows, xn.cols, N,
            c.hidden_size);
  Mat q, k, v;
  const Linear* qkv[] = {&w[LinearRole::Q], &w[LinearRole::K], &w[LinearRole::V]};
  Mat* qkv_out[] = {&q, &k, &v};
  forward_group(qkv, xn, qkv_out);
  norm_and_rope(c, w.layer, w.q_norm, q, nh, T, pos0);
  norm_and_rope(c, w.layer, w.k_norm, k, nkv, T, pos0);
  if (cache) cache->store(k, v, pos0);
  Mat att;
  att.resize_for_overwrite(N, qd);  // every (sequence, head) writes its columns of all rows
  const int64_t group = nh / nkv;   // query heads per KV head (GQA), as HF's repeat_kv
  const float scale = c.attn_scale > 0 ? c.attn_scale : float(1.0 / std::sqrt(double(hd)));
  AttnVariant variant;
  variant.window = c.window(w.layer);
  variant.softcap = c.attn_softcap;
  if (cache) {
    attend_cached(q.data.data(), qd, T, nh, pos0, *cache, scale, att.data.data(), qd, variant);
  } else {
    parallel_for(n_seq * nh, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t s = t / nh, h = t % nh, g = h / group;
        attend_causal(q.row(s * T) + h * hd, qd, T, 0, k.row(s * T) + g * hd, v.row(s * T) + g * hd,
                      kvd, hd, scale, att.row(s * T) + h * hd, qd, variant);
      }
    });
  }
  w[LinearRole::O].forward(att, out);
  if (o_in) *o_in = std::move(att);
}

void add_inplace(Mat& a, const Mat& b) {
  parallel_for(a.size(), 1 << 16, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) a.data[size_t(i)] += b.data[size_t(i)];
  });
}

// The residual structure shared by both forwards; `attend` computes attention on the normed input.
// Gemma-2/3 normalize each sub-layer's output (post_attn_norm, post_mlp_norm) before its residual
// add; the capture keeps the outputs before those norms (what the scale search compares).
template <typename Attend>
void block_impl(const ModelConfig& c, const BlockWeights& w, const Mat& x, Mat& out,
                BlockCapture* cap, Attend&& attend) {
  Mat xn;
  rmsnorm(x, w.attn_norm, c.rms_norm_eps, xn);
  Mat a;
  attend(xn, a, cap ? &cap->o_in : nullptr);
  if (cap) {
    cap->attn_in = std::move(xn);
    cap->captured(cap->o_in);
    cap->captured(cap->attn_in);
  }
  Mat h = x;  // x may alias out: read it fully before out is written
  if (!w.post_attn_norm.empty()) {
    Mat an;
    rmsnorm(a, w.post_attn_norm, c.rms_norm_eps, an);
    add_inplace(h, an);
  } else {
    add_inplace(h, a);
  }
  Mat hn;
  rmsnorm(h, w.mlp_norm, c.rms_norm_eps, hn);
  // The MLP's output reuses the attention output's buffer, unless the capture keeps that.
  Mat m;
  if (cap) {
    cap->attn_out = std::move(a);
    cap->captured(cap->attn_out);
  } else {
    m = std::move(a);
  }
  if (w.is_moe()) {
    moe_forward(c, w.moe, hn, m, cap ? &cap->moe : nullptr);
  } else {
    const bool sink = cap && cap->down_in_rows;
    mlp_forward(c, w, hn, m, cap && !sink ? &cap->down_in : nullptr,
                sink ? &cap->down_in_rows : nullptr);
    if (cap && !sink) cap->captured(cap->down_in);
  }
  if (cap) {
    cap->mlp_in = std::move(hn);
    cap->captured(cap->mlp_in);
  }
  if (!w.post_mlp_norm.empty()) {
    Mat mn;
    rmsnorm(m, w.post_mlp_norm, c.rms_norm_eps, mn);
    add_inplace(h, mn);
  } else {
    add_inplace(h, m);
  }
  if (cap) {
    cap->mlp_out = std::move(m);
    cap->captured(cap->mlp_out);
  }
  out = std::move(h);
}

}  // namespace

BlockWeights load_block_f32(const Checkpoint& ck, const ModelConfig& cfg, const Architecture& arch,
                            int64_t layer) {
  return load_block(ck, cfg, arch, layer, LoadOptions{WeightForm::F32});
}

BlockWeights load_block_native(const Checkpoint& ck, const ModelConfig& cfg,
                               const Architecture& arch, int64_t layer) {
  return load_block(ck, cfg, arch, layer, LoadOptions{WeightForm::Native});
}

void attention_forward(const ModelConfig& cfg, const BlockWeights& w, const Mat& xn, int64_t n_seq,
                       int64_t T, Mat& out, Mat* o_in) {
  attention_impl(cfg, w, xn, n_seq, T, 0, nullptr, out, o_in);
}

namespace {

// Rows per pass of a long input (many calibration sequences): the intermediate activations of a
// chunk stay small (in cache, and reused heap memory) instead of two [tokens, intermediate]
// matrices that are fresh mappings page-faulted in on every call. Every product is
// row-independent, so chunking changes no bit.
constexpr int64_t kMlpChunkRows = 2048;

// The MLP on xn -> out; gate and up are the caller's buffers (gate ends up holding down's input).
void mlp_rows(const ModelConfig& c, const Linear& gate_w, const Linear& up_w, const Linear& down_w,
              const Mat& xn, Mat& out, Mat& gate, Mat& up) {
  const Linear* gate_up[] = {&gate_w, &up_w};
  Mat* gate_up_out[] = {&gate, &up};
  forward_group(gate_up, xn, gate_up_out);
  const bool gelu = c.activation == Activation::GeluTanh;
  parallel_for(gate.size(), 1 << 14, [&](int64_t i0, int64_t i1) {
    if (gelu) {
      geglu(gate.data.data() + i0, up.data.data() + i0, i1 - i0);
    } else {
      swiglu(gate.data.data() + i0, up.data.data() + i0, i1 - i0);
    }
  });
  down_w.forward(gate, out);
}

}  // namespace

void mlp_forward(const ModelConfig& cfg, const BlockWeights& w, const Mat& xn, Mat& out,
                 Mat* down_in, const RowSink* down_in_rows) {
  ffn_forward(cfg, w[LinearRole::Gate], w[LinearRole::Up], w[LinearRole::Down], xn, out, down_in,
              down_in_rows);
}

void ffn_forward(const ModelConfig& cfg, const Linear& gate_w, const Linear& up_w,
                 const Linear& down_w, const Mat& xn, Mat& out, Mat* down_in,
                 const RowSink* down_in_rows) {
  AWQ_CHECK(xn.cols == cfg.hidden_size, "mlp: input has {} columns, expected {}", xn.cols,
            cfg.hidden_size);
  Mat gate, up;
  if (xn.rows <= kMlpChunkRows) {
    mlp_rows(cfg, gate_w, up_w, down_w, xn, out, gate, up);
    if (down_in_rows) (*down_in_rows)(0, xn.rows, gate);
    if (down_in) *down_in = std::move(gate);
    return;
  }
  const int64_t n = xn.rows, f = gate_w.out;
  out.resize_for_overwrite(n, down_w.out);
  if (down_in) down_in->resize_for_overwrite(n, f);
  Mat xc, oc;
  for (int64_t r0 = 0; r0 < n; r0 += kMlpChunkRows) {
    const int64_t rows = std::min(kMlpChunkRows, n - r0);
    xc.resize_for_overwrite(rows, xn.cols);
    std::copy(xn.row(r0), xn.row(r0 + rows), xc.row(0));
    mlp_rows(cfg, gate_w, up_w, down_w, xc, oc, gate, up);
    std::copy(oc.data.begin(), oc.data.end(), out.row(r0));
    if (down_in) std::copy(gate.data.begin(), gate.data.end(), down_in->row(r0));
    if (down_in_rows) (*down_in_rows)(r0, n, gate);
  }
}

void block_forward(const ModelConfig& cfg, const BlockWeights& w, const Mat& x, int64_t n_seq,
                   int64_t T, Mat& out, BlockCapture* cap) {
  check_block(cfg, w);
  AWQ_CHECK(x.rows == n_seq * T,
            "block_forward: input has {} rows, expected {} sequences x {} tokens", x.rows, n_seq,
            T);
  block_impl(cfg, w, x, out, cap, [&](const Mat& xn, Mat& a, Mat* o_in) {
    attention_impl(cfg, w, xn, n_seq, T, 0, nullptr, a, o_in);
  });
}

void block_forward_cached(const ModelConfig& cfg, const BlockWeights& w, const Mat& x, int64_t pos,
                          KvCache& cache, Mat& out) {
  block_impl(cfg, w, x, out, nullptr, [&](const Mat& xn, Mat& a, Mat* o_in) {
    attention_impl(cfg, w, xn, 1, x.rows, pos, &cache, a, o_in);
  });
}

}  // namespace awq
