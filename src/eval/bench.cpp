#include "eval/bench.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <thread>

#include <sys/resource.h>

#include "base/error.h"
#include "base/half.h"
#include "base/sysinfo.h"
#include "base/thread_pool.h"
#include "formats/checkpoint.h"
#include "kernels/kernels.h"
#include "kernels/weight_memory.h"
#include "model/architecture.h"
#include "model/ops.h"
#include "quant/quantize.h"
#include "tools/synth.h"

namespace awq {

const char* bench_form_name(BenchForm f) {
  switch (f) {
    case BenchForm::F32:
      return "f32";
    case BenchForm::F16:
      return "f16";
    case BenchForm::W4:
      return "w4";
    case BenchForm::W4A8:
      return "w4a8";
  }
  return "?";
}

BenchForm parse_bench_form(const std::string& s) {
  for (BenchForm f : {BenchForm::F32, BenchForm::F16, BenchForm::W4, BenchForm::W4A8})
    if (s == bench_form_name(f)) return f;
  fail("unknown weight form '{}' for bench (expected f16, f32, w4 or w4a8)", s);
}

bool is_w4(BenchForm f) {
  return f == BenchForm::W4 || f == BenchForm::W4A8;
}

namespace {

// Decode against the bandwidth roofline: the fraction of `bandwidth_gbs` the row reads at, and the
// tokens/s that bandwidth would allow for its bytes per token.
void set_roofline(BenchRow& row, double bandwidth_gbs) {
  const double bytes = double(row.bytes.total());
  if (bytes <= 0 || bandwidth_gbs <= 0) return;
  row.roofline_fraction = row.decode_gbs / bandwidth_gbs;
  row.roofline_tok_s = bandwidth_gbs * 1e9 / bytes;
}

const Architecture& arch_of(const ModelConfig& cfg, const std::string& what) {
  const Architecture* a = find_architecture(cfg.model_type);
  AWQ_CHECK(a != nullptr, "{}: unsupported model_type '{}' (supported: {})", what, cfg.model_type,
            supported_model_types());
  return *a;
}

// Counter-based random numbers: element i of tensor `id` is a pure function of (seed, id, i), so
// parallel filling gives the same bits for any thread count.
uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Uniform in [-a, a) with a = sqrt(3) * stddev.
void fill_uniform(float* dst, int64_t n, uint64_t seed, uint64_t id, float stddev) {
  const float a = std::sqrt(3.0f) * stddev;
  const uint64_t base = mix64(seed ^ mix64(id + 0x51ed270b27ull));
  parallel_for(n, 1 << 16, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const float u = float(mix64(base + uint64_t(i)) >> 40) * (1.0f / 16777216.0f);
      dst[i] = (2.0f * u - 1.0f) * a;
    }
  });
}

// f16 copies live in the same kind of memory as the packed W4 matrices (kernels/weight_memory.h:
// huge pages where the kernel grants them), so that f16 and W4 rows compare kernels, not pages.
std::shared_ptr<uint16_t> to_f16(const float* src, int64_t n) {
  auto bytes = kernels::alloc_weight_bytes(size_t(n) * 2);
  auto buf = std::shared_ptr<uint16_t>(bytes, reinterpret_cast<uint16_t*>(bytes.get()));
  uint16_t* d = buf.get();
  parallel_for(n, 1 << 16, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) d[i] = f32_to_f16(src[i]);
  });
  return buf;
}

// Calls f(linear, expert, role) on each gate, up and down of a sparse layer's experts (expert
// 0..E-1) and of its shared expert (expert E), the linears that take the weight form; the router
// and the shared expert's gate stay f32 in every form.
template <class Moe, class F>
void for_each_expert_linear(Moe& moe, F&& f) {
  const int64_t E = int64_t(moe.experts.size());
  for (int64_t e = 0; e <= E; ++e) {
    auto& x = e < E ? moe.experts[size_t(e)] : moe.shared;
    if (e == E && !x.present()) break;
    f(x.gate, e, LinearRole::Gate);
    f(x.up, e, LinearRole::Up);
    f(x.down, e, LinearRole::Down);
  }
}

// The tensor name of expert e's linear r (e == E: the shared expert's), for error messages.
std::string expert_linear_name(const Architecture& arch, const ModelConfig& cfg, int64_t layer,
                               int64_t e, LinearRole r) {
  return e < cfg.num_experts ? arch.expert_linear_name(layer, e, r)
                             : arch.shared_expert_linear_name(layer, r);
}

bool is_ffn_role(LinearRole r) {
  return r == LinearRole::Gate || r == LinearRole::Up || r == LinearRole::Down;
}

}  // namespace

Linear linear_in_form(Mat&& w, BenchForm form, int group_size, const std::string& name,
                      std::vector<std::shared_ptr<const void>>& storage) {
  Linear l;
  l.out = w.rows;
  l.in = w.cols;
  switch (form) {
    case BenchForm::F32:
      l.w = std::move(w);
      break;
    case BenchForm::F16: {
      auto buf = to_f16(w.data.data(), w.size());
      l.w16 = buf.get();
      l.w16_type = DType::F16;
      storage.push_back(std::move(buf));
      break;
    }
    case BenchForm::W4:
    case BenchForm::W4A8: {
      const QuantSpec spec{4, group_size, true};
      const QuantizedMatrix q = quantize(w.data.data(), w.rows, w.cols, spec, name);
      kernels::W4Source src;
      src.out = q.out;
      src.in = q.in;
      src.group = q.group == q.in ? -1 : q.group;
      src.codes = q.codes.data();
      src.scales = q.scales.data();
      src.zeros = q.zeros.data();
      try {
        l.w4 = std::make_shared<const kernels::W4Matrix>(kernels::W4Matrix::pack(src));
      } catch (const Error& e) {
        fail("{}: cannot run on the 4-bit kernels with --group-size {}: {}", name, group_size,
             e.what());
      }
      l.w4a8 = form == BenchForm::W4A8;
      break;
    }
  }
  return l;
}

DecodeBytes BenchModel::decode_bytes() const {
  DecodeBytes b;
  for (const auto& blk : blocks) {
    b.norms_biases +=
        int64_t(blk.attn_norm.size() + blk.mlp_norm.size() + blk.q_norm.size() + blk.k_norm.size() +
                blk.post_attn_norm.size() + blk.post_mlp_norm.size()) *
        4;
    for (const auto& l : blk.lin) {
      b.linears += l.weight_bytes();
      b.norms_biases += int64_t(l.bias.size()) * 4;
    }
    // A sparse layer's empty gate/up/down above count nothing; a token reads the router, the
    // shared expert and its k experts (the same count as Model::weight_bytes).
    b.linears += moe_active_weight_bytes(cfg, blk.moe);
  }
  b.norms_biases += int64_t(final_norm.size()) * 4;
  b.lm_head = lm_head.weight_bytes();
  b.embedding_row = cfg.hidden_size * int64_t(dtype_size(embed_dtype));
  return b;
}

int64_t BenchModel::resident_weight_bytes() const {
  int64_t b = lm_head.weight_bytes() + lm_head_source_bytes;
  if (embed != nullptr && !(lm_head.w16 && reinterpret_cast<const uint8_t*>(lm_head.w16) == embed))
    b += cfg.vocab_size * cfg.hidden_size * int64_t(dtype_size(embed_dtype));
  for (const auto& blk : blocks) {
    for (const auto& l : blk.lin) b += l.weight_bytes();
    if (!blk.is_moe()) continue;
    b += blk.moe.router.size() * 4 + int64_t(blk.moe.shared_gate.size()) * 4;
    for_each_expert_linear(blk.moe,
                           [&](const Linear& l, int64_t, LinearRole) { b += l.weight_bytes(); });
  }
  return b;
}

int64_t BenchModel::kv_cache_bytes_per_token(int64_t depth, int64_t n) const {
  // The token at position p reads the keys and values of positions 0..p: p + 1 rows of kv_dim
  // f32 each, in every block. Over p = depth .. depth+n-1 that is depth + (n + 1) / 2 rows on
  // average (exact: 2 * kv_dim * 4 is even).
  const int64_t per_row = int64_t(blocks.size()) * 2 * cfg.kv_dim() * 4;
  return n > 0 ? per_row * (2 * depth + n + 1) / 2 : 0;
}

double BenchModel::prefill_flops(int64_t T) const {
  double linear_macs = 0;
  for (const auto& blk : blocks) {
    for (const auto& l : blk.lin) linear_macs += double(l.in) * double(l.out);
    linear_macs += moe_active_macs(cfg, blk.moe);  // k experts per token, as decode_bytes
  }
  // Causal attention: T(T+1)/2 query-key pairs per head, a q.k and a p.v of head_dim MACs each.
  const double attn =
      double(blocks.size()) * double(T) * double(T + 1) / 2.0 * 2.0 * double(cfg.q_dim());
  const double head = double(lm_head.in) * double(lm_head.out);  // the last token only
  return 2.0 * (double(T) * linear_macs + attn + head);
}

void BenchModel::set_w4a8(bool on) {
  for (auto& blk : blocks) {
    for (auto& l : blk.lin)
      if (l.w4) l.w4a8 = on;
    for_each_expert_linear(blk.moe, [&](Linear& l, int64_t, LinearRole) {
      if (l.w4) l.w4a8 = on;
    });
  }
  if (lm_head.w4) lm_head.w4a8 = on;
  if (is_w4(form)) form = on ? BenchForm::W4A8 : BenchForm::W4;
}

void BenchModel::quantize_lm_head(int group_size) {
  AWQ_CHECK(is_w4(form), "quantize_lm_head: the model is {}, not a W4 form", bench_form_name(form));
  Linear q = linear_in_form(lm_head.weight_f32(), form, group_size, "lm_head", storage);
  q.bias = std::move(lm_head.bias);
  lm_head = std::move(q);
}

void BenchModel::lm_head_to_q8() {
  const bool tied = lm_head.w16 && reinterpret_cast<const uint8_t*>(lm_head.w16) == embed;
  if (!tied && !lm_head.q8) lm_head_source_bytes = lm_head.weight_bytes();
  lm_head = to_q8(lm_head, "lm_head");
}

int BenchModel::fuse_w4_groups() {
  int n = 0;
  for (auto& b : blocks) {
    n += fuse_block_w4(b);
    // As load_block's experts: gate|up of each expert is one call in decode.
    const int64_t E = int64_t(b.moe.experts.size());
    for (int64_t e = 0; e <= E; ++e) {
      FfnWeights& f = e < E ? b.moe.experts[size_t(e)] : b.moe.shared;
      if (!f.present()) continue;
      Linear* gate_up[] = {&f.gate, &f.up};
      n += int(fuse_w4(gate_up));
    }
  }
  return n;
}

void block_to_f16(BlockWeights& b, std::vector<std::shared_ptr<const void>>& storage) {
  auto to_f16_rows = [&](Linear& l) {
    if (!l.has_weight()) return;                    // a sparse layer's dense gate/up/down
    if (l.w16 && l.w16_type == DType::F16) return;  // already f16 rows in the mapping
    Linear f = linear_in_form(l.weight_f32(), BenchForm::F16, 0, "", storage);
    f.bias = std::move(l.bias);
    l = std::move(f);
  };
  for (Linear& l : b.lin) to_f16_rows(l);
  for_each_expert_linear(b.moe, [&](Linear& l, int64_t, LinearRole) { to_f16_rows(l); });
}

BenchModel make_synthetic_bench_model(const ModelConfig& cfg, BenchForm form, int group_size,
                                      uint64_t seed) {
  const Architecture& arch = arch_of(cfg, "bench shape");
  const int64_t d = cfg.hidden_size, V = cfg.vocab_size;
  BenchModel m;
  m.cfg = cfg;
  m.form = form;
  // Embeddings (and the lm_head) stay f16 in every form, as AWQ checkpoints keep them.
  {
    Mat e(V, d);
    fill_uniform(e.data.data(), e.size(), seed, 1, 0.02f);
    auto buf = to_f16(e.data.data(), e.size());
    m.embed = reinterpret_cast<const uint8_t*>(buf.get());
    m.embed_dtype = DType::F16;
    m.storage.push_back(buf);
  }
  m.lm_head.out = V;
  m.lm_head.in = d;
  if (cfg.tie_word_embeddings) {
    m.lm_head.w16 = reinterpret_cast<const uint16_t*>(m.embed);
  } else {
    Mat h(V, d);
    fill_uniform(h.data.data(), h.size(), seed, 2, 0.02f);
    auto buf = to_f16(h.data.data(), h.size());
    m.lm_head.w16 = buf.get();
    m.storage.push_back(std::move(buf));
  }
  m.final_norm.assign(size_t(d), 1.0f);
  m.blocks.resize(size_t(cfg.num_hidden_layers));
  // One [out, in] matrix drawn in f32 and converted to the form at once. A Kaiming-like scale
  // keeps the residual stream bounded through many random blocks.
  auto random_linear = [&](int64_t out, int64_t in, uint64_t id, const std::string& name) {
    Mat w(out, in);
    fill_uniform(w.data.data(), w.size(), seed, id, 1.0f / std::sqrt(float(in)));
    return linear_in_form(std::move(w), form, group_size, name, m.storage);
  };
  // Tensor ids: 1, 2 above; 16 + layer * 16 + role (+ 8: its bias) for the dense linears; the
  // MoE's own ranges above 2^40 cannot meet those.
  constexpr uint64_t kExpertIds = uint64_t(1) << 40, kRouterIds = uint64_t(2) << 40;
  for (int64_t layer = 0; layer < cfg.num_hidden_layers; ++layer) {
    BlockWeights& b = m.blocks[size_t(layer)];
    b.layer = layer;  // the forward picks the layer's sliding window, RoPE and MoE by it
    b.attn_norm.assign(size_t(d), 1.0f);
    b.mlp_norm.assign(size_t(d), 1.0f);
    // The family's extra norms (Qwen3's per-head q/k norms, Gemma's post-norms) cost time too.
    if (arch.has_qk_norm()) {
      b.q_norm.assign(size_t(cfg.head_dim), 1.0f);
      b.k_norm.assign(size_t(cfg.head_dim), 1.0f);
    }
    if (arch.has_post_norms()) {
      b.post_attn_norm.assign(size_t(d), 1.0f);
      b.post_mlp_norm.assign(size_t(d), 1.0f);
    }
    const bool sparse = cfg.is_moe_layer(layer);
    for (LinearRole r : kAllLinearRoles) {
      if (sparse && is_ffn_role(r)) continue;  // the MoE below replaces the dense MLP
      const auto [out, in] = linear_shape(cfg, r);
      const uint64_t id = 16 + uint64_t(layer) * 16 + uint64_t(r);
      b[r] = random_linear(out, in, id, arch.linear_name(layer, r));
      if (linear_has_bias(cfg, r)) {
        b[r].bias.resize(size_t(out));
        fill_uniform(b[r].bias.data(), out, seed, id + 8, 0.02f);
      }
    }
    if (!sparse) continue;
    const int64_t E = cfg.num_experts;
    MoeWeights& moe = b.moe;
    moe.router.resize(E, d);
    fill_uniform(moe.router.data.data(), moe.router.size(), seed, kRouterIds + uint64_t(layer) * 2,
                 1.0f / std::sqrt(float(d)));
    moe.experts.resize(size_t(E));
    if (cfg.shared_expert_intermediate_size > 0 && !arch.moe.shared_expert.empty()) {
      moe.shared_gate.resize(size_t(d));
      fill_uniform(moe.shared_gate.data(), d, seed, kRouterIds + uint64_t(layer) * 2 + 1,
                   1.0f / std::sqrt(float(d)));
    }
    // Expert e's linears (e == E: the shared expert), one at a time: only one expert matrix is
    // ever held in f32, whatever the form.
    for (int64_t e = 0; e <= E; ++e) {
      if (e == E && moe.shared_gate.empty()) break;
      FfnWeights& f = e < E ? moe.experts[size_t(e)] : moe.shared;
      const int64_t I = e < E ? cfg.moe_intermediate_size : cfg.shared_expert_intermediate_size;
      const uint64_t id = kExpertIds + (uint64_t(layer) * uint64_t(E + 1) + uint64_t(e)) * 4;
      auto name = [&](LinearRole r) { return expert_linear_name(arch, cfg, layer, e, r); };
      f.gate = random_linear(I, d, id, name(LinearRole::Gate));
      f.up = random_linear(I, d, id + 1, name(LinearRole::Up));
      f.down = random_linear(d, I, id + 2, name(LinearRole::Down));
    }
  }
  return m;
}

BenchModel make_checkpoint_bench_model(const std::string& dir, BenchForm form, int group_size) {
  auto ck = std::make_shared<Checkpoint>(Checkpoint::open(dir));
  BenchModel m;
  m.cfg = ModelConfig::load(dir);
  m.form = form;
  const ModelConfig& cfg = m.cfg;
  const Architecture& arch = arch_of(cfg, dir);
  const int64_t d = cfg.hidden_size, V = cfg.vocab_size;
  auto is_float = [](DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; };

  const TensorInfo& e = ck->get(arch.embed_name, {V, d});
  AWQ_CHECK(is_float(e.dtype), "{}: tensor '{}' has dtype {}, expected F32, F16 or BF16", e.file,
            arch.embed_name, dtype_name(e.dtype));
  m.embed = e.data;
  m.embed_dtype = e.dtype;
  m.final_norm = ck->read_vec(arch.final_norm_name, d);
  const TensorInfo& h = cfg.tie_word_embeddings ? e : ck->get(arch.lm_head_name, {V, d});
  AWQ_CHECK(is_float(h.dtype), "{}: tensor '{}' has dtype {}, expected F32, F16 or BF16", h.file,
            arch.lm_head_name, dtype_name(h.dtype));
  m.lm_head = linear_in_place(h.data, h.dtype, V, d);

  const bool awq_checkpoint = cfg.quant.has_value();
  for (int64_t layer = 0; layer < cfg.num_hidden_layers; ++layer) {
    BlockWeights b;
    if (is_w4(form) && awq_checkpoint) {
      // The checkpoint's own integer codes, packed as `awq generate --weights w4` runs them.
      LoadOptions o;
      o.weights = WeightForm::W4;
      o.w4a8 = form == BenchForm::W4A8;
      b = load_block(*ck, cfg, arch, layer, o);
    } else if (form == BenchForm::F16) {
      b = load_block_native(*ck, cfg, arch, layer);
      block_to_f16(b, m.storage);
    } else {
      // f32 copies of the block (one block at a time: an MoE's experts are f32 only while their
      // block is converted).
      b = load_block_f32(*ck, cfg, arch, layer);
      if (is_w4(form)) {
        auto quantize_in_place = [&](Linear& l, const std::string& name) {
          if (!l.has_weight()) return;
          Linear q = linear_in_form(std::move(l.w), form, group_size, dir + ": " + name, m.storage);
          q.bias = std::move(l.bias);
          l = std::move(q);
        };
        for (LinearRole r : kAllLinearRoles) quantize_in_place(b[r], arch.linear_name(layer, r));
        for_each_expert_linear(b.moe, [&](Linear& l, int64_t e, LinearRole r) {
          quantize_in_place(l, expert_linear_name(arch, cfg, layer, e, r));
        });
      }
    }
    m.blocks.push_back(std::move(b));
  }
  m.storage.push_back(std::move(ck));
  return m;
}

BenchSession::BenchSession(const BenchModel& m, int64_t capacity) : m_(&m) {
  AWQ_CHECK(capacity > 0, "BenchSession: capacity must be positive (got {})", capacity);
  // A builder that does not know MoE (one for another source) leaves a sparse layer without
  // experts; say so here rather than fail later on an empty linear.
  for (size_t l = 0; l < m.blocks.size(); ++l)
    AWQ_CHECK(m.cfg.is_moe_layer(int64_t(l)) == m.blocks[l].is_moe(),
              "bench: layer {} is {} in the {} config but its weights are {}", l,
              m.cfg.is_moe_layer(int64_t(l)) ? "a sparse MoE layer" : "dense", m.cfg.model_type,
              m.blocks[l].is_moe() ? "an MoE's" : "a dense MLP's (or none: no experts were built)");
  cache_.resize(m.blocks.size());
  for (auto& c : cache_) c.resize(m.cfg.num_key_value_heads, capacity, m.cfg.head_dim);
}

std::vector<float> BenchSession::feed(std::span<const int32_t> tokens) {
  const int64_t n = int64_t(tokens.size()), d = m_->cfg.hidden_size;
  AWQ_CHECK(n > 0, "BenchSession::feed: no tokens");
  AWQ_CHECK(cache_.empty() || pos_ + n <= cache_[0].capacity(),
            "bench: {} tokens so far + {} new exceed the session's {} positions", pos_, n,
            cache_.empty() ? 0 : cache_[0].capacity());
  Mat x(n, d);
  const size_t row_bytes = size_t(d) * dtype_size(m_->embed_dtype);
  for (int64_t i = 0; i < n; ++i) {
    const int32_t t = tokens[size_t(i)];
    AWQ_CHECK(t >= 0 && t < m_->cfg.vocab_size, "bench: token id {} outside the vocabulary", t);
    convert_to_f32(m_->embed_dtype, m_->embed + size_t(t) * row_bytes, d, x.row(i));
  }
  for (size_t l = 0; l < cache_.size(); ++l)
    block_forward_cached(m_->cfg, m_->blocks[l], x, pos_, cache_[l], x);
  pos_ += n;
  std::vector<float> last(static_cast<size_t>(d)), logits(static_cast<size_t>(m_->cfg.vocab_size));
  rmsnorm_row(x.row(n - 1), m_->final_norm.data(), d, m_->cfg.rms_norm_eps, last.data());
  m_->lm_head.forward(last.data(), 1, logits.data());
  return logits;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

double load_average_1m() {
  std::ifstream f("/proc/loadavg");
  double l = -1;
  if (!(f >> l)) return -1;
  return l;
}

double process_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto sec = [](const timeval& t) { return double(t.tv_sec) + double(t.tv_usec) * 1e-6; };
  return sec(u.ru_utime) + sec(u.ru_stime);
}

namespace {

// Token ids spread over the vocabulary: what they are does not change the work of a forward.
std::vector<int32_t> bench_tokens(int64_t n, int64_t vocab) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) t[size_t(i)] = int32_t((i * 7919 + 1) % vocab);
  return t;
}

double time_prompt(BenchSession& s, const std::vector<int32_t>& toks) {
  s.reset();
  Timer t;
  s.feed(toks);
  return t.seconds();
}

// Decodes toks one at a time after `depth` positions of context, prefilled untimed; adds the
// process CPU time of the timed part to *cpu.
double time_decode(BenchSession& s, const std::vector<int32_t>& toks, int64_t depth,
                   double* cpu = nullptr) {
  s.reset();
  if (depth > 0) s.feed(bench_tokens(depth, s.model().cfg.vocab_size));
  const double cpu0 = process_cpu_seconds();
  Timer t;
  for (int32_t tok : toks) s.feed(std::span<const int32_t>(&tok, 1));
  const double sec = t.seconds();
  if (cpu) *cpu += process_cpu_seconds() - cpu0;
  return sec;
}

}  // namespace

std::vector<DecodePart> decode_breakdown(const BenchModel& m, int sweeps, double decode_tok_s) {
  AWQ_CHECK(sweeps >= 1, "decode_breakdown: sweeps must be at least 1");
  // The kernel calls of one block as decode makes them: fused groups are one call.
  struct Call {
    std::vector<const Linear*> ls;
    size_t part;
  };
  std::vector<DecodePart> parts;
  auto part_index = [&](const std::string& name) {
    for (size_t i = 0; i < parts.size(); ++i)
      if (parts[i].name == name) return i;
    parts.push_back({name, 0, 0});
    return parts.size() - 1;
  };
  // A router is an f32 matrix, not a Linear: a view of each as one, to time it the same way.
  std::vector<Linear> routers(m.blocks.size());
  std::vector<std::vector<Call>> calls(m.blocks.size());
  for (size_t bi = 0; bi < m.blocks.size(); ++bi) {
    const BlockWeights& b = m.blocks[bi];
    // Linears `ls` of roles `roles` as one call if they are one fused group, else one each; the
    // part is named by the roles ("q|k|v", "o_proj"), after `prefix` ("expert ", "shared ").
    auto add = [&](const std::vector<const Linear*>& ls, const std::vector<LinearRole>& roles,
                   const std::string& prefix) {
      if (ls.size() > 1 && !is_fused_group(ls)) {
        for (size_t i = 0; i < ls.size(); ++i)
          calls[bi].push_back({{ls[i]}, part_index(prefix + linear_role_name(roles[i]))});
        return;
      }
      std::string name;
      for (LinearRole r : roles) {
        std::string n = linear_role_name(r);
        if (roles.size() > 1 && n.size() > 5 && n.ends_with("_proj")) n.resize(n.size() - 5);
        name += (name.empty() ? "" : "|") + n;
      }
      calls[bi].push_back({ls, part_index(prefix + name)});
    };
    auto add_roles = [&](const std::vector<LinearRole>& roles) {
      std::vector<const Linear*> ls;
      for (LinearRole r : roles) ls.push_back(&b[r]);
      add(ls, roles, "");
    };
    auto add_ffn = [&](const FfnWeights& f, const std::string& prefix) {
      add({&f.gate, &f.up}, {LinearRole::Gate, LinearRole::Up}, prefix);
      add({&f.down}, {LinearRole::Down}, prefix);
    };
    add_roles({LinearRole::Q, LinearRole::K, LinearRole::V});
    add_roles({LinearRole::O});
    if (!b.is_moe()) {
      add_roles({LinearRole::Gate, LinearRole::Up});
      add_roles({LinearRole::Down});
      continue;
    }
    Linear& router = routers[bi];
    router.out = b.moe.router.rows;
    router.in = b.moe.router.cols;
    router.w32 = b.moe.router.data.data();
    calls[bi].push_back({{&router}, part_index("router")});
    // k experts per token, as decode reads them: a fixed choice that moves from layer to layer
    // (random routing picks each expert about equally often), so no expert is read twice in a row.
    const int64_t E = int64_t(b.moe.experts.size()), k = m.cfg.num_experts_per_tok;
    for (int64_t j = 0; j < k; ++j)
      add_ffn(b.moe.experts[size_t((int64_t(bi) * k + j) % E)], "expert ");
    if (b.moe.shared.present()) add_ffn(b.moe.shared, "shared ");
  }
  const size_t head = part_index("lm_head");
  // One input row of every width a linear takes (hidden, q_dim, ffn, experts' widths), non-zero.
  std::map<int64_t, Mat> xs;
  auto input = [&](int64_t in) -> const Mat& {
    Mat& x = xs[in];
    if (x.cols != in) {
      x.resize(1, in);
      for (int64_t i = 0; i < in; ++i) x.data[size_t(i)] = float(int(i % 7) - 3) * 0.25f;
    }
    return x;
  };
  std::vector<Mat> ys(3);
  auto timed = [&](std::span<const Linear* const> ls, DecodePart& p) {
    Mat* outs[] = {&ys[0], &ys[1], &ys[2]};
    const Mat& x = input(ls[0]->in);
    const auto t0 = std::chrono::steady_clock::now();
    forward_group(ls, x, std::span<Mat* const>(outs, ls.size()));
    p.ms +=
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  };
  for (int s = -1; s < sweeps; ++s) {  // sweep -1 warms up and is not counted
    if (s == 0)
      for (auto& p : parts) p.ms = 0;
    for (size_t bi = 0; bi < m.blocks.size(); ++bi)
      for (const Call& c : calls[bi]) timed(c.ls, parts[c.part]);
    const Linear* h[] = {&m.lm_head};
    timed(h, parts[head]);
  }
  double sum = 0;
  for (auto& p : parts) {
    p.ms /= sweeps;
    sum += p.ms;
  }
  for (size_t bi = 0; bi < m.blocks.size(); ++bi) {
    for (const Call& c : calls[bi])
      for (const Linear* l : c.ls) parts[c.part].bytes += l->weight_bytes();
    // The shared expert's [hidden] gate is read beside the router (too small to time alone).
    if (m.blocks[bi].is_moe())
      parts[part_index("router")].bytes += int64_t(m.blocks[bi].moe.shared_gate.size()) * 4;
  }
  parts[head].bytes = m.lm_head.weight_bytes();
  DecodePart other;
  other.name = "other";
  other.ms = decode_tok_s > 0 ? 1e3 / decode_tok_s - sum : 0;
  parts.push_back(other);
  return parts;
}

BenchRow bench_model(const BenchModel& m, const BenchOptions& opts, double bandwidth_gbs,
                     const std::function<void()>& before_decode_run) {
  AWQ_CHECK(opts.prompt >= 0 && opts.decode >= 0, "bench: -p and -n must not be negative");
  AWQ_CHECK(opts.repeats >= 1, "bench: --repeats must be at least 1 (got {})", opts.repeats);
  BenchRow row;
  row.form = bench_form_name(m.form);
  AWQ_CHECK(opts.depth >= 0, "bench: --depth must not be negative (got {})", opts.depth);
  row.bytes = m.decode_bytes();
  if (opts.decode > 0) row.bytes.kv_cache = m.kv_cache_bytes_per_token(opts.depth, opts.decode);
  const int64_t cap = std::max<int64_t>({opts.prompt, opts.depth + opts.decode, 8});
  BenchSession s(m, cap);
  const auto ptoks = bench_tokens(opts.prompt, m.cfg.vocab_size);
  const auto dtoks = bench_tokens(opts.decode, m.cfg.vocab_size);
  // Warm-up: touches the KV cache, the kernels' scratch and the RoPE tables once.
  time_prompt(s, bench_tokens(std::min<int64_t>(cap, 16), m.cfg.vocab_size));
  time_decode(s, bench_tokens(std::min<int64_t>(cap, 4), m.cfg.vocab_size), 0);
  const double threads = double(num_threads());
  double wall = 0, cpu0 = process_cpu_seconds();
  for (int r = 0; r < opts.repeats && opts.prompt > 0; ++r) {
    const double sec = time_prompt(s, ptoks);
    wall += sec;
    row.prompt_runs.push_back(double(opts.prompt) / sec);
    if (opts.progress)
      fmt::print(stderr, "  {} prompt {} tokens: {:.2f} tok/s\n", row.form, opts.prompt,
                 row.prompt_runs.back());
  }
  if (wall > 0) row.prompt_cpu_share = (process_cpu_seconds() - cpu0) / (wall * threads);
  wall = 0;
  double cpu = 0;
  for (int r = 0; r < opts.repeats && opts.decode > 0; ++r) {
    if (before_decode_run) before_decode_run();
    const double sec = time_decode(s, dtoks, opts.depth, &cpu);
    wall += sec;
    row.decode_runs.push_back(double(opts.decode) / sec);
    if (opts.progress)
      fmt::print(stderr, "  {} decode {} tokens: {:.2f} tok/s\n", row.form, opts.decode,
                 row.decode_runs.back());
  }
  if (wall > 0) row.decode_cpu_share = cpu / (wall * threads);
  row.prompt_tok_s = median(row.prompt_runs);
  row.decode_tok_s = median(row.decode_runs);
  if (opts.breakdown) row.parts = decode_breakdown(m, std::max(opts.repeats, 2), row.decode_tok_s);
  if (opts.prompt > 0)
    row.prompt_gflops = m.prefill_flops(opts.prompt) * row.prompt_tok_s / double(opts.prompt) / 1e9;
  const double bytes = double(row.bytes.total());
  row.decode_gbs = bytes * row.decode_tok_s / 1e9;
  set_roofline(row, bandwidth_gbs);
  return row;
}

BenchReport run_bench(const BenchOptions& opts_in) {
  BenchOptions opts = opts_in;
  AWQ_CHECK(opts.model_dir.empty() != opts.shape.empty(),
            "bench: give exactly one of --model DIR and --shape NAME");
  AWQ_CHECK(!(opts.lm_head_w4 && opts.lm_head_q8 == BenchOptions::HeadQ8::Always),
            "bench: --lm-head-w4 and --lm-head q8 are two forms of the lm_head; give one");
  const bool custom = bool(opts.build_model);
  // The default: the f16 baseline and the default run-time form (W4A8, LoadOptions::fastest).
  if (opts.forms.empty()) opts.forms = {BenchForm::F16, BenchForm::W4A8};
  if (const char* env = std::getenv("AWQ_FUSE"); env && std::string(env) == "0")
    opts.fuse_w4 = false;
  BenchReport rep;
  rep.opts = opts;
  rep.source = opts.shape.empty() ? opts.model_dir : "shape " + opts.shape;
  AWQ_CHECK(opts.layers >= 0, "bench: --layers must not be negative (got {})", opts.layers);
  // Only random shapes: a checkpoint's or GGUF file's blocks are what they are.
  AWQ_CHECK(opts.layers == 0 || !opts.shape.empty(),
            "bench: --layers applies to --shape only, not to --model {}", opts.model_dir);
  rep.cfg = custom               ? opts.build_model_cfg
            : opts.shape.empty() ? ModelConfig::load(opts.model_dir)
                                 : synth_preset(opts.shape);
  rep.shape_layers = rep.cfg.num_hidden_layers;
  if (opts.layers > 0) rep.cfg = with_layers_and_vocab(rep.cfg, opts.layers, 0);
  arch_of(rep.cfg, rep.source);
  const int build_threads = std::max(1u, std::thread::hardware_concurrency());
  rep.threads = opts.threads > 0 ? opts.threads : num_threads();
  rep.isa = kernels::isa_name(kernels::active_isa());
  rep.cpu = cpu_name();
  rep.cores = int(std::thread::hardware_concurrency());
  rep.load_before = load_average_1m();
  const kernels::BandwidthProbe probe(rep.threads, opts.bandwidth_bytes);
  rep.bandwidth_before_gbs = probe.measure();
  rep.bandwidth_probes.push_back(rep.bandwidth_before_gbs);
  rep.bandwidth_gbs = rep.bandwidth_before_gbs;
  if (opts.progress)
    fmt::print(stderr, "memory bandwidth ({} threads): {:.1f} GB/s\n", rep.threads,
               rep.bandwidth_gbs);

  // f32/f16 first, then one packed W4 model for w4 and w4a8 (quantized once).
  std::vector<BenchForm> order;
  for (BenchForm f : {BenchForm::F32, BenchForm::F16, BenchForm::W4, BenchForm::W4A8})
    if (std::find(opts.forms.begin(), opts.forms.end(), f) != opts.forms.end()) order.push_back(f);
  std::unique_ptr<BenchModel> w4;
  for (BenchForm f : order) {
    Timer tb;
    set_num_threads(build_threads);  // building is not what is measured: use every core
    std::unique_ptr<BenchModel> m;
    const BenchModel* built = nullptr;
    const bool q8_head = opts.lm_head_q8 == BenchOptions::HeadQ8::Always ||
                         (opts.lm_head_q8 == BenchOptions::HeadQ8::WithW4A8 &&
                          f == BenchForm::W4A8 && !opts.lm_head_w4);
    if (is_w4(f) && w4) {
      w4->set_w4a8(f == BenchForm::W4A8);
      // w4 ran first with the stored head; w4a8 takes the int8 copy (rows run in that order).
      if (q8_head && !w4->lm_head.q8) w4->lm_head_to_q8();
      built = w4.get();
    } else {
      m = std::make_unique<BenchModel>(
          custom ? opts.build_model(f)
          : opts.shape.empty()
              ? make_checkpoint_bench_model(opts.model_dir, f, opts.group_size)
              : make_synthetic_bench_model(rep.cfg, f, opts.group_size, opts.seed));
      if (is_w4(f) && opts.lm_head_w4) m->quantize_lm_head(opts.group_size);
      if (q8_head) m->lm_head_to_q8();
      if (is_w4(f) && opts.fuse_w4) m->fuse_w4_groups();
      built = m.get();
      if (is_w4(f)) w4 = std::move(m);
    }
    const BenchModel& model = *built;
    const double build_s = tb.seconds();
    if (opts.progress)
      fmt::print(stderr,
                 "{}: model ready in {:.1f} s ({:.1f} MB of weights per token, {:.1f} MB held)\n",
                 bench_form_name(f), build_s, double(model.decode_bytes().total()) / 1e6,
                 double(model.resident_weight_bytes()) / 1e6);
    set_num_threads(rep.threads);
    BenchRow row = bench_model(model, opts, rep.bandwidth_gbs,
                               [&] { rep.bandwidth_probes.push_back(probe.measure()); });
    row.build_seconds = build_s;
    row.lm_head = model.lm_head.q8 ? "q8" : model.lm_head.w4 ? "w4" : "as stored";
    row.resident_bytes = model.resident_weight_bytes();
    rep.rows.push_back(std::move(row));
  }
  rep.load_after = load_average_1m();
  rep.bandwidth_after_gbs = probe.measure();
  rep.bandwidth_probes.push_back(rep.bandwidth_after_gbs);
  rep.bandwidth_gbs = median(rep.bandwidth_probes);
  for (BenchRow& row : rep.rows) set_roofline(row, rep.bandwidth_gbs);
  return rep;
}

std::string format_bench_report(const BenchReport& r) {
  std::string s;
  const ModelConfig& c = r.cfg;
  const std::string layers = r.shape_layers > 0 && r.shape_layers != c.num_hidden_layers
                                 ? fmt::format("{} of the shape's {} layers (--layers)",
                                               c.num_hidden_layers, r.shape_layers)
                                 : fmt::format("{} layers", c.num_hidden_layers);
  s += fmt::format("model:     {} ({}: {}, hidden {}, ffn {}, heads {}/{}, vocab {})\n", r.source,
                   c.model_type, layers, c.hidden_size, c.intermediate_size, c.num_attention_heads,
                   c.num_key_value_heads, c.vocab_size);
  if (c.is_moe()) {
    int64_t sparse = 0;
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) sparse += c.is_moe_layer(l);
    s += fmt::format("experts:   {} per sparse layer ({} of {} layers), {} per token, {} wide",
                     c.num_experts, sparse, c.num_hidden_layers, c.num_experts_per_tok,
                     c.moe_intermediate_size);
    if (c.shared_expert_intermediate_size > 0)
      s += fmt::format(", shared expert {} wide", c.shared_expert_intermediate_size);
    s += fmt::format("; MB/token counts the router{} and {} experts (the active weights)",
                     c.shared_expert_intermediate_size > 0 ? ", the shared expert" : "",
                     c.num_experts_per_tok);
    if (!r.rows.empty())
      s += fmt::format(", of {:.1f} MB held ({})", double(r.rows[0].resident_bytes) / 1e6,
                       r.rows[0].form);
    s += "\n";
  }
  s += fmt::format("machine:   {}, isa {}, {} thread{}\n", r.cpu, r.isa, r.threads,
                   r.threads == 1 ? "" : "s");
  const auto [bw_min, bw_max] =
      std::minmax_element(r.bandwidth_probes.begin(), r.bandwidth_probes.end());
  s += fmt::format(
      "bandwidth: {:.1f} GB/s measured ({} threads; the median of {} probes taken before the "
      "rows, before each decode run and after, {:.1f}-{:.1f})\n",
      r.bandwidth_gbs, r.threads, r.bandwidth_probes.size(),
      r.bandwidth_probes.empty() ? 0.0 : *bw_min, r.bandwidth_probes.empty() ? 0.0 : *bw_max);
  if (r.load_before >= 0)
    s += fmt::format(
        "load:      {:.2f} before, {:.2f} after (1-minute average, {} cores){}\n", r.load_before,
        r.load_after, r.cores,
        r.load_before > r.cores ? ": the machine was oversubscribed, speeds understated" : "");
  s += fmt::format(
      "test:      prompt {} tokens, decode {} tokens{} (batch 1, KV cache), median of {}",
      r.opts.prompt, r.opts.decode,
      r.opts.depth > 0 ? fmt::format(" after {} of context", r.opts.depth) : "", r.opts.repeats);
  if (std::any_of(r.rows.begin(), r.rows.end(), [](const BenchRow& w) { return w.form[0] == 'w'; }))
    s += fmt::format("; W4: {}, lm_head {}, {}",
                     r.opts.build_model ? std::string("the file's Q4_0/Q4_1 codes")
                     : r.cfg.quant && r.opts.shape.empty()
                         ? std::string("the checkpoint's codes")
                         : fmt::format("RTN g{} asymmetric", r.opts.group_size),
                     r.opts.lm_head_w4                                   ? "W4 too"
                     : r.opts.lm_head_q8 == BenchOptions::HeadQ8::Always ? "int8 (q8)"
                     : r.opts.lm_head_q8 == BenchOptions::HeadQ8::WithW4A8
                         ? "int8 (q8) on w4a8 rows, else as stored"
                         : "as stored",
                     r.opts.fuse_w4 ? "q|k|v and gate|up fused" : "unfused");
  s += "\n\n";
  s += fmt::format("| {:<7} | {:>9} | {:>13} | {:>13} | {:>14} | {:>6} | {:>12} | {:>14} |\n",
                   "weights", "MB/token", "prompt tok/s", "prompt GFLOP/s", "decode tok/s", "GB/s",
                   "% of roofline", "roofline tok/s");
  s += "|---------|----------:|--------------:|---------------:|---------------:|-------:|---------"
       "-----:|---------------:|\n";
  for (const BenchRow& w : r.rows) {
    s += fmt::format(
        "| {:<7} | {:>9.1f} | {:>13.2f} | {:>14.1f} | {:>14.2f} | {:>6.1f} | {:>12.1f}% | "
        "{:>14.1f} |\n",
        w.form, double(w.bytes.total()) / 1e6, w.prompt_tok_s, w.prompt_gflops, w.decode_tok_s,
        w.decode_gbs, 100.0 * w.roofline_fraction, w.roofline_tok_s);
  }
  std::string shares;
  for (const BenchRow& w : r.rows)
    if (w.prompt_cpu_share > 0 || w.decode_cpu_share > 0)
      shares += fmt::format("{}{} {:.0f}%/{:.0f}%", shares.empty() ? "" : ", ", w.form,
                            100 * w.prompt_cpu_share, 100 * w.decode_cpu_share);
  if (!shares.empty())
    s +=
        fmt::format("\nCPU share (process CPU time / wall x threads, prompt/decode): {}\n", shares);
  for (const BenchRow& w : r.rows) {
    if (w.parts.empty()) continue;
    const double total = w.decode_tok_s > 0 ? 1e3 / w.decode_tok_s : 0;
    s += fmt::format("\n{} decode, per token ({:.2f} ms):\n", w.form, total);
    size_t width = 9;  // "gate|up"; MoE parts ("expert gate|up") are longer
    for (const DecodePart& p : w.parts) width = std::max(width, p.name.size());
    s += fmt::format("| {:<{}} |      MB |     ms | share |   GB/s |\n", "part", width);
    s += fmt::format("|{}|--------:|-------:|------:|-------:|\n", std::string(width + 2, '-'));
    for (const DecodePart& p : w.parts)
      s += fmt::format("| {:<{}} | {:>7.1f} | {:>6.3f} | {:>4.1f}% | {:>6.1f} |\n", p.name, width,
                       double(p.bytes) / 1e6, p.ms, total > 0 ? 100 * p.ms / total : 0.0, p.gbs());
  }
  const BenchRow* f16 = nullptr;
  for (const BenchRow& w : r.rows)
    if (w.form == "f16") f16 = &w;
  if (f16 && f16->decode_tok_s > 0) {
    for (const BenchRow& w : r.rows) {
      if (&w == f16) continue;
      s += fmt::format("\n{} / f16: decode {:.2f}x", w.form, w.decode_tok_s / f16->decode_tok_s);
      if (f16->prompt_tok_s > 0)
        s += fmt::format(", prompt {:.2f}x", w.prompt_tok_s / f16->prompt_tok_s);
      s += fmt::format(", bytes per token {:.2f}x smaller",
                       double(f16->bytes.total()) / double(w.bytes.total()));
    }
    s += "\n";
  }
  return s;
}

nlohmann::json bench_report_json(const BenchReport& r) {
  using nlohmann::json;
  json j;
  j["source"] = r.source;
  j["config"] = {{"model_type", r.cfg.model_type},
                 {"hidden_size", r.cfg.hidden_size},
                 {"intermediate_size", r.cfg.intermediate_size},
                 {"num_hidden_layers", r.cfg.num_hidden_layers},
                 {"num_attention_heads", r.cfg.num_attention_heads},
                 {"num_key_value_heads", r.cfg.num_key_value_heads},
                 {"vocab_size", r.cfg.vocab_size},
                 {"tie_word_embeddings", r.cfg.tie_word_embeddings},
                 {"shape_layers", r.shape_layers}};
  if (r.cfg.is_moe()) {
    j["config"]["num_experts"] = r.cfg.num_experts;
    j["config"]["num_experts_per_tok"] = r.cfg.num_experts_per_tok;
    j["config"]["moe_intermediate_size"] = r.cfg.moe_intermediate_size;
    j["config"]["shared_expert_intermediate_size"] = r.cfg.shared_expert_intermediate_size;
  }
  j["threads"] = r.threads;
  j["isa"] = r.isa;
  j["cpu"] = r.cpu;
  j["bandwidth_gbs"] = r.bandwidth_gbs;
  j["bandwidth_before_gbs"] = r.bandwidth_before_gbs;
  j["bandwidth_after_gbs"] = r.bandwidth_after_gbs;
  j["bandwidth_probes_gbs"] = r.bandwidth_probes;
  j["cores"] = r.cores;
  j["load_before"] = r.load_before;
  j["load_after"] = r.load_after;
  j["prompt_tokens"] = r.opts.prompt;
  j["decode_tokens"] = r.opts.decode;
  j["depth"] = r.opts.depth;
  j["repeats"] = r.opts.repeats;
  j["group_size"] = r.opts.group_size;
  j["lm_head_w4"] = r.opts.lm_head_w4;
  j["lm_head_q8"] = r.opts.lm_head_q8 == BenchOptions::HeadQ8::Always     ? "always"
                    : r.opts.lm_head_q8 == BenchOptions::HeadQ8::WithW4A8 ? "with w4a8"
                                                                          : "never";
  j["fuse_w4"] = r.opts.fuse_w4;
  json rows = json::array();
  for (const BenchRow& w : r.rows) {
    rows.push_back({{"weights", w.form},
                    {"lm_head", w.lm_head},
                    {"bytes_per_token",
                     {{"total", w.bytes.total()},
                      {"linears", w.bytes.linears},
                      {"norms_biases", w.bytes.norms_biases},
                      {"lm_head", w.bytes.lm_head},
                      {"embedding_row", w.bytes.embedding_row},
                      {"kv_cache", w.bytes.kv_cache}}},
                    {"resident_bytes", w.resident_bytes},
                    {"build_seconds", w.build_seconds},
                    {"prompt_tok_s", w.prompt_tok_s},
                    {"prompt_runs", w.prompt_runs},
                    {"prompt_gflops", w.prompt_gflops},
                    {"decode_tok_s", w.decode_tok_s},
                    {"decode_runs", w.decode_runs},
                    {"decode_gbs", w.decode_gbs},
                    {"roofline_fraction", w.roofline_fraction},
                    {"roofline_tok_s", w.roofline_tok_s},
                    {"prompt_cpu_share", w.prompt_cpu_share},
                    {"decode_cpu_share", w.decode_cpu_share}});
    if (!w.parts.empty()) {
      json parts = json::array();
      for (const DecodePart& p : w.parts)
        parts.push_back({{"name", p.name}, {"bytes", p.bytes}, {"ms", p.ms}, {"gbs", p.gbs()}});
      rows.back()["decode_breakdown"] = parts;
    }
  }
  j["rows"] = rows;
  return j;
}

}  // namespace awq
