#include "awq/writer.h"

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "base/error.h"
#include "base/half.h"
#include "formats/dtype.h"
#include "quant/awq_gemm_pack.h"

namespace awq {
namespace fs = std::filesystem;

namespace {

std::vector<uint8_t> int32_bytes(const std::vector<int32_t>& v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());  // x86-64 and safetensors are both little-endian
  return b;
}

std::vector<uint8_t> u16_bytes(const std::vector<uint16_t>& v) {
  std::vector<uint8_t> b(v.size() * 2);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

}  // namespace

const std::vector<std::string>& tokenizer_file_names() {
  static const std::vector<std::string> names = {"tokenizer.json",
                                                 "tokenizer_config.json",
                                                 "special_tokens_map.json",
                                                 "tokenizer.model",
                                                 "generation_config.json",
                                                 "added_tokens.json",
                                                 "vocab.json",
                                                 "merges.txt"};
  return names;
}

std::string text_model_prefix(const Architecture& arch) {
  const std::string& a = arch.embed_name;
  const std::string& b = arch.lm_head_name;
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  const size_t dot = a.rfind('.', n == 0 ? 0 : n - 1);
  return n == 0 || dot == std::string::npos ? std::string() : a.substr(0, dot + 1);
}

DType output_float_dtype(const Checkpoint& ck, const ModelConfig& cfg, const Architecture& arch) {
  const DType t = ck.get(arch.embed_name).dtype;
  if (t == DType::BF16 || t == DType::F16) return t;
  return cfg.torch_dtype == "bfloat16" ? DType::BF16 : DType::F16;
}

std::string torch_dtype_name(DType t) {
  switch (t) {
    case DType::BF16:
      return "bfloat16";
    case DType::F32:
      return "float32";
    default:
      return "float16";
  }
}

float round_to_dtype(float v, DType t) {
  switch (t) {
    case DType::F16:
      return round_to_f16(v);
    case DType::BF16:
      return bf16_to_f32(f32_to_bf16(v));
    default:
      return v;
  }
}

ModelWriter::ModelWriter(StagedDir& dir, const ModelConfig& cfg, const Architecture& arch,
                         bool autoawq, DType float_dtype, size_t max_shard_bytes)
    : dir_(dir),
      cfg_(cfg),
      arch_(arch),
      autoawq_(autoawq),
      float_dtype_(float_dtype),
      writer_(dir, max_shard_bytes) {
  AWQ_CHECK(float_dtype == DType::F16 || float_dtype == DType::BF16 || float_dtype == DType::F32,
            "writer: unquantized tensors are written as F16, BF16 or F32, not {}",
            dtype_name(float_dtype));
}

// A tensor of the input copied in the output's float dtype: byte for byte when it already has it.
void ModelWriter::copy_tensor(const Checkpoint& ck, const std::string& name) {
  const TensorInfo& t = ck.get(name);
  if (t.dtype == float_dtype_) {
    writer_.add(name, t.dtype, t.shape, std::vector<uint8_t>(t.data, t.data + t.nbytes));
    return;
  }
  const int64_t n = t.numel();
  const size_t osz = dtype_size(float_dtype_);
  std::vector<uint8_t> bytes(size_t(n) * osz);
  // Convert in slices so a large embedding never exists as a whole in f32.
  constexpr int64_t kSlice = 1 << 20;
  std::vector<float> buf;
  const size_t esz = dtype_size(t.dtype);
  for (int64_t i = 0; i < n; i += kSlice) {
    const int64_t m = std::min(kSlice, n - i);
    buf.resize(size_t(m));
    convert_to_f32(t.dtype, t.data + size_t(i) * esz, m, buf.data());
    const std::vector<uint8_t> enc = encode_floats(buf, float_dtype_);
    std::memcpy(bytes.data() + size_t(i) * osz, enc.data(), enc.size());
  }
  writer_.add(name, float_dtype_, t.shape, std::move(bytes));
}

// A norm held as its effective multiplier, written in the checkpoint's form (Gemma: multiplier − 1,
// computed in f32 and rounded once).
void ModelWriter::add_norm(const std::string& name, const std::vector<float>& multiplier) {
  std::vector<float> v = multiplier;
  const float off = arch_.norm_offset();
  if (off != 0)
    for (float& x : v) x -= off;
  writer_.add_f32_as(name, float_dtype_, {int64_t(v.size())}, v);
}

void ModelWriter::add_embeddings(const Checkpoint& ck) {
  copy_tensor(ck, arch_.embed_name);
}

namespace {

// Rows stacked in role order: a fused tensor's parts (q|k|v, gate|up), or one role alone.
QuantizedMatrix stack_rows(const std::vector<const QuantizedMatrix*>& parts) {
  QuantizedMatrix m = *parts[0];
  for (size_t i = 1; i < parts.size(); ++i) {
    const QuantizedMatrix& p = *parts[i];
    AWQ_CHECK(p.in == m.in && p.group == m.group && p.spec.bits == m.spec.bits,
              "writer: fused parts of different widths or quantizers");
    m.out += p.out;
    m.codes.insert(m.codes.end(), p.codes.begin(), p.codes.end());
    m.scales.insert(m.scales.end(), p.scales.begin(), p.scales.end());
    m.zeros.insert(m.zeros.end(), p.zeros.begin(), p.zeros.end());
  }
  return m;
}

}  // namespace

void ModelWriter::add_block(int64_t layer, const BlockWeights& w,
                            const std::vector<QuantizedMatrix>& q,
                            const std::vector<QuantizedMatrix>& qmoe) {
  add_norm(arch_.norm_name(layer, NormRole::Attn), w.attn_norm);
  if (arch_.has_qk_norm()) {
    add_norm(arch_.layer_name(layer, arch_.q_norm_name + ".weight"), w.q_norm);
    add_norm(arch_.layer_name(layer, arch_.k_norm_name + ".weight"), w.k_norm);
  }
  if (arch_.has_post_norms())
    add_norm(arch_.layer_name(layer, arch_.post_attn_norm_name + ".weight"), w.post_attn_norm);
  add_norm(arch_.norm_name(layer, NormRole::Mlp), w.mlp_norm);
  if (arch_.has_post_norms())
    add_norm(arch_.layer_name(layer, arch_.post_mlp_norm_name + ".weight"), w.post_mlp_norm);
  AWQ_CHECK(q.empty() || q.size() == size_t(kNumLinearRoles), "writer: {} quantized linears",
            q.size());
  for (LinearRole r : kAllLinearRoles) {
    const StoredRows rows = stored_rows(cfg_, arch_, r);
    if (rows.row0 != 0) continue;  // a later part of a fused tensor: written with the first
    if (w.is_moe() && w[r].out == 0) continue;  // a sparse layer's feed-forward: add_moe
    // The roles stored in this tensor, in row order (one, or q|k|v, or gate|up).
    std::vector<LinearRole> parts = {r};
    if (arch_.is_fused(r))
      parts = r == LinearRole::Q
                  ? std::vector<LinearRole>{LinearRole::Q, LinearRole::K, LinearRole::V}
                  : std::vector<LinearRole>{LinearRole::Gate, LinearRole::Up};
    int64_t n_rows = 0;
    for (LinearRole p : parts) n_rows += w[p].out;
    AWQ_CHECK(n_rows == rows.rows, "writer: {} has {} rows, the stored tensor needs {}",
              linear_role_name(r), n_rows, rows.rows);
    const int64_t in = w[r].in;
    const std::string name = arch_.stored_linear_name(layer, r);
    if (autoawq_) {
      AWQ_CHECK(!q.empty(), "writer: the AutoAWQ format needs quantized linears");
      std::vector<const QuantizedMatrix*> qs;
      for (LinearRole p : parts) qs.push_back(&q[size_t(p)]);
      const AwqGemmTensors t = pack_awq_gemm(stack_rows(qs), name);
      const int64_t K = t.K, N = t.N, G = t.group;
      writer_.add(name + ".qweight", DType::I32, {K, N / 8}, int32_bytes(t.qweight));
      writer_.add(name + ".qzeros", DType::I32, {K / G, N / 8}, int32_bytes(t.qzeros));
      writer_.add(name + ".scales", DType::F16, {K / G, N}, u16_bytes(t.scales_f16));
      quantized_names_.push_back(name);
    } else {
      std::vector<float> all;
      all.reserve(size_t(n_rows * in));
      for (LinearRole p : parts) {
        if (!q.empty()) {
          const QuantizedMatrix& m = q[size_t(p)];
          std::vector<float> deq(size_t(m.out * m.in));
          m.dequantize(deq.data());
          all.insert(all.end(), deq.begin(), deq.end());
        } else {
          all.insert(all.end(), w[p].w.data.begin(), w[p].w.data.end());
        }
      }
      // Dequantized weights are f16 scales times small integers: F16 holds them (almost) exactly
      // whatever the model's dtype; float_dtype F32 (tests) keeps no-quantize weights exact.
      const DType wt = float_dtype_ == DType::F32 ? DType::F32 : DType::F16;
      writer_.add_f32_as(name + ".weight", wt, {n_rows, in}, all);
    }
    bool any_bias = false;
    for (LinearRole p : parts) any_bias |= !w[p].bias.empty();
    if (any_bias) {
      std::vector<float> b;
      for (LinearRole p : parts) {
        AWQ_CHECK(int64_t(w[p].bias.size()) == w[p].out,
                  "writer: {} has {} bias values for {} rows", linear_role_name(p),
                  w[p].bias.size(), w[p].out);
        b.insert(b.end(), w[p].bias.begin(), w[p].bias.end());
      }
      writer_.add_f32_as(name + ".bias", float_dtype_, {n_rows}, b);
    }
  }
  if (w.is_moe()) add_moe(layer, w, qmoe);
}

void ModelWriter::add_linear(const std::string& name, const Linear& l, const QuantizedMatrix* q) {
  AWQ_CHECK(l.bias.empty(), "writer: {} has a bias (experts have none)", name);
  if (autoawq_) {
    AWQ_CHECK(q != nullptr, "writer: the AutoAWQ format needs quantized linears ({})", name);
    const AwqGemmTensors t = pack_awq_gemm(*q, name);
    const int64_t K = t.K, N = t.N, G = t.group;
    writer_.add(name + ".qweight", DType::I32, {K, N / 8}, int32_bytes(t.qweight));
    writer_.add(name + ".qzeros", DType::I32, {K / G, N / 8}, int32_bytes(t.qzeros));
    writer_.add(name + ".scales", DType::F16, {K / G, N}, u16_bytes(t.scales_f16));
    quantized_names_.push_back(name);
    return;
  }
  std::vector<float> v;
  if (q) {
    v.resize(size_t(q->out * q->in));
    q->dequantize(v.data());
  } else {
    v.assign(l.w.data.begin(), l.w.data.end());
  }
  const DType wt = float_dtype_ == DType::F32 ? DType::F32 : DType::F16;
  writer_.add_f32_as(name + ".weight", wt, {l.out, l.in}, v);
}

void ModelWriter::add_moe(int64_t layer, const BlockWeights& w,
                          const std::vector<QuantizedMatrix>& qmoe) {
  const MoeWeights& m = w.moe;
  const size_t n_ffn = m.experts.size() + (m.shared.present() ? 1 : 0);
  AWQ_CHECK(qmoe.empty() || qmoe.size() == 3 * n_ffn, "writer: {} quantized expert linears for {}",
            qmoe.size(), 3 * n_ffn);
  // The router and the shared expert's gate stay in the float dtype (they pick and weigh the
  // experts; no loader quantizes them) and are listed in modules_to_not_convert by full name:
  // the loaders match by substring, and "mlp.gate" alone would also match a dense layer's
  // "mlp.gate_proj".
  const std::string router = arch_.router_name(layer);
  writer_.add_f32_as(router + ".weight", float_dtype_, {m.router.rows, m.router.cols},
                     m.router.data);
  not_converted_.push_back(router);
  size_t i = 0;
  const LinearRole roles[] = {LinearRole::Gate, LinearRole::Up, LinearRole::Down};
  for (size_t e = 0; e < m.experts.size(); ++e)
    for (LinearRole r : roles) {
      const Linear& l = r == LinearRole::Gate ? m.experts[e].gate
                        : r == LinearRole::Up ? m.experts[e].up
                                              : m.experts[e].down;
      add_linear(arch_.expert_linear_name(layer, int64_t(e), r), l,
                 qmoe.empty() ? nullptr : &qmoe[i]);
      ++i;
    }
  if (m.shared.present()) {
    for (LinearRole r : roles) {
      const Linear& l = r == LinearRole::Gate ? m.shared.gate
                        : r == LinearRole::Up ? m.shared.up
                                              : m.shared.down;
      add_linear(arch_.shared_expert_linear_name(layer, r), l, qmoe.empty() ? nullptr : &qmoe[i]);
      ++i;
    }
    const std::string gate = arch_.shared_gate_name(layer);
    writer_.add_f32_as(gate + ".weight", float_dtype_, {1, int64_t(m.shared_gate.size())},
                       m.shared_gate);
    not_converted_.push_back(gate);
  }
}

void ModelWriter::finish(const Checkpoint& ck, const std::string& model_dir) {
  copy_tensor(ck, arch_.final_norm_name);
  if (!cfg_.tie_word_embeddings) copy_tensor(ck, arch_.lm_head_name);
  if (cfg_.multimodal) {
    // Gemma-3 multimodal: everything outside the language model (vision tower, projector) is
    // copied byte for byte and kept unquantized by the loaders (transformers would otherwise
    // replace the vision tower's nn.Linear by AWQ modules; vLLM matches by substring).
    const std::string text = text_model_prefix(arch_);
    std::vector<std::string> names = ck.names();
    std::sort(names.begin(), names.end());
    std::vector<std::string> modules;
    for (const std::string& n : names) {
      if (n.starts_with(text)) continue;
      const TensorInfo& t = ck.get(n);
      writer_.add(n, t.dtype, t.shape, std::vector<uint8_t>(t.data, t.data + t.nbytes));
      const std::string top = n.substr(0, n.find('.'));
      if (std::find(modules.begin(), modules.end(), top) == modules.end()) modules.push_back(top);
    }
    if (cfg_.quant)
      for (const std::string& m : modules)
        if (std::find(cfg_.quant->modules_to_not_convert.begin(),
                      cfg_.quant->modules_to_not_convert.end(),
                      m) == cfg_.quant->modules_to_not_convert.end())
          cfg_.quant->modules_to_not_convert.push_back(m);
  }
  if (cfg_.quant) {
    for (const std::string& m : not_converted_) cfg_.quant->modules_to_not_convert.push_back(m);
    // The loaders skip a module when any entry is a substring of its name: no entry may match a
    // linear written quantized.
    for (const std::string& n : quantized_names_)
      for (const std::string& m : cfg_.quant->modules_to_not_convert)
        AWQ_CHECK(n.find(m) == std::string::npos,
                  "writer: modules_to_not_convert entry '{}' would make loaders skip the "
                  "quantized linear '{}'",
                  m, n);
  }
  writer_.finish();
  write_text_file_atomic(dir_.path("config.json").string(), cfg_.to_json().dump(2) + "\n");
  for (const std::string& f : tokenizer_file_names()) {
    const fs::path src = fs::path(model_dir) / f;
    if (fs::is_regular_file(src))
      fs::copy_file(src, dir_.path(f), fs::copy_options::overwrite_existing);
  }
}

}  // namespace awq
