#include "gguf/gguf_model.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <optional>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/half.h"
#include "formats/checkpoint.h"
#include "formats/safetensors.h"
#include "gguf/gguf_vocab.h"
#include "gguf/llama_layout.h"
#include "kernels/w4.h"
#include "model/architecture.h"
#include "model/linear.h"
#include "model/moe.h"
#include "model/rope.h"
#include "quant/ggml_blocks.h"

namespace awq::gguf {
namespace fs = std::filesystem;

namespace {

// The tensor `name` with ggml shape ne = {cols, rows} (or {n} for rows == 0).
const GgufTensor& shaped(const GgufFile& f, const std::string& name, int64_t cols,
                         int64_t rows = 0) {
  const GgufTensor& t = f.tensor(name);
  const std::vector<int64_t> want =
      rows > 0 ? std::vector<int64_t>{cols, rows} : std::vector<int64_t>{cols};
  AWQ_CHECK(t.ne == want, "{}: tensor '{}' has ne {}, expected [{}] (ggml order, ne[0] contiguous)",
            f.path(), name, t.ne_str(), fmt::join(want, ", "));
  return t;
}

std::vector<float> read_vector(const GgufFile& f, const std::string& name, int64_t n) {
  const Mat m = gguf_tensor_f32(shaped(f, name, n));
  return {m.data.begin(), m.data.end()};
}

// The row permutation that takes llama.cpp's q/k rows back to Hugging Face's (empty: none).
std::vector<int64_t> unpermutation(const ModelConfig& c, const std::string& arch, LinearRole r) {
  if (!gguf_arch_permutes_qk(arch) || (r != LinearRole::Q && r != LinearRole::K)) return {};
  const auto [out, in] = linear_shape(c, r);
  (void)in;
  return inverse_permutation(rope_row_permutation(
      out, r == LinearRole::Q ? c.num_attention_heads : c.num_key_value_heads));
}

std::shared_ptr<const kernels::W4Matrix> pack_w4(const QuantizedMatrix& q) {
  kernels::W4Source src;
  src.out = q.out;
  src.in = q.in;
  src.group = q.group == q.in ? -1 : q.group;
  src.codes = q.codes.data();
  src.scales = q.scales.data();
  src.zeros = q.zeros.data();
  return std::make_shared<const kernels::W4Matrix>(kernels::W4Matrix::pack(src));
}

// The table entry of the file's architecture: "llama" with experts is Mixtral.
const GgufArch& file_arch(const GgufFile& f) {
  const std::string arch = f.get_string("general.architecture");
  return gguf_arch_named(arch, f.path(), f.get_int(arch + ".expert_count", 0) > 0);
}

}  // namespace

bool is_gguf_file(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return false;
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && std::memcmp(magic, "GGUF", 4) == 0;
}

Mat gguf_tensor_f32(const GgufTensor& t) {
  Mat m(t.rows(), t.cols());
  const int64_t n = t.numel();
  switch (t.type) {
    case GgmlType::F32:
      std::memcpy(m.data.data(), t.data, size_t(n) * 4);
      break;
    case GgmlType::F16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, t.data + 2 * i, 2);
        m.data[size_t(i)] = f16_to_f32(h);
      }
      break;
    case GgmlType::Q4_0:
    case GgmlType::Q4_1:
    case GgmlType::Q8_0:
      dequantize_ggml(int(t.type), t.data, m.rows, m.cols, m.data.data());
      break;
  }
  return m;
}

namespace {

// rope_scaling for a llama3 frequency table (rope_freqs: per-frequency divisors d_i, ggml divides
// θ_i by them). The divisors are 1 (short wavelengths), factor (long ones) and, between,
// 1/((1-s)/factor + s) with s = (Lo/λ_i - low)/(high - low): only the ratios Lo : low : high
// matter, so with low = 1 the band's ends give Lo and high. The parameters are checked by
// recomputing the table; a table they cannot reproduce is kept as it is, as per-frequency factors
// (longrope's form with attention factor 1, which divides θ_i by them the same way).
nlohmann::json llama3_scaling(const GgufFile& f, const std::string& a, int64_t rot, double theta,
                              int64_t max_pos) {
  const std::vector<float> d = read_vector(f, kRopeFreqs, rot / 2);
  const int64_t half = rot / 2;
  std::vector<double> th(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) th[size_t(i)] = std::pow(theta, -double(2 * i) / double(rot));
  double factor = 1;
  for (float x : d) factor = std::max(factor, double(x));
  if (factor == 1) return nullptr;  // a table of ones: no scaling
  auto reproduces = [&](const nlohmann::json& rs) {
    RopeSpec spec;
    spec.rotary_dim = rot;
    spec.theta = theta;
    spec.max_position_embeddings = max_pos;
    spec.scaling = RopeScaling::from_json(rs, rot, 0, f.path());
    std::vector<double> inv;
    double af = 1;
    rope_frequencies(spec, 1, inv, af);
    for (int64_t i = 0; i < half; ++i)
      if (std::fabs(th[size_t(i)] / inv[size_t(i)] - double(d[size_t(i)])) >
          1e-5 * double(d[size_t(i)]))
        return false;
    return af == 1.0;
  };
  // The middle band: its s values, fitted to s = (Lo/λ - 1)/(high - 1) at its two ends.
  std::vector<std::pair<double, double>> mid;  // (1/λ, s)
  for (int64_t i = 0; i < half; ++i) {
    const double di = d[size_t(i)];
    if (std::fabs(di - 1) < 1e-6 || std::fabs(di - factor) < 1e-6 * factor) continue;
    const double sv = (1 / di - 1 / factor) / (1 - 1 / factor);
    mid.emplace_back(th[size_t(i)] / (2 * std::numbers::pi), sv);
  }
  std::vector<nlohmann::json> candidates;
  const int64_t lo_key = f.get_int(a + "rope.scaling.original_context_length", 8192);
  candidates.push_back({{"rope_type", "llama3"},
                        {"factor", factor},
                        {"low_freq_factor", 1.0},
                        {"high_freq_factor", 4.0},
                        {"original_max_position_embeddings", lo_key}});
  if (mid.size() >= 2) {
    // Lo·x - (high - 1)·s = 1 at both ends.
    const auto [x1, s1] = mid.front();
    const auto [x2, s2] = mid.back();
    const double det = -x1 * s2 + x2 * s1;
    if (det != 0) {
      const double lo = (-s2 + s1) / det, hm1 = (x1 - x2) / det;
      if (lo > 0 && hm1 > 0)
        candidates.push_back({{"rope_type", "llama3"},
                              {"factor", factor},
                              {"low_freq_factor", 1.0},
                              {"high_freq_factor", 1.0 + hm1},
                              {"original_max_position_embeddings", int64_t(std::llround(lo))}});
    }
  }
  for (const auto& c : candidates)
    if (reproduces(c)) return c;
  std::vector<double> ext(d.begin(), d.end());
  return {{"rope_type", "longrope"},
          {"short_factor", ext},
          {"long_factor", ext},
          {"attention_factor", 1.0}};
}

}  // namespace

ModelConfig config_from_gguf(const GgufFile& f) {
  const std::string arch = f.get_string("general.architecture");
  const GgufArch& g = file_arch(f);
  const std::string& model_type = g.model_type;
  const std::string a = arch + ".";
  const int64_t d = f.get_int(a + "embedding_length");
  const int64_t heads = f.get_int(a + "attention.head_count");
  const int64_t kv_heads = f.get_int(a + "attention.head_count_kv", heads);
  AWQ_CHECK(heads > 0 && d > 0,
            "{}: {}embedding_length and {}attention.head_count must be positive", f.path(), a, a);
  const int64_t head_dim = f.get_int(a + "attention.key_length", d % heads == 0 ? d / heads : 0);
  AWQ_CHECK(f.get_int(a + "attention.value_length", head_dim) == head_dim,
            "{}: {}attention.value_length differs from the key length (not supported)", f.path(),
            a);
  const int64_t rot = f.get_int(a + "rope.dimension_count", head_dim);
  AWQ_CHECK(rot == head_dim || (arch == "phi3" && rot > 0 && rot < head_dim && rot % 2 == 0),
            "{}: {}rope.dimension_count {} is not the head size {} (partial RoPE is read for phi3 "
            "only)",
            f.path(), a, rot, head_dim);
  const GgufTensor& embd = f.tensor(kTokenEmbd);
  AWQ_CHECK(embd.ne.size() == 2 && embd.ne[0] == d,
            "{}: tensor '{}' has ne {}, expected [{}, vocab]", f.path(), kTokenEmbd, embd.ne_str(),
            d);
  const int64_t vocab = f.get_int(a + "vocab_size", embd.ne[1]);
  AWQ_CHECK(vocab == embd.ne[1], "{}: {}vocab_size {} but '{}' has {} rows", f.path(), a, vocab,
            kTokenEmbd, embd.ne[1]);
  const int64_t layers = f.get_int(a + "block_count");
  const int64_t max_pos = f.get_int(a + "context_length", 2048);
  const double theta = f.get_float(a + "rope.freq_base", 10000.0);
  // The experts (llama.cpp's hparams): widths default as its loader's do (n_ff / n_expert_used,
  // n_ff for the shared expert).
  int64_t experts = 0, used = 0, expert_ff = 0;
  if (g.moe) {
    experts = f.get_int(a + "expert_count", 0);
    used = f.get_int(a + "expert_used_count", 0);
    AWQ_CHECK(experts > 0 && used > 0 && used <= experts,
              "{}: {}expert_count {} and {}expert_used_count {} must be positive, used <= count "
              "(architecture {} has experts in every layer)",
              f.path(), a, experts, a, used, arch);
  }
  const int64_t ff = g.moe && g.moe_expert_ffn_key && !f.find(a + "feed_forward_length")
                         ? f.get_int(a + "expert_feed_forward_length")
                         : f.get_int(a + "feed_forward_length");
  if (g.moe)
    expert_ff = g.moe_expert_ffn_key ? f.get_int(a + "expert_feed_forward_length", ff / used) : ff;
  nlohmann::json j = {{"model_type", model_type},
                      {"architectures", {find_architecture(model_type)->hf_class}},
                      {"hidden_size", d},
                      {"intermediate_size", ff},
                      {"num_hidden_layers", layers},
                      {"num_attention_heads", heads},
                      {"num_key_value_heads", kv_heads},
                      {"head_dim", head_dim},
                      {"vocab_size", vocab},
                      {"max_position_embeddings", max_pos},
                      {"rms_norm_eps", f.get_float(a + "attention.layer_norm_rms_epsilon")},
                      {"rope_theta", theta},
                      {"tie_word_embeddings", f.find_tensor(kOutput) == nullptr},
                      {"torch_dtype", "float32"}};
  // Llama with q/k/v biases (llama.cpp keeps them optional); o's bias follows attention_bias.
  if (model_type == "llama" && f.find_tensor(gguf_linear_tensor(0, LinearRole::Q, "bias")))
    j["attention_bias"] = true;
  if (g.moe) {
    // The routing the graph hard-codes: every layer sparse, renormalized or not per architecture.
    j[find_architecture(model_type)->moe.experts_key] = experts;
    j["num_experts_per_tok"] = used;
    if (model_type == "mixtral") {
      j["sliding_window"] = nullptr;  // llama.cpp's llama attends to the whole context
    } else {
      j["moe_intermediate_size"] = expert_ff;
      j["norm_topk_prob"] = g.moe_renormalizes;
      j["decoder_sparse_step"] = 1;
      j["mlp_only_layers"] = nlohmann::json::array();
    }
    if (g.shared_expert)
      j["shared_expert_intermediate_size"] = f.get_int(a + "expert_shared_feed_forward_length", ff);
  }
  if (f.find("tokenizer.ggml.bos_token_id"))
    j["bos_token_id"] = f.get_int("tokenizer.ggml.bos_token_id");
  if (f.find("tokenizer.ggml.eos_token_id"))
    j["eos_token_id"] = f.get_int("tokenizer.ggml.eos_token_id");

  // RoPE scaling, as llama.cpp reads it: rope_freqs (llama3 table), rope_factors_long/short
  // (phi3's longrope), or rope.scaling.type/factor.
  const std::string st = f.get_string(a + "rope.scaling.type", "linear");
  const double factor = f.get_float(a + "rope.scaling.factor", 0.0);
  if (f.find_tensor(kRopeFactorsShort) || f.find_tensor(kRopeFactorsLong)) {
    AWQ_CHECK(arch == "phi3", "{}: longrope factors in a '{}' file (read for phi3 only)", f.path(),
              arch);
    const auto sf = read_vector(f, kRopeFactorsShort, rot / 2);
    const auto lf = read_vector(f, kRopeFactorsLong, rot / 2);
    j["rope_scaling"] = {{"rope_type", "longrope"},
                         {"short_factor", std::vector<double>(sf.begin(), sf.end())},
                         {"long_factor", std::vector<double>(lf.begin(), lf.end())},
                         {"attention_factor", f.get_float(a + "rope.scaling.attn_factor", 1.0)}};
  } else if (f.find_tensor(kRopeFreqs)) {
    j["rope_scaling"] = llama3_scaling(f, a, rot, theta, max_pos);
  } else if (st == "linear" && factor != 0 && factor != 1) {
    j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", factor}};
  } else {
    AWQ_CHECK(st == "none" || st == "linear" || factor == 0 || factor == 1,
              "{}: RoPE scaling {}rope.scaling.type '{}' is not supported (awq.cpp reads linear, "
              "llama3 tables and phi3 longrope)",
              f.path(), a, st);
  }
  if (arch == "phi3") {
    if (rot != head_dim) j["partial_rotary_factor"] = double(rot) / double(head_dim);
    j["original_max_position_embeddings"] =
        f.get_int(a + "rope.scaling.original_context_length", max_pos);
    const int64_t w = f.get_int(a + "attention.sliding_window", 0);
    j["sliding_window"] = w > 0 ? nlohmann::json(w) : nlohmann::json(nullptr);
  }
  // The Gemma family: what llama.cpp's graphs hard-code (families.md §9).
  if (arch == "gemma") j["hidden_act"] = "gelu_pytorch_tanh";
  if (arch == "gemma2" || arch == "gemma3") {
    j["hidden_activation"] = "gelu_pytorch_tanh";
    const bool is27b = (arch == "gemma2" && layers == 46) || (arch == "gemma3" && layers == 62);
    j["query_pre_attn_scalar"] = is27b ? d / heads : head_dim;
  }
  if (arch == "gemma2") {
    j["attn_logit_softcapping"] = f.get_float(a + "attn_logit_softcapping", 50.0);
    j["final_logit_softcapping"] = f.get_float(a + "final_logit_softcapping", 30.0);
    j["sliding_window"] = f.get_int(a + "attention.sliding_window", 4096);
  }
  if (arch == "gemma3") {
    const double fs = f.get_float(a + "final_logit_softcapping", 0.0);
    j["final_logit_softcapping"] = fs > 0 ? nlohmann::json(fs) : nlohmann::json(nullptr);
    j["sliding_window"] = f.get_int(a + "attention.sliding_window");
    j["sliding_window_pattern"] = 6;
    j["rope_local_base_freq"] = 10000.0;
  }
  ModelConfig c = ModelConfig::from_json(j, f.path());
  AWQ_CHECK(c.rotary_dim == rot, "{}: rotary width {} from {}rope.dimension_count {} (internal)",
            f.path(), c.rotary_dim, a, rot);
  // llama.cpp multiplies the embeddings by sqrtf(hidden) in f32, not rounded to a dtype.
  if (c.embed_scale != 0) c.embed_scale = std::sqrt(float(d));
  return c;
}

namespace {

// A linear from a 2-D [out, in] tensor (or one expert's slice of a stacked tensor) in the form
// `opts` asks for: Q4 codes packed for the 4-bit kernels (W4), else f32. `note` says whether to
// record a linear that cannot take the W4 form (once per stacked tensor, not per expert).
Linear linear_from(const GgufFile& f, const GgufTensor& t, int64_t out, int64_t in,
                   const LoadOptions& opts, std::vector<std::string>* notes, bool note) {
  Linear l;
  l.in = in;
  l.out = out;
  if (opts.weights == WeightForm::W4 && (t.type == GgmlType::Q4_0 || t.type == GgmlType::Q4_1)) {
    try {
      const QuantizedMatrix q = t.type == GgmlType::Q4_0
                                    ? from_ggml_q4_0(t.data, out, in, f.path() + ": " + t.name)
                                    : from_ggml_q4_1(t.data, out, in, f.path() + ": " + t.name);
      l.w4 = pack_w4(q);
      l.w4a8 = opts.w4a8;
      return l;
    } catch (const Error& e) {
      if (notes)
        notes->push_back(
            fmt::format("{}: runs as f32, not on the 4-bit kernels: {}", t.name, e.what()));
    }
  } else if (opts.weights == WeightForm::W4 && notes && note) {
    notes->push_back(fmt::format("{}: {} runs as f32 (the 4-bit kernels take Q4_0/Q4_1)", t.name,
                                 ggml_type_name(t.type)));
  }
  l.w = gguf_tensor_f32(t);
  return l;
}

// Expert e's [out, in] matrix of a stacked blk.N.ffn_*_exps tensor (ne {in, out, E}): a view of
// its bytes, expert 0 first.
GgufTensor expert_slice(const GgufTensor& t, int64_t e, int64_t experts) {
  GgufTensor v = t;
  v.ne = {t.ne[0], t.ne[1]};
  v.nbytes = t.nbytes / size_t(experts);
  v.data = t.data + size_t(e) * v.nbytes;
  v.name = fmt::format("{} (expert {})", t.name, e);
  return v;
}

// [out, in] of an expert's linear r of width I.
std::pair<int64_t, int64_t> expert_shape(const ModelConfig& c, LinearRole r, int64_t I) {
  return r == LinearRole::Down ? std::pair{c.hidden_size, I} : std::pair{I, c.hidden_size};
}

constexpr LinearRole kFfnRoles[] = {LinearRole::Gate, LinearRole::Up, LinearRole::Down};

// A sparse layer: the router (f32 whatever its type), the stacked experts, the shared expert and
// its gate (qwen2moe), in the form `opts` asks for; W4 gate|up of each expert stacked as the
// directory loader stacks them.
MoeWeights load_gguf_moe(const GgufFile& f, const GgufArch& g, const ModelConfig& cfg,
                         int64_t layer, const LoadOptions& opts, std::vector<std::string>* notes) {
  const int64_t d = cfg.hidden_size, E = cfg.num_experts;
  MoeWeights m;
  m.router = gguf_tensor_f32(shaped(f, gguf_block_tensor(layer, kFfnGateInp), d, E));
  m.experts.resize(size_t(E));
  for (LinearRole r : kFfnRoles) {
    const auto [out, in] = expert_shape(cfg, r, cfg.moe_intermediate_size);
    const std::string name = gguf_block_tensor(layer, gguf_expert_name(r, false));
    const GgufTensor& t = f.tensor(name);
    AWQ_CHECK(t.ne == (std::vector<int64_t>{in, out, E}),
              "{}: tensor '{}' has ne {}, expected [{}, {}, {}] (ggml order: in, out, experts)",
              f.path(), name, t.ne_str(), in, out, E);
    // One note per stacked tensor (a model has thousands of experts), not one per expert.
    std::vector<std::string> mine;
    for (int64_t e = 0; e < E; ++e) {
      FfnWeights& x = m.experts[size_t(e)];
      Linear& l = r == LinearRole::Gate ? x.gate : r == LinearRole::Up ? x.up : x.down;
      l = linear_from(f, expert_slice(t, e, E), out, in, opts, &mine, e == 0);
    }
    if (notes && !mine.empty())
      notes->push_back(mine.size() == 1 ? mine[0]
                                        : fmt::format("{} (and {} more experts of '{}')", mine[0],
                                                      mine.size() - 1, name));
  }
  if (g.shared_expert) {
    const int64_t I = cfg.shared_expert_intermediate_size;
    for (LinearRole r : kFfnRoles) {
      const auto [out, in] = expert_shape(cfg, r, I);
      const GgufTensor& t = shaped(f, gguf_block_tensor(layer, gguf_expert_name(r, true)), in, out);
      Linear& l = r == LinearRole::Gate ? m.shared.gate
                  : r == LinearRole::Up ? m.shared.up
                                        : m.shared.down;
      l = linear_from(f, t, out, in, opts, notes, true);
    }
    // llama.cpp declares it [hidden]; the converter writes HF's [1, hidden] as ne {hidden, 1}.
    const std::string gate = gguf_block_tensor(layer, kFfnGateInpShexp);
    const GgufTensor& t = f.tensor(gate);
    AWQ_CHECK(t.ne == std::vector<int64_t>{d} || t.ne == (std::vector<int64_t>{d, 1}),
              "{}: tensor '{}' has ne {}, expected [{}]", f.path(), gate, t.ne_str(), d);
    const Mat v = gguf_tensor_f32(t);
    m.shared_gate.assign(v.data.begin(), v.data.end());
  }
  if (opts.weights == WeightForm::W4) {
    auto fuse = [](FfnWeights& x) {
      Linear* gate_up[] = {&x.gate, &x.up};
      fuse_w4(gate_up);
    };
    for (FfnWeights& x : m.experts) fuse(x);
    if (m.shared.present()) fuse(m.shared);
  }
  return m;
}

}  // namespace

BlockWeights load_gguf_block(const GgufFile& f, const ModelConfig& cfg, int64_t layer,
                             const LoadOptions& opts, std::vector<std::string>* notes) {
  const std::string arch = f.get_string("general.architecture");
  const GgufArch& g = file_arch(f);
  const bool sparse = cfg.is_moe_layer(layer);
  AWQ_CHECK(sparse == g.moe, "{}: layer {} is {} in the configuration, but architecture {} {}",
            f.path(), layer, sparse ? "sparse" : "dense", arch,
            g.moe ? "has experts in every layer" : "has none");
  const int64_t d = cfg.hidden_size;
  BlockWeights b;
  b.layer = layer;
  // Norms are stored as effective multipliers (Gemma: 1 + w), which is what BlockWeights holds.
  b.attn_norm = read_vector(f, gguf_block_tensor(layer, kAttnNorm), d);
  b.mlp_norm = read_vector(f, gguf_block_tensor(layer, kFfnNorm), d);
  if (g.qk_norm) {
    b.q_norm = read_vector(f, gguf_block_tensor(layer, kAttnQNorm), cfg.head_dim);
    b.k_norm = read_vector(f, gguf_block_tensor(layer, kAttnKNorm), cfg.head_dim);
  }
  if (g.post_norms) {
    b.post_attn_norm = read_vector(f, gguf_block_tensor(layer, kPostAttnNorm), d);
    b.post_mlp_norm = read_vector(f, gguf_block_tensor(layer, kPostFfwNorm), d);
  }
  // A fused tensor (phi3's attn_qkv, ffn_up = gate|up) is decoded once for all its roles.
  std::string cached_name;
  std::optional<QuantizedMatrix> cached_q;
  std::optional<Mat> cached_w;
  for (LinearRole r : kAllLinearRoles) {
    if (sparse && (r == LinearRole::Gate || r == LinearRole::Up || r == LinearRole::Down)) continue;
    const auto [out, in] = linear_shape(cfg, r);
    const GgufLinearSlot slot = gguf_linear_slot(g, cfg, layer, r);
    const std::string& name = slot.tensor;
    const GgufTensor& t = shaped(f, name, in, slot.rows);
    const auto unperm = unpermutation(cfg, arch, r);
    if (name != cached_name) {
      cached_name = name;
      cached_q.reset();
      cached_w.reset();
    }
    Linear& l = b[r];
    l.in = in;
    l.out = out;
    bool packed = false;
    if (opts.weights == WeightForm::W4 && (t.type == GgmlType::Q4_0 || t.type == GgmlType::Q4_1)) {
      try {
        if (!cached_q)
          cached_q = t.type == GgmlType::Q4_0
                         ? from_ggml_q4_0(t.data, slot.rows, in, f.path() + ": " + name)
                         : from_ggml_q4_1(t.data, slot.rows, in, f.path() + ": " + name);
        QuantizedMatrix q = slice_rows(*cached_q, slot.row0, out);
        if (!unperm.empty()) q = permute_rows(q, unperm);
        l.w4 = pack_w4(q);
        l.w4a8 = opts.w4a8;
        packed = true;
      } catch (const Error& e) {
        if (notes)
          notes->push_back(fmt::format("{}: {} runs as f32, not on the 4-bit kernels: {}", name,
                                       linear_role_name(r), e.what()));
      }
    } else if (opts.weights == WeightForm::W4 && notes) {
      notes->push_back(fmt::format("{}: {} runs as f32 (the 4-bit kernels take Q4_0/Q4_1)", name,
                                   ggml_type_name(t.type)));
    }
    if (!packed) {
      if (!cached_w) cached_w = gguf_tensor_f32(t);
      l.w = slice_rows(*cached_w, slot.row0, out);
      if (!unperm.empty()) l.w = permute_rows(l.w, unperm);
    }
    const std::string bias = gguf_linear_tensor(layer, r, "bias");
    if (!g.fused && f.find_tensor(bias)) {
      l.bias = read_vector(f, bias, out);
      if (!unperm.empty()) l.bias = permute_rows(l.bias, unperm);
    } else {
      AWQ_CHECK(!linear_has_bias(cfg, r), "{}: tensor '{}' not found (the architecture has biases)",
                f.path(), bias);
    }
  }
  if (sparse) b.moe = load_gguf_moe(f, g, cfg, layer, opts, notes);
  if (opts.weights == WeightForm::W4) fuse_block_w4(b);
  return b;
}

std::shared_ptr<Checkpoint> staged_checkpoint(const GgufFile& f, const ModelConfig& cfg,
                                              const Architecture& arch) {
  static std::atomic<int> counter{0};
  const fs::path dir =
      fs::temp_directory_path() / fmt::format("awq-gguf-{}-{}", ::getpid(), counter.fetch_add(1));
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir, ec);
  AWQ_CHECK(!ec, "{}: cannot create a temporary directory {}: {}", f.path(), dir.string(),
            ec.message());
  struct Cleanup {
    fs::path p;
    ~Cleanup() {
      std::error_code e;
      fs::remove_all(p, e);
    }
  } cleanup{dir};
  const int64_t d = cfg.hidden_size, V = cfg.vocab_size;
  SafetensorsWriter w;
  // F16/F32 tensors keep their type (bit-identical embeddings); quantized ones become f32.
  auto stage = [&](const std::string& name, const GgufTensor& t, std::vector<int64_t> shape) {
    if (t.type == GgmlType::F16) {
      w.add(name, DType::F16, std::move(shape), std::vector<uint8_t>(t.data, t.data + t.nbytes));
    } else {
      const Mat m = gguf_tensor_f32(t);
      w.add_f32_as(name, DType::F32, std::move(shape), m.data);
    }
  };
  stage(arch.embed_name, shaped(f, kTokenEmbd, d, V), {V, d});
  {
    // The model layer adds the family's norm offset to the final norm it reads (Gemma stores w,
    // llama.cpp 1 + w): stage w.
    const GgufTensor& t = shaped(f, kOutputNorm, d);
    std::vector<float> v(static_cast<size_t>(d));
    const Mat m = gguf_tensor_f32(t);
    for (int64_t i = 0; i < d; ++i) v[size_t(i)] = m.data[size_t(i)] - arch.norm_offset();
    w.add_f32_as(arch.final_norm_name, DType::F32, {d}, v);
  }
  if (!cfg.tie_word_embeddings) stage(arch.lm_head_name, shaped(f, kOutput, d, V), {V, d});
  w.write((dir / "model.safetensors").string());
  return std::make_shared<Checkpoint>(Checkpoint::open(dir.string()));
}

GgufLoad load_gguf(const std::string& path, const LoadOptions& opts) {
  const GgufFile f(path);
  ModelConfig cfg = config_from_gguf(f);
  const Architecture& arch = *find_architecture(cfg.model_type);
  Tokenizer tok = tokenizer_from_gguf(f);
  AWQ_CHECK(tok.vocab_size() <= cfg.vocab_size, "{}: {} tokens but the embedding has {} rows", path,
            tok.vocab_size(), cfg.vocab_size);
  std::vector<std::string> notes;
  std::vector<BlockWeights> blocks;
  blocks.reserve(size_t(cfg.num_hidden_layers));
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l)
    blocks.push_back(load_gguf_block(f, cfg, l, opts, &notes));
  auto ck = staged_checkpoint(f, cfg, arch);
  Model m = Model::from_blocks(std::move(ck), std::move(cfg), std::move(blocks), opts);
  return GgufLoad{std::move(m), std::move(tok), std::move(notes)};
}

Model load_gguf_model(const std::string& path, const LoadOptions& opts) {
  return load_gguf(path, opts).model;
}

Tokenizer load_gguf_tokenizer(const std::string& path) {
  return tokenizer_from_gguf(GgufFile(path));
}

Model load_any_model(const std::string& path, const LoadOptions& opts) {
  return is_gguf_file(path) ? load_gguf_model(path, opts) : Model::load(path, opts);
}

GgufLoad load_gguf(const std::string& path) {
  return load_gguf(path, weight_form_for_any(path, "auto"));
}
Model load_gguf_model(const std::string& path) {
  return load_gguf_model(path, weight_form_for_any(path, "auto"));
}
Model load_any_model(const std::string& path) {
  return load_any_model(path, weight_form_for_any(path, "auto"));
}

LoadOptions weight_form_for_any(const std::string& path, const std::string& s) {
  if (!is_gguf_file(path)) return weight_form_for(path, s);
  if (s != "auto") return parse_weight_form(s);
  const GgufFile f(path);
  const bool q4 = std::any_of(f.tensors().begin(), f.tensors().end(), [](const GgufTensor& t) {
    return t.type == GgmlType::Q4_0 || t.type == GgmlType::Q4_1;
  });
  return q4 ? LoadOptions::fastest() : LoadOptions{};
}

}  // namespace awq::gguf
