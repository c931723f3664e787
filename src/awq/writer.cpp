#include "awq/writer.h"

#include <cstring>
#include <filesystem>

#include "base/error.h"
#include "base/half.h"
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

ModelWriter::ModelWriter(StagedDir& dir, const ModelConfig& cfg, const Architecture& arch,
                         bool autoawq, size_t max_shard_bytes)
    : dir_(dir), cfg_(cfg), arch_(arch), autoawq_(autoawq), writer_(dir, max_shard_bytes) {}

void ModelWriter::copy_as_f16(const Checkpoint& ck, const std::string& name) {
  const TensorInfo& t = ck.get(name);
  const int64_t n = t.numel();
  std::vector<uint8_t> bytes(size_t(n) * 2);
  if (t.dtype == DType::F16) {
    std::memcpy(bytes.data(), t.data, bytes.size());
  } else {
    // Convert in slices so a large embedding never exists as a whole in f32.
    constexpr int64_t kSlice = 1 << 20;
    std::vector<float> buf;
    const size_t esz = dtype_size(t.dtype);
    for (int64_t i = 0; i < n; i += kSlice) {
      const int64_t m = std::min(kSlice, n - i);
      buf.resize(size_t(m));
      convert_to_f32(t.dtype, t.data + size_t(i) * esz, m, buf.data());
      for (int64_t j = 0; j < m; ++j) {
        const uint16_t h = f32_to_f16(buf[size_t(j)]);
        std::memcpy(bytes.data() + size_t(i + j) * 2, &h, 2);
      }
    }
  }
  writer_.add(name, DType::F16, t.shape, std::move(bytes));
}

void ModelWriter::add_embeddings(const Checkpoint& ck) {
  copy_as_f16(ck, arch_.embed_name);
}

void ModelWriter::add_block(int64_t layer, const BlockWeights& w,
                            const std::vector<QuantizedMatrix>& q) {
  const int64_t d = cfg_.hidden_size;
  writer_.add_f32_as(arch_.norm_name(layer, NormRole::Attn), DType::F16, {d}, w.attn_norm);
  writer_.add_f32_as(arch_.norm_name(layer, NormRole::Mlp), DType::F16, {d}, w.mlp_norm);
  AWQ_CHECK(q.empty() || q.size() == size_t(kNumLinearRoles), "writer: {} quantized linears",
            q.size());
  for (LinearRole r : kAllLinearRoles) {
    const Linear& l = w[r];
    const std::string name = arch_.linear_name(layer, r);
    if (autoawq_) {
      AWQ_CHECK(!q.empty(), "writer: the AutoAWQ format needs quantized linears");
      const AwqGemmTensors t = pack_awq_gemm(q[size_t(r)], name);
      const int64_t K = t.K, N = t.N, G = t.group;
      writer_.add(name + ".qweight", DType::I32, {K, N / 8}, int32_bytes(t.qweight));
      writer_.add(name + ".qzeros", DType::I32, {K / G, N / 8}, int32_bytes(t.qzeros));
      writer_.add(name + ".scales", DType::F16, {K / G, N}, u16_bytes(t.scales_f16));
    } else if (!q.empty()) {
      const QuantizedMatrix& m = q[size_t(r)];
      std::vector<float> deq(size_t(m.out * m.in));
      m.dequantize(deq.data());
      writer_.add_f32_as(name + ".weight", DType::F16, {l.out, l.in}, deq);
    } else {
      writer_.add_f32_as(name + ".weight", DType::F16, {l.out, l.in}, l.w.data);
    }
    if (!l.bias.empty()) writer_.add_f32_as(name + ".bias", DType::F16, {l.out}, l.bias);
  }
}

void ModelWriter::finish(const Checkpoint& ck, const std::string& model_dir) {
  copy_as_f16(ck, arch_.final_norm_name);
  if (!cfg_.tie_word_embeddings) copy_as_f16(ck, arch_.lm_head_name);
  writer_.finish();
  write_text_file_atomic(dir_.path("config.json").string(), cfg_.to_json().dump(2) + "\n");
  for (const std::string& f : tokenizer_file_names()) {
    const fs::path src = fs::path(model_dir) / f;
    if (fs::is_regular_file(src))
      fs::copy_file(src, dir_.path(f), fs::copy_options::overwrite_existing);
  }
}

}  // namespace awq
