#include "gguf/llama_layout.h"

#include <fmt/format.h>

#include <cstring>

#include "base/error.h"

namespace awq::gguf {

std::string gguf_arch_for_model_type(const std::string& model_type) {
  if (model_type == "llama" || model_type == "mistral") return "llama";
  if (model_type == "qwen2") return "qwen2";
  fail("model_type '{}' has no GGUF export (supported: llama, mistral, qwen2)", model_type);
}

std::string model_type_for_gguf_arch(const std::string& arch, const std::string& file) {
  if (arch == "llama") return "llama";
  if (arch == "qwen2") return "qwen2";
  fail("{}: general.architecture '{}' is not supported (awq.cpp runs llama and qwen2)", file, arch);
}

bool gguf_arch_permutes_qk(const std::string& arch) {
  return arch == "llama";
}

const char* gguf_linear_name(LinearRole r) {
  static const char* const names[] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                      "ffn_gate", "ffn_up", "ffn_down"};
  return names[int(r)];
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

}  // namespace awq::gguf
