#include "gguf/llama_layout.h"

#include <fmt/format.h>

#include <cstring>

#include "base/error.h"
#include "model/block.h"

namespace awq::gguf {

namespace {

std::vector<GgufArch> make_table() {
  std::vector<GgufArch> t;
  GgufArch llama{.name = "llama", .model_type = "llama", .permute_qk = true};
  t.push_back(llama);
  t.push_back(GgufArch{.name = "qwen2", .model_type = "qwen2"});
  t.push_back(GgufArch{
      .name = "qwen3", .model_type = "qwen3", .qk_norm = true, .known_at_c392e509 = false});
  t.push_back(GgufArch{
      .name = "gemma", .model_type = "gemma", .norm_offset = 1.0f, .output_is_embd = true});
  t.push_back(GgufArch{.name = "gemma2",
                       .model_type = "gemma2",
                       .post_norms = true,
                       .norm_offset = 1.0f,
                       .output_is_embd = true});
  t.push_back(GgufArch{.name = "gemma3",
                       .model_type = "gemma3_text",
                       .qk_norm = true,
                       .post_norms = true,
                       .norm_offset = 1.0f,
                       .output_is_embd = true,
                       .known_at_c392e509 = false});
  t.push_back(
      GgufArch{.name = "phi3", .model_type = "phi3", .fused = true, .output_required = true});
  // Mixtral is converted to "llama" with experts (its graph renormalizes the top-k weights).
  t.push_back(GgufArch{.name = "llama",
                       .model_type = "mixtral",
                       .permute_qk = true,
                       .moe = true,
                       .moe_renormalizes = true});
  // c392e509's qwen2moe loader requires output.weight (no tied fallback) and never
  // renormalizes; qwen3moe (added later) always does.
  t.push_back(GgufArch{.name = "qwen2moe",
                       .model_type = "qwen2_moe",
                       .output_required = true,
                       .moe = true,
                       .moe_expert_ffn_key = true,
                       .shared_expert = true});
  t.push_back(GgufArch{.name = "qwen3moe",
                       .model_type = "qwen3_moe",
                       .qk_norm = true,
                       .known_at_c392e509 = false,
                       .moe = true,
                       .moe_expert_ffn_key = true,
                       .moe_renormalizes = true});
  return t;
}

const std::vector<GgufArch>& table() {
  static const std::vector<GgufArch> t = make_table();
  return t;
}

}  // namespace

const GgufArch& gguf_arch_for(const std::string& model_type) {
  // Mistral is Llama's block; Gemma-3's multimodal checkpoints export their text model.
  const std::string mt = model_type == "mistral"  ? "llama"
                         : model_type == "gemma3" ? "gemma3_text"
                                                  : model_type;
  for (const auto& a : table())
    if (a.model_type == mt) return a;
  fail(
      "model_type '{}' has no GGUF export (supported: llama, mistral, qwen2, qwen3, gemma, gemma2, "
      "gemma3_text, phi3, mixtral, qwen2_moe, qwen3_moe)",
      model_type);
}

const GgufArch& gguf_arch_named(const std::string& arch, const std::string& file, bool experts) {
  for (const auto& a : table())
    if (a.name == arch && (a.name != "llama" || a.moe == experts)) return a;
  fail(
      "{}: general.architecture '{}' is not supported (awq.cpp runs llama (also with experts: "
      "Mixtral), qwen2, qwen3, gemma, gemma2, gemma3, phi3, qwen2moe and qwen3moe)",
      file, arch);
}

std::string gguf_arch_for_model_type(const std::string& model_type) {
  return gguf_arch_for(model_type).name;
}

std::string model_type_for_gguf_arch(const std::string& arch, const std::string& file) {
  return gguf_arch_named(arch, file).model_type;
}

bool gguf_arch_permutes_qk(const std::string& arch) {
  return arch == "llama";
}

GgufLinearSlot gguf_linear_slot(const GgufArch& a, const ModelConfig& c, int64_t layer,
                                LinearRole r) {
  const int64_t out = linear_shape(c, r).first;
  if (!a.fused) return {gguf_linear_tensor(layer, r), 0, out};
  switch (r) {
    case LinearRole::Q:
      return {gguf_block_tensor(layer, kAttnQkv), 0, c.q_dim() + 2 * c.kv_dim()};
    case LinearRole::K:
      return {gguf_block_tensor(layer, kAttnQkv), c.q_dim(), c.q_dim() + 2 * c.kv_dim()};
    case LinearRole::V:
      return {gguf_block_tensor(layer, kAttnQkv), c.q_dim() + c.kv_dim(),
              c.q_dim() + 2 * c.kv_dim()};
    case LinearRole::Gate:
      return {gguf_linear_tensor(layer, LinearRole::Up), 0, 2 * c.intermediate_size};
    case LinearRole::Up:
      return {gguf_linear_tensor(layer, LinearRole::Up), c.intermediate_size,
              2 * c.intermediate_size};
    default:
      return {gguf_linear_tensor(layer, r), 0, out};
  }
}

const char* gguf_linear_name(LinearRole r) {
  static const char* const names[] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                      "ffn_gate", "ffn_up", "ffn_down"};
  return names[int(r)];
}

std::string gguf_expert_name(LinearRole r, bool shared) {
  AWQ_CHECK(r == LinearRole::Gate || r == LinearRole::Up || r == LinearRole::Down,
            "an expert has gate, up and down projections only, not {}", linear_role_name(r));
  return std::string(gguf_linear_name(r)) + (shared ? "_shexp" : "_exps");
}

std::string gguf_block_tensor(int64_t layer, const std::string& what, const std::string& suffix) {
  return fmt::format("blk.{}.{}.{}", layer, what, suffix);
}

std::string gguf_linear_tensor(int64_t layer, LinearRole r, const std::string& suffix) {
  return gguf_block_tensor(layer, gguf_linear_name(r), suffix);
}

std::vector<int64_t> rope_row_permutation(int64_t rows, int64_t n_head) {
  AWQ_CHECK(n_head > 0 && rows % n_head == 0 && (rows / n_head) % 2 == 0,
            "RoPE permutation: {} rows are not {} heads of an even head size", rows, n_head);
  const int64_t hd = rows / n_head, half = hd / 2;
  std::vector<int64_t> perm(static_cast<size_t>(rows));
  for (int64_t h = 0; h < n_head; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t j = 0; j < 2; ++j) perm[size_t(h * hd + 2 * i + j)] = h * hd + j * half + i;
  return perm;
}

std::vector<int64_t> inverse_permutation(const std::vector<int64_t>& perm) {
  std::vector<int64_t> inv(perm.size());
  for (size_t r = 0; r < perm.size(); ++r) inv[size_t(perm[r])] = int64_t(r);
  return inv;
}

namespace {
template <typename T>
void move_rows(const T* src, T* dst, int64_t cols, const std::vector<int64_t>& perm) {
  for (size_t r = 0; r < perm.size(); ++r)
    std::memcpy(dst + int64_t(r) * cols, src + perm[r] * cols, size_t(cols) * sizeof(T));
}
}  // namespace

Mat permute_rows(const Mat& m, const std::vector<int64_t>& perm) {
  AWQ_CHECK(int64_t(perm.size()) == m.rows, "permute_rows: {} rows, permutation of {}", m.rows,
            perm.size());
  Mat out(m.rows, m.cols);
  move_rows(m.data.data(), out.data.data(), m.cols, perm);
  return out;
}

std::vector<float> permute_rows(const std::vector<float>& v, const std::vector<int64_t>& perm) {
  AWQ_CHECK(perm.size() == v.size(), "permute_rows: {} values, permutation of {}", v.size(),
            perm.size());
  std::vector<float> out(v.size());
  move_rows(v.data(), out.data(), 1, perm);
  return out;
}

QuantizedMatrix permute_rows(const QuantizedMatrix& q, const std::vector<int64_t>& perm) {
  AWQ_CHECK(int64_t(perm.size()) == q.out, "permute_rows: {} rows, permutation of {}", q.out,
            perm.size());
  QuantizedMatrix p = q;
  move_rows(q.codes.data(), p.codes.data(), q.in, perm);
  move_rows(q.scales.data(), p.scales.data(), q.n_groups(), perm);
  move_rows(q.zeros.data(), p.zeros.data(), q.n_groups(), perm);
  return p;
}

Mat slice_rows(const Mat& m, int64_t row0, int64_t n) {
  AWQ_CHECK(row0 >= 0 && row0 + n <= m.rows, "slice_rows: rows [{}, {}) of {}", row0, row0 + n,
            m.rows);
  if (row0 == 0 && n == m.rows) return m;
  Mat out(n, m.cols);
  std::memcpy(out.data.data(), m.row(row0), size_t(n * m.cols) * sizeof(float));
  return out;
}

QuantizedMatrix slice_rows(const QuantizedMatrix& q, int64_t row0, int64_t n) {
  AWQ_CHECK(row0 >= 0 && row0 + n <= q.out, "slice_rows: rows [{}, {}) of {}", row0, row0 + n,
            q.out);
  if (row0 == 0 && n == q.out) return q;
  QuantizedMatrix p;
  p.out = n;
  p.in = q.in;
  p.spec = q.spec;
  p.group = q.group;
  const int64_t g = q.n_groups();
  p.codes.assign(q.codes.begin() + row0 * q.in, q.codes.begin() + (row0 + n) * q.in);
  p.scales.assign(q.scales.begin() + row0 * g, q.scales.begin() + (row0 + n) * g);
  p.zeros.assign(q.zeros.begin() + row0 * g, q.zeros.begin() + (row0 + n) * g);
  return p;
}

}  // namespace awq::gguf
