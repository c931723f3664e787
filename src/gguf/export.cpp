#include "gguf/export.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>

#include "base/error.h"
#include "base/half.h"
#include "base/progress.h"
#include "base/sysinfo.h"
#include "formats/checkpoint.h"
#include "formats/safetensors.h"
#include "gguf/gguf_file.h"
#include "gguf/gguf_vocab.h"
#include "gguf/llama_layout.h"
#include "model/architecture.h"
#include "model/awq_dequant.h"
#include "model/block.h"
#include "model/config.h"
#include "model/rope.h"
#include "quant/ggml_blocks.h"
#include "quant/quant_spec.h"
#include "tokenizer/tokenizer.h"

namespace awq::gguf {
namespace fs = std::filesystem;

namespace {

constexpr int64_t kBlock = 32;

bool is_ffn_role(LinearRole r) {
  return r == LinearRole::Gate || r == LinearRole::Up || r == LinearRole::Down;
}

GgmlType parse_type(const std::string& s, const char* option) {
  if (s == "q4_1") return GgmlType::Q4_1;
  if (s == "q4_0") return GgmlType::Q4_0;
  if (s == "q8_0") return GgmlType::Q8_0;
  if (s == "f16") return GgmlType::F16;
  if (s == "f32") return GgmlType::F32;
  fail("{} '{}' is not a type (expected q4_1, q4_0, f16 or f32{})", option, s,
       std::string(option) == "--embeddings" ? ", or q8_0" : "");
}

uint32_t file_type_of(GgmlType t) {
  switch (t) {
    case GgmlType::F32:
      return 0;
    case GgmlType::F16:
      return 1;
    case GgmlType::Q4_0:
      return 2;
    case GgmlType::Q4_1:
      return 3;
    case GgmlType::Q8_0:
      return 7;
  }
  return 0;
}

std::vector<uint8_t> encode(const float* x, size_t n, GgmlType t, const std::string& tensor) {
  std::vector<uint8_t> b;
  if (t == GgmlType::F32) {
    b.resize(n * 4);
    std::memcpy(b.data(), x, n * 4);
  } else {
    b.resize(n * 2);
    for (size_t i = 0; i < n; ++i) {
      const uint16_t h = f32_to_f16(x[i]);
      AWQ_CHECK(!std::isfinite(x[i]) || (h & 0x7c00) != 0x7c00,
                "tensor '{}': value {} at index {} overflows f16; export with --type f32", tensor,
                x[i], i);
      std::memcpy(b.data() + 2 * i, &h, 2);
    }
  }
  return b;
}

// A [rows, cols] float matrix in type t (F32, F16 or Q8_0).
std::vector<uint8_t> encode_matrix(const Mat& m, GgmlType t, const std::string& tensor) {
  if (t == GgmlType::Q8_0) return quantize_ggml_q8_0(m.data.data(), m.rows, m.cols, tensor);
  return encode(m.data.data(), m.data.size(), t, tensor);
}

// The input widths of the model's linears: hidden (q/k/v, gate/up, experts' gate/up, the
// router), attention (o), and each feed-forward's width (down): intermediate for dense layers,
// the experts' and the shared expert's for sparse ones.
std::vector<std::pair<const char*, int64_t>> input_widths(const ModelConfig& c) {
  std::vector<std::pair<const char*, int64_t>> w = {{"hidden", c.hidden_size},
                                                    {"attention", c.q_dim()}};
  bool dense = false, sparse = false;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) (c.is_moe_layer(l) ? sparse : dense) = true;
  if (dense) w.emplace_back("intermediate", c.intermediate_size);
  if (sparse) {
    w.emplace_back("expert intermediate", c.moe_intermediate_size);
    if (c.shared_expert_intermediate_size > 0)
      w.emplace_back("shared expert intermediate", c.shared_expert_intermediate_size);
  }
  return w;
}

// The group sizes that Q4 blocks can hold for every linear's input width.
std::vector<int64_t> group_sizes_for_all(const ModelConfig& c) {
  std::vector<int64_t> common;
  bool first = true;
  for (const auto& [what, in] : input_widths(c)) {
    (void)what;
    const auto s = valid_group_sizes(in, kBlock);
    if (first) {
      common = s;
      first = false;
    } else {
      std::vector<int64_t> keep;
      for (int64_t g : common)
        if (std::find(s.begin(), s.end(), g) != s.end()) keep.push_back(g);
      common = keep;
    }
  }
  return common;
}

void check_q4_groups(const ModelConfig& c, const std::string& dir, GgmlType t) {
  const int g = c.quant->group_size;
  const auto ok = group_sizes_for_all(c);
  std::string widths;
  bool per_row_ok = true;
  for (const auto& [what, in] : input_widths(c)) {
    widths += fmt::format("{}{} {}", widths.empty() ? "" : ", ", what, in);
    per_row_ok = per_row_ok && in % kBlock == 0;
  }
  if (g == -1 ? per_row_ok : (g > 0 && g % kBlock == 0)) return;
  const std::string what =
      g == -1 ? "per-row groups (group size -1)" : fmt::format("group size {}", g);
  if (ok.empty() && !per_row_ok) {
    fail(
        "{}: {} cannot be stored as {}: ggml blocks hold 32 weights and the input widths ({}) are "
        "not all "
        "multiples of 32, so no AWQ group size maps exactly; export --type f16 and re-quantize "
        "with "
        "llama-quantize, or pad the model (awq quantize --pad-intermediate)",
        dir, what, ggml_type_name(t), widths);
  }
  fail(
      "{}: {} is not a multiple of 32, ggml's block size, so {} cannot hold the AWQ groups "
      "exactly. "
      "Quantize with --group-size {} (multiples of 32 that divide every input width: {}), or "
      "export --type "
      "f16 and re-quantize with llama-quantize",
      dir, what, ggml_type_name(t), format_group_sizes(ok, per_row_ok), widths);
}

struct Shared {
  std::shared_ptr<Checkpoint> ck;
  ModelConfig cfg;
  const Architecture* arch = nullptr;
  const GgufArch* ga = nullptr;
  bool permute = false;
  GgmlType linear_type = GgmlType::F16;
  GgmlType embed_type = GgmlType::F16;
  ExportReport* report = nullptr;
  std::unique_ptr<Progress> progress;
  int64_t done = 0;
  void tick(const std::string& name) {
    if (progress) progress->update(++done, name);
  }
};

bool is_quantized(const Shared& s, const std::string& linear) {
  return s.cfg.quant.has_value() && s.ck->has(linear + ".qweight");
}

// Largest |f16(m) - m| / d over the Q4_1 blocks of q.
double min_rounding_steps(const QuantizedMatrix& q) {
  double worst = 0;
  for (size_t i = 0; i < q.scales.size(); ++i) {
    const float s = q.scales[i];
    if (s == 0) continue;
    const float m = -float(q.zeros[i]) * s;
    worst = std::max(worst, double(std::fabs(round_to_f16(m) - m)) / double(s));
  }
  return worst;
}

// The bytes of the checkpoint linear `name` ([out, in], rows permuted by `perm` if set) in the
// export's linear type: AWQ codes carried over as Q4_1/Q4_0, or F16/F32 (dequantized AWQ weights
// when the type is a float one).
std::vector<uint8_t> encode_linear(Shared& s, const std::string& name, int64_t out, int64_t in,
                                   const std::vector<int64_t>& perm, const std::string& tensor) {
  if (is_quantized(s, name) &&
      (s.linear_type == GgmlType::Q4_1 || s.linear_type == GgmlType::Q4_0)) {
    QuantizedMatrix q = read_awq_linear(*s.ck, name, *s.cfg.quant, out, in);
    if (!perm.empty()) q = permute_rows(q, perm);
    if (s.linear_type == GgmlType::Q4_1) {
      s.report->max_min_rounding_steps =
          std::max(s.report->max_min_rounding_steps, min_rounding_steps(q));
      return to_ggml_q4_1(q, tensor);
    }
    return to_ggml_q4_0(q, tensor);
  }
  Mat w = is_quantized(s, name) ? dequantize_awq_linear(*s.ck, name, *s.cfg.quant, out, in)
                                : s.ck->read_mat(name + ".weight", out, in);
  if (!perm.empty()) w = permute_rows(w, perm);
  return encode_matrix(w, s.linear_type == GgmlType::F32 ? GgmlType::F32 : GgmlType::F16, tensor);
}

// The GGUF tensor of linear `r` (r is the first role of a fused tensor: the whole q|k|v or
// gate|up tensor, which llama.cpp's phi3 stores fused exactly as the checkpoint does).
std::vector<uint8_t> produce_linear(Shared& s, int64_t layer, LinearRole r,
                                    const std::string& tensor) {
  const std::string name = s.arch->stored_linear_name(layer, r);
  const int64_t in = linear_shape(s.cfg, r).second;
  const int64_t out = stored_rows(s.cfg, *s.arch, r).rows;
  std::vector<int64_t> perm;
  if (s.permute && (r == LinearRole::Q || r == LinearRole::K))
    perm = rope_row_permutation(
        out, r == LinearRole::Q ? s.cfg.num_attention_heads : s.cfg.num_key_value_heads);
  std::vector<uint8_t> bytes = encode_linear(s, name, out, in, perm, tensor);
  s.tick(tensor);
  return bytes;
}

// [out, in] of an expert's linear r (gate/up [I, hidden], down [hidden, I]) for width I.
std::pair<int64_t, int64_t> expert_shape(const ModelConfig& c, LinearRole r, int64_t I) {
  return r == LinearRole::Down ? std::pair{c.hidden_size, I} : std::pair{I, c.hidden_size};
}

// blk.N.ffn_{gate,up,down}_exps: the E experts' [out, in] matrices one after the other, expert 0
// first (ggml ne {in, out, E}, as the converter's torch.stack along a new dim 0 gives). Each
// matrix is encoded on its own: ggml blocks never span rows, so the stacked bytes are the
// concatenation.
std::vector<uint8_t> produce_experts(Shared& s, int64_t layer, LinearRole r,
                                     const std::string& tensor) {
  const auto [out, in] = expert_shape(s.cfg, r, s.cfg.moe_intermediate_size);
  std::vector<uint8_t> bytes;
  for (int64_t e = 0; e < s.cfg.num_experts; ++e) {
    const std::vector<uint8_t> b = encode_linear(s, s.arch->expert_linear_name(layer, e, r), out,
                                                 in, {}, fmt::format("{} (expert {})", tensor, e));
    if (e == 0) bytes.reserve(b.size() * size_t(s.cfg.num_experts));
    bytes.insert(bytes.end(), b.begin(), b.end());
  }
  s.tick(tensor);
  return bytes;
}

// A float [rows, cols] checkpoint tensor (or an AWQ-quantized one, dequantized) as F32.
std::vector<uint8_t> produce_f32(Shared& s, const std::string& name, int64_t rows, int64_t cols,
                                 const std::string& tensor) {
  const Mat m = is_quantized(s, name) ? dequantize_awq_linear(*s.ck, name, *s.cfg.quant, rows, cols)
                                      : s.ck->read_mat(name + ".weight", rows, cols);
  std::vector<uint8_t> b = encode(m.data.data(), m.data.size(), GgmlType::F32, tensor);
  s.tick(tensor);
  return b;
}

// HF's inverse frequencies of `spec` at a short sequence (longrope: its short factors).
std::vector<double> inverse_frequencies(const RopeSpec& spec, double* attention_factor = nullptr) {
  std::vector<double> f;
  double af = 1;
  rope_frequencies(spec, 1, f, af);
  if (attention_factor) *attention_factor = af;
  return f;
}

// RoPE metadata and tensors in llama.cpp's terms (families.md §1, §9): linear as
// rope.scaling.type/factor; llama3 as the rope_freqs tensor of per-frequency divisors, as
// convert_hf_to_gguf computes it (ggml divides each frequency by it); Phi-3's longrope as
// rope_factors_long/short with rope.scaling.attn_factor and original_context_length. What a GGUF
// architecture cannot express is an error naming the config key.
void write_rope(GgufWriter& w, const std::shared_ptr<Shared>& s, const std::string& dir) {
  const ModelConfig& c = s->cfg;
  const std::string a = s->ga->name + ".";
  const RopeScaling& r = c.rope_scaling;
  const int64_t half = c.rotary_dim / 2;
  auto refuse = [&](const std::string& why) {
    fail(
        "{}: config.json rope_scaling (rope_type '{}') cannot be exported to GGUF architecture "
        "'{}': {}",
        dir, r.type, s->ga->name, why);
  };
  if (r.type == "default") return;
  if (r.type == "linear") {
    w.set(a + "rope.scaling.type", Value::string("linear"));
    w.set(a + "rope.scaling.factor", Value::f32(float(r.factor)));
    return;
  }
  if (r.type == "llama3") {
    if (s->ga->name != "llama")
      refuse("llama.cpp reads the llama3 frequency table (rope_freqs) for architecture llama only");
    RopeSpec plain = c.rope(0), scaled = c.rope(0);
    plain.scaling = RopeScaling{};
    const auto f0 = inverse_frequencies(plain), f1 = inverse_frequencies(scaled);
    std::vector<float> divisors(static_cast<size_t>(half));
    for (int64_t i = 0; i < half; ++i) divisors[size_t(i)] = float(f0[size_t(i)] / f1[size_t(i)]);
    // Not read by llama.cpp for llama3; lets a reader rebuild the rope_scaling parameters.
    w.set(a + "rope.scaling.original_context_length",
          Value::u32(uint32_t(r.original_max_position_embeddings)));
    w.add_tensor(kRopeFreqs, GgmlType::F32, {half}, [s, divisors](std::vector<uint8_t>& out) {
      out = encode(divisors.data(), divisors.size(), GgmlType::F32, kRopeFreqs);
      s->tick(kRopeFreqs);
    });
    return;
  }
  if (r.type == "longrope") {
    if (s->ga->name != "phi3")
      refuse("llama.cpp reads longrope factors (rope_factors_long/short) for architecture phi3");
    double af = 1;
    inverse_frequencies(c.rope(0), &af);
    const int64_t lo = c.original_max_position_embeddings > 0 ? c.original_max_position_embeddings
                                                              : c.max_position_embeddings;
    w.set(a + "rope.scaling.attn_factor", Value::f32(float(af)));
    w.set(a + "rope.scaling.original_context_length", Value::u32(uint32_t(lo)));
    for (const auto& [name, v] : {std::pair{kRopeFactorsLong, r.long_factor},
                                  std::pair{kRopeFactorsShort, r.short_factor}}) {
      std::vector<float> f(v.begin(), v.end());
      const std::string tn = name;
      w.add_tensor(tn, GgmlType::F32, {half}, [s, f, tn](std::vector<uint8_t>& out) {
        out = encode(f.data(), f.size(), GgmlType::F32, tn);
        s->tick(tn);
      });
    }
    return;
  }
  if (r.type == "dynamic")
    refuse(
        "llama.cpp has no dynamic (NTK) scaling; it equals the default only up to "
        "max_position_embeddings");
  refuse(
      "not supported by the GGUF export (supported: linear, llama3 for llama, longrope for "
      "phi3)");
}

// llama.cpp's attention scale for Gemma-2/3: 1/sqrt(hidden/heads) for the 27B types (told apart
// by their layer count), else 1/sqrt(head_dim); query_pre_attn_scalar is not stored.
float llamacpp_gemma_attn_scale(const std::string& arch, const ModelConfig& c) {
  const bool is27b = (arch == "gemma2" && c.num_hidden_layers == 46) ||
                     (arch == "gemma3" && c.num_hidden_layers == 62);
  return float(1.0 / std::sqrt(double(is27b ? c.hidden_size / c.num_attention_heads : c.head_dim)));
}

// What llama.cpp's MoE architectures cannot hold: a dense layer (each layer has one expert set),
// a renormalization other than the graph's hard-coded one, more experts than it allows.
void check_moe(const ModelConfig& c, const GgufArch& g, const std::string& dir) {
  const std::string& a = g.name;
  AWQ_CHECK(c.num_experts > 0,
            "{}: {} is 0 (every layer dense), but llama.cpp's {} needs experts in every layer", dir,
            c.arch().moe.experts_key, a);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    if (c.is_moe_layer(l)) continue;
    const bool listed =
        std::find(c.mlp_only_layers.begin(), c.mlp_only_layers.end(), l) != c.mlp_only_layers.end();
    fail(
        "{}: layer {} is dense ({}), but llama.cpp's {} makes every layer sparse and has no "
        "dense feed-forward in a MoE model",
        dir, l,
        listed ? "listed in mlp_only_layers"
               : fmt::format("decoder_sparse_step {}", c.decoder_sparse_step),
        a);
  }
  AWQ_CHECK(c.norm_topk_prob == g.moe_renormalizes,
            "{}: norm_topk_prob is {}, but llama.cpp's {} {} renormalizes the top-k routing "
            "weights (hard-coded, no GGUF key)",
            dir, c.norm_topk_prob, a, g.moe_renormalizes ? "always" : "never");
  AWQ_CHECK(g.shared_expert == (c.shared_expert_intermediate_size > 0),
            "{}: shared_expert_intermediate_size {}: llama.cpp's {} {} a shared expert", dir,
            c.shared_expert_intermediate_size, a, g.shared_expert ? "requires" : "has no");
  // llama.cpp c392e509 src/llama-hparams.h: LLAMA_MAX_EXPERTS.
  constexpr int64_t kMaxExperts = 256;
  AWQ_CHECK(c.num_experts <= kMaxExperts, "{}: {} {} is more than llama.cpp's limit of {} experts",
            dir, c.arch().moe.experts_key, c.num_experts, kMaxExperts);
}

// What each architecture's llama.cpp graph hard-codes or cannot hold: errors for what would run
// differently, warnings for what c392e509 or a long context would see differently.
void check_family(const Shared& s, const std::string& dir, ExportReport& rep) {
  const ModelConfig& c = s.cfg;
  const GgufArch& g = *s.ga;
  const std::string& a = g.name;
  if (g.output_is_embd)
    AWQ_CHECK(c.tie_word_embeddings,
              "{}: tie_word_embeddings is false, but llama.cpp's {} always uses token_embd as the "
              "output matrix",
              dir, a);
  if (a == "qwen3")
    AWQ_CHECK(!c.attention_bias,
              "{}: attention_bias is true, but llama.cpp's qwen3 has no q/k/v "
              "biases",
              dir);
  if (a == "phi3")
    AWQ_CHECK(c.q_dim() == c.hidden_size,
              "{}: head_dim {} x num_attention_heads {} is not hidden_size {}: llama.cpp's phi3 "
              "derives the head size from hidden_size",
              dir, c.head_dim, c.num_attention_heads, c.hidden_size);
  if (a == "gemma2" || a == "gemma3") {
    const float want = llamacpp_gemma_attn_scale(a, c);
    AWQ_CHECK(std::fabs(c.attn_scale - want) <= 1e-6f * want,
              "{}: query_pre_attn_scalar gives the attention scale {}, but llama.cpp's {} uses {} "
              "(1/sqrt(head_dim), or 1/sqrt(hidden/heads) for the 27B layer count) and stores no "
              "query_pre_attn_scalar",
              dir, c.attn_scale, a, want);
  }
  if (a == "gemma2") {
    AWQ_CHECK(
        c.attn_softcap > 0 && c.final_softcap > 0,
        "{}: attn_logit_softcapping / final_logit_softcapping is null, but llama.cpp's gemma2 "
        "always soft-caps (default 50 / 30)",
        dir);
    if (c.num_hidden_layers != 26 && c.num_hidden_layers != 42 && c.num_hidden_layers != 46)
      rep.warnings.push_back(fmt::format(
          "llama.cpp c392e509 aborts on a gemma2 model of {} layers (it knows 26, 42 and 46); "
          "newer llama.cpp runs it",
          c.num_hidden_layers));
  }
  if (a == "gemma3") {
    AWQ_CHECK(c.sliding_window > 0,
              "{}: sliding_window is null, but llama.cpp's gemma3 reads "
              "gemma3.attention.sliding_window and runs every 6th layer global",
              dir);
    if (c.rope_local_theta != 10000.0f)
      rep.warnings.push_back(fmt::format(
          "rope_local_base_freq is {}, but llama.cpp's gemma3 hard-codes 10000 for the local "
          "layers: llama.cpp (and awq.cpp reading this GGUF) will run them differently",
          c.rope_local_theta));
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
      if ((c.layer_sliding[size_t(l)] != 0) != ((l + 1) % 6 != 0)) {
        rep.warnings.push_back(
            "the local/global layer pattern (sliding_window_pattern / layer_types) is not "
            "llama.cpp's hard-coded one (every 6th layer global): llama.cpp (and awq.cpp reading "
            "this GGUF) will run the layers differently");
        break;
      }
    }
  }
  if (a == "llama" || a == "qwen2" || a == "qwen3") {
    bool any = false;
    for (auto v : c.layer_sliding) any = any || v != 0;
    if (any && c.sliding_window > 0 && c.sliding_window < c.max_position_embeddings)
      rep.warnings.push_back(fmt::format(
          "sliding_window {} is not stored: llama.cpp's {} attends to the whole context, which "
          "matches the model only for sequences of at most {} tokens",
          c.sliding_window, a, c.sliding_window));
  }
  if (a == "phi3" && c.sliding_window > 0 && c.sliding_window < c.max_position_embeddings)
    rep.warnings.push_back(fmt::format(
        "sliding_window {} is written, but llama.cpp since mid-2025 (PR #13676) runs phi3 "
        "without it (c392e509 applies it): newer llama.cpp matches the model only for sequences "
        "of at most {} tokens",
        c.sliding_window, c.sliding_window));
  if (a == "phi3" && c.rope_scaling.type == "longrope" && c.rotary_dim != c.head_dim)
    rep.warnings.push_back(fmt::format(
        "partial rotary ({} of {} dimensions) with longrope: llama.cpp c392e509 expects "
        "rope_factors of head_dim/2 = {} and cannot load this file; newer llama.cpp reads "
        "rotary_dim/2 = {}",
        c.rotary_dim, c.head_dim, c.head_dim / 2, c.rotary_dim / 2));
  if (g.moe) check_moe(c, g, dir);
  if (!g.known_at_c392e509)
    rep.warnings.push_back(
        fmt::format("GGUF architecture '{}' needs llama.cpp newer than c392e509 (2025-02)", a));
}

}  // namespace

ExportReport export_gguf(const ExportOptions& o) {
  Timer timer;
  ExportReport rep;
  const std::string& dir = o.model_dir;
  AWQ_CHECK(!o.out_path.empty(), "export-gguf: --out is required");
  auto s = std::make_shared<Shared>();
  s->report = &rep;
  s->cfg = ModelConfig::load(dir);
  const ModelConfig& cfg = s->cfg;
  s->arch = &cfg.arch();
  s->ga = &gguf_arch_for(cfg.model_type);
  rep.arch = s->ga->name;
  s->permute = s->ga->permute_qk;
  AWQ_CHECK(s->ga->fused == (s->arch->fused_qkv() && s->arch->fused_gate_up()),
            "{}: model_type '{}' stores its projections {} but GGUF architecture '{}' does not",
            dir, cfg.model_type, s->ga->fused ? "separately" : "fused", rep.arch);
  AWQ_CHECK(!cfg.mlp_bias, "{}: MLP biases (mlp_bias) have no place in llama.cpp's {} tensors", dir,
            rep.arch);

  // Types.
  const bool awq = cfg.quant.has_value();
  if (o.type == "auto") {
    s->linear_type =
        awq ? (cfg.quant->zero_point ? GgmlType::Q4_1 : GgmlType::Q4_0) : GgmlType::F16;
  } else {
    s->linear_type = parse_type(o.type, "--type");
    AWQ_CHECK(s->linear_type != GgmlType::Q8_0,
              "--type q8_0 is not offered: export f16 and use llama-quantize");
  }
  const bool q4 = s->linear_type == GgmlType::Q4_1 || s->linear_type == GgmlType::Q4_0;
  if (q4) {
    AWQ_CHECK(awq,
              "{}: --type {} needs an AWQ checkpoint (config.json has no quantization_config); "
              "export-gguf never "
              "re-quantizes. Run `awq quantize` first, or export --type f16 and use llama-quantize",
              dir, o.type);
    AWQ_CHECK(cfg.quant->bits == 4, "{}: {}-bit AWQ weights cannot be {} (4-bit blocks)", dir,
              cfg.quant->bits, ggml_type_name(s->linear_type));
    AWQ_CHECK(s->linear_type == GgmlType::Q4_1 || !cfg.quant->zero_point,
              "{}: this AWQ checkpoint is asymmetric (zero_point true); Q4_0 has no zero point, so "
              "it cannot hold "
              "the groups exactly. Use --type q4_1, or quantize with `awq quantize --symmetric`",
              dir);
    check_q4_groups(cfg, dir, s->linear_type);
  }
  const std::string emb =
      o.embeddings.empty() ? (s->linear_type == GgmlType::F32 ? "f32" : "f16") : o.embeddings;
  s->embed_type = parse_type(emb, "--embeddings");
  AWQ_CHECK(s->embed_type == GgmlType::F32 || s->embed_type == GgmlType::F16 ||
                s->embed_type == GgmlType::Q8_0,
            "--embeddings must be f32, f16 or q8_0 (got '{}')", emb);
  AWQ_CHECK(s->embed_type != GgmlType::Q8_0 || cfg.hidden_size % kBlock == 0,
            "{}: --embeddings q8_0 needs hidden_size {} to be a multiple of 32", dir,
            cfg.hidden_size);
  rep.linear_type = ggml_type_name(s->linear_type);
  rep.embedding_type = ggml_type_name(s->embed_type);

  s->ck = std::make_shared<Checkpoint>(Checkpoint::open(dir));
  const Tokenizer tok = Tokenizer::from_dir(dir);
  const GgufVocab vocab = vocab_from_tokenizer(tok, cfg.vocab_size, dir);
  rep.tokenizer_model = vocab.model;
  rep.tokenizer_pre = vocab.pre;
  if (vocab.model == "llama") {
    // The byte-level case was checked while choosing the pre-tokenizer; check this one too.
    const Tokenizer back = tokenizer_from_vocab(vocab, dir);
    if (back.encode(vocab_probe_text(), false) != tok.encode(vocab_probe_text(), false))
      rep.warnings.push_back(
          "the SentencePiece-style tokenizer rebuilt from the GGUF metadata encodes the probe text "
          "differently "
          "from the model's tokenizer.json (llama.cpp may tokenize some text differently)");
  }

  check_family(*s, dir, rep);

  // Metadata.
  GgufWriter w;
  const std::string a = rep.arch;
  const std::string name =
      o.name.empty() ? fs::path(dir).lexically_normal().filename().string() : o.name;
  w.set("general.architecture", Value::string(a));
  w.set("general.name", Value::string(name.empty() ? "model" : name));
  w.set("general.file_type", Value::u32(file_type_of(s->linear_type)));
  w.set("general.quantization_version", Value::u32(2));
  w.set(a + ".vocab_size", Value::u32(uint32_t(cfg.vocab_size)));
  w.set(a + ".context_length", Value::u32(uint32_t(cfg.max_position_embeddings)));
  w.set(a + ".embedding_length", Value::u32(uint32_t(cfg.hidden_size)));
  w.set(a + ".block_count", Value::u32(uint32_t(cfg.num_hidden_layers)));
  w.set(a + ".feed_forward_length", Value::u32(uint32_t(cfg.intermediate_size)));
  w.set(a + ".attention.head_count", Value::u32(uint32_t(cfg.num_attention_heads)));
  w.set(a + ".attention.head_count_kv", Value::u32(uint32_t(cfg.num_key_value_heads)));
  w.set(a + ".attention.layer_norm_rms_epsilon", Value::f32(cfg.rms_norm_eps));
  w.set(a + ".rope.dimension_count", Value::u32(uint32_t(cfg.rotary_dim)));
  w.set(a + ".rope.freq_base", Value::f32(cfg.rope_theta));
  if (cfg.head_dim * cfg.num_attention_heads != cfg.hidden_size || s->ga->norm_offset != 0 ||
      s->ga->qk_norm) {
    w.set(a + ".attention.key_length", Value::u32(uint32_t(cfg.head_dim)));
    w.set(a + ".attention.value_length", Value::u32(uint32_t(cfg.head_dim)));
  }
  if (s->ga->moe) {
    w.set(a + ".expert_count", Value::u32(uint32_t(cfg.num_experts)));
    w.set(a + ".expert_used_count", Value::u32(uint32_t(cfg.num_experts_per_tok)));
    if (s->ga->moe_expert_ffn_key)
      w.set(a + ".expert_feed_forward_length", Value::u32(uint32_t(cfg.moe_intermediate_size)));
    if (s->ga->shared_expert)
      w.set(a + ".expert_shared_feed_forward_length",
            Value::u32(uint32_t(cfg.shared_expert_intermediate_size)));
  }
  if (a == "gemma2") {
    w.set(a + ".attn_logit_softcapping", Value::f32(cfg.attn_softcap));
    w.set(a + ".final_logit_softcapping", Value::f32(cfg.final_softcap));
  }
  if (a == "gemma3" && cfg.final_softcap > 0)
    w.set(a + ".final_logit_softcapping", Value::f32(cfg.final_softcap));
  if (a == "gemma2" || a == "gemma3" || a == "phi3")
    w.set(a + ".attention.sliding_window", Value::u32(uint32_t(cfg.sliding_window)));
  if (a == "phi3" && cfg.rope_scaling.type != "longrope" &&
      cfg.original_max_position_embeddings > 0)
    w.set(a + ".rope.scaling.original_context_length",
          Value::u32(uint32_t(cfg.original_max_position_embeddings)));
  write_vocab(w, vocab);

  // Tensors (producers run while the file is written).
  const int64_t d = cfg.hidden_size, V = cfg.vocab_size;
  const float off = s->ga->norm_offset;  // Gemma: llama.cpp's norms hold 1 + w
  auto add_vec = [&](const std::string& tensor, const std::string& src, int64_t n,
                     const std::vector<int64_t>& perm, float offset) {
    w.add_tensor(tensor, GgmlType::F32, {n},
                 [s, tensor, src, n, perm, offset](std::vector<uint8_t>& out) {
                   std::vector<float> v = s->ck->read_vec(src, n);
                   if (!perm.empty()) v = permute_rows(v, perm);
                   for (float& x : v) x += offset;  // in f32, as HF computes 1 + w
                   out = encode(v.data(), v.size(), GgmlType::F32, tensor);
                   s->tick(tensor);
                 });
  };
  auto add_norm = [&](const std::string& tensor, const std::string& src, int64_t n) {
    add_vec(tensor, src, n, {}, off);
  };
  auto add_embedding = [&](const std::string& tensor, const std::string& src) {
    w.add_tensor(tensor, s->embed_type, {d, V}, [s, tensor, src, d, V](std::vector<uint8_t>& out) {
      out = encode_matrix(s->ck->read_mat(src, V, d), s->embed_type, tensor);
      s->tick(tensor);
    });
  };
  const Architecture& arch = *s->arch;
  // The type of a linear written from checkpoint linear(s) `names`: the export's Q4 type when
  // every one holds AWQ codes, else F16/F32 (a stacked tensor has one type, so experts that are
  // partly quantized cannot be written without re-quantizing).
  auto linear_type_of = [&](const std::vector<std::string>& names, const std::string& tensor) {
    size_t quantized = 0;
    for (const auto& n : names) quantized += is_quantized(*s, n);
    AWQ_CHECK(!q4 || quantized == 0 || quantized == names.size(),
              "{}: {} of the {} experts stacked in '{}' are AWQ-quantized (e.g. '{}' is {}): a "
              "GGUF tensor has one type and export-gguf never re-quantizes; export --type f16",
              dir, quantized, names.size(), tensor, names[0],
              is_quantized(*s, names[0]) ? "quantized" : "not");
    const bool codes = q4 && quantized > 0;
    (codes ? rep.quantized_linears : rep.float_linears) += int64_t(names.size());
    return codes ? s->linear_type
                 : (s->linear_type == GgmlType::F32 ? GgmlType::F32 : GgmlType::F16);
  };
  // A sparse layer's router, experts and shared expert, in llama.cpp's names and layout.
  auto add_moe = [&](int64_t l) {
    const int64_t E = cfg.num_experts;
    const std::string router = gguf_block_tensor(l, kFfnGateInp);
    // F32, as llama.cpp's converter keeps it (and llama-quantize never quantizes it): top-k
    // choices must not move with the experts' format.
    w.add_tensor(router, GgmlType::F32, {d, E}, [s, l, router, d, E](std::vector<uint8_t>& out) {
      out = produce_f32(*s, s->arch->router_name(l), E, d, router);
    });
    for (LinearRole r : {LinearRole::Gate, LinearRole::Up, LinearRole::Down}) {
      const std::string tensor = gguf_block_tensor(l, gguf_expert_name(r, false));
      std::vector<std::string> names;
      for (int64_t e = 0; e < E; ++e) {
        names.push_back(arch.expert_linear_name(l, e, r));
        AWQ_CHECK(!s->ck->has(names.back() + ".bias"),
                  "{}: '{}' has a bias; llama.cpp's {} experts have none", dir, names.back(), a);
      }
      const auto [out, in] = expert_shape(cfg, r, cfg.moe_intermediate_size);
      w.add_tensor(tensor, linear_type_of(names, tensor), {in, out, E},
                   [s, l, r, tensor](std::vector<uint8_t>& bytes) {
                     bytes = produce_experts(*s, l, r, tensor);
                   });
    }
    if (!s->ga->shared_expert) return;
    const std::string gate = gguf_block_tensor(l, kFfnGateInpShexp);
    // HF's [1, hidden] linear; llama.cpp declares it [hidden].
    w.add_tensor(gate, GgmlType::F32, {d}, [s, l, gate, d](std::vector<uint8_t>& out) {
      out = produce_f32(*s, s->arch->shared_gate_name(l), 1, d, gate);
    });
    for (LinearRole r : {LinearRole::Gate, LinearRole::Up, LinearRole::Down}) {
      const std::string tensor = gguf_block_tensor(l, gguf_expert_name(r, true));
      const std::string name = arch.shared_expert_linear_name(l, r);
      // Plain variables, not a structured binding: lambdas capture those only from C++20 compilers
      // newer than clang 14 (the asan preset's).
      const std::pair<int64_t, int64_t> shape =
          expert_shape(cfg, r, cfg.shared_expert_intermediate_size);
      const int64_t out = shape.first, in = shape.second;
      w.add_tensor(tensor, linear_type_of({name}, tensor), {in, out},
                   [s, name, out, in, tensor](std::vector<uint8_t>& bytes) {
                     bytes = encode_linear(*s, name, out, in, {}, tensor);
                     s->tick(tensor);
                   });
    }
  };
  add_embedding(kTokenEmbd, arch.embed_name);
  write_rope(w, s, dir);
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    add_norm(gguf_block_tensor(l, kAttnNorm), arch.norm_name(l, NormRole::Attn), d);
    if (s->ga->qk_norm) {
      add_norm(gguf_block_tensor(l, kAttnQNorm), arch.layer_name(l, arch.q_norm_name + ".weight"),
               cfg.head_dim);
      add_norm(gguf_block_tensor(l, kAttnKNorm), arch.layer_name(l, arch.k_norm_name + ".weight"),
               cfg.head_dim);
    }
    for (LinearRole r : kAllLinearRoles) {
      if (r == LinearRole::Gate) {
        if (s->ga->post_norms)
          add_norm(gguf_block_tensor(l, kPostAttnNorm),
                   arch.layer_name(l, arch.post_attn_norm_name + ".weight"), d);
        add_norm(gguf_block_tensor(l, kFfnNorm), arch.norm_name(l, NormRole::Mlp), d);
      }
      if (cfg.is_moe_layer(l) && r == LinearRole::Gate) add_moe(l);
      if (cfg.is_moe_layer(l) && is_ffn_role(r)) continue;
      const StoredRows rows = stored_rows(cfg, arch, r);
      if (rows.row0 != 0) continue;  // a later part of a fused tensor, written with the first
      const std::string lin = arch.stored_linear_name(l, r);
      const int64_t in = linear_shape(cfg, r).second, out = rows.rows;
      const std::string tensor = gguf_linear_slot(*s->ga, cfg, l, r).tensor;
      const GgmlType t = linear_type_of({lin}, tensor);
      w.add_tensor(tensor, t, {in, out}, [s, l, r, tensor](std::vector<uint8_t>& bytes) {
        bytes = produce_linear(*s, l, r, tensor);
      });
      if (s->ck->has(lin + ".bias")) {
        AWQ_CHECK(!arch.is_fused(r), "{}: '{}' has a bias; llama.cpp's {} has none", dir, lin, a);
        std::vector<int64_t> perm;
        if (s->permute && (r == LinearRole::Q || r == LinearRole::K))
          perm = rope_row_permutation(
              out, r == LinearRole::Q ? cfg.num_attention_heads : cfg.num_key_value_heads);
        add_vec(gguf_linear_tensor(l, r, "bias"), lin + ".bias", out, perm, 0.0f);
      }
    }
    if (s->ga->post_norms)
      add_norm(gguf_block_tensor(l, kPostFfwNorm),
               arch.layer_name(l, arch.post_mlp_norm_name + ".weight"), d);
  }
  add_norm(kOutputNorm, arch.final_norm_name, d);
  if (!cfg.tie_word_embeddings)
    add_embedding(kOutput, arch.lm_head_name);
  else if (s->ga->output_required)
    add_embedding(kOutput, arch.embed_name);  // phi3 at c392e509 needs it: a copy of the embeddings
  rep.tensors = int64_t(w.tensor_count());
  if (o.progress) s->progress = std::make_unique<Progress>("export-gguf", rep.tensors);
  w.write(o.out_path);
  if (s->progress) s->progress->finish();
  rep.file_bytes = fs::file_size(o.out_path);
  rep.seconds = timer.seconds();
  return rep;
}

}  // namespace awq::gguf
