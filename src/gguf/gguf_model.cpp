#include "gguf/gguf_model.h"

#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/half.h"
#include "formats/checkpoint.h"
#include "formats/safetensors.h"
#include "gguf/gguf_vocab.h"
#include "gguf/llama_layout.h"
#include "kernels/w4.h"
#include "model/architecture.h"
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

ModelConfig config_from_gguf(const GgufFile& f) {
  const std::string arch = f.get_string("general.architecture");
  const std::string model_type = model_type_for_gguf_arch(arch, f.path());
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
  AWQ_CHECK(rot == head_dim,
            "{}: {}rope.dimension_count {} is not the head size {} (partial RoPE is not supported)",
            f.path(), a, rot, head_dim);
  if (const Value* st = f.find(a + "rope.scaling.type")) {
    AWQ_CHECK(st->as_string() && (*st->as_string() == "none" ||
                                  f.get_float(a + "rope.scaling.factor", 1.0) == 1.0),
              "{}: RoPE scaling ({}rope.scaling.*) is not supported", f.path(), a);
  }
  const GgufTensor& embd = f.tensor(kTokenEmbd);
  AWQ_CHECK(embd.ne.size() == 2 && embd.ne[0] == d,
            "{}: tensor '{}' has ne {}, expected [{}, vocab]", f.path(), kTokenEmbd, embd.ne_str(),
            d);
  const int64_t vocab = f.get_int(a + "vocab_size", embd.ne[1]);
  AWQ_CHECK(vocab == embd.ne[1], "{}: {}vocab_size {} but '{}' has {} rows", f.path(), a, vocab,
            kTokenEmbd, embd.ne[1]);
  nlohmann::json j = {{"model_type", model_type},
                      {"architectures", {find_architecture(model_type)->hf_class}},
                      {"hidden_size", d},
                      {"intermediate_size", f.get_int(a + "feed_forward_length")},
                      {"num_hidden_layers", f.get_int(a + "block_count")},
                      {"num_attention_heads", heads},
                      {"num_key_value_heads", kv_heads},
                      {"head_dim", head_dim},
                      {"vocab_size", vocab},
                      {"max_position_embeddings", f.get_int(a + "context_length", 2048)},
                      {"rms_norm_eps", f.get_float(a + "attention.layer_norm_rms_epsilon")},
                      {"rope_theta", f.get_float(a + "rope.freq_base", 10000.0)},
                      {"tie_word_embeddings", f.find_tensor(kOutput) == nullptr},
                      {"hidden_act", "silu"},
                      {"torch_dtype", "float16"}};
  // Llama with q/k/v biases (llama.cpp keeps them optional); o's bias follows attention_bias.
  if (model_type == "llama" && f.find_tensor(gguf_linear_tensor(0, LinearRole::Q, "bias")))
    j["attention_bias"] = true;
  if (f.find("tokenizer.ggml.bos_token_id"))
    j["bos_token_id"] = f.get_int("tokenizer.ggml.bos_token_id");
  if (f.find("tokenizer.ggml.eos_token_id"))
    j["eos_token_id"] = f.get_int("tokenizer.ggml.eos_token_id");
  return ModelConfig::from_json(j, f.path());
}

BlockWeights load_gguf_block(const GgufFile& f, const ModelConfig& cfg, int64_t layer,
                             const LoadOptions& opts, std::vector<std::string>* notes) {
  const std::string arch = f.get_string("general.architecture");
  const int64_t d = cfg.hidden_size;
  BlockWeights b;
  b.attn_norm = read_vector(f, gguf_block_tensor(layer, kAttnNorm), d);
  b.mlp_norm = read_vector(f, gguf_block_tensor(layer, kFfnNorm), d);
  for (LinearRole r : kAllLinearRoles) {
    const auto [out, in] = linear_shape(cfg, r);
    const std::string name = gguf_linear_tensor(layer, r);
    const GgufTensor& t = shaped(f, name, in, out);
    const auto unperm = unpermutation(cfg, arch, r);
    Linear& l = b[r];
    l.in = in;
    l.out = out;
    bool packed = false;
    if (opts.weights == WeightForm::W4 && (t.type == GgmlType::Q4_0 || t.type == GgmlType::Q4_1)) {
      try {
        QuantizedMatrix q = t.type == GgmlType::Q4_0
                                ? from_ggml_q4_0(t.data, out, in, f.path() + ": " + name)
                                : from_ggml_q4_1(t.data, out, in, f.path() + ": " + name);
        if (!unperm.empty()) q = permute_rows(q, unperm);
        l.w4 = pack_w4(q);
        l.w4a8 = opts.w4a8;
        packed = true;
      } catch (const Error& e) {
        if (notes)
          notes->push_back(
              fmt::format("{}: runs as f32, not on the 4-bit kernels: {}", name, e.what()));
      }
    } else if (opts.weights == WeightForm::W4 && notes) {
      notes->push_back(fmt::format("{}: {} runs as f32 (the 4-bit kernels take Q4_0/Q4_1)", name,
                                   ggml_type_name(t.type)));
    }
    if (!packed) {
      l.w = gguf_tensor_f32(t);
      if (!unperm.empty()) l.w = permute_rows(l.w, unperm);
    }
    const std::string bias = gguf_linear_tensor(layer, r, "bias");
    if (f.find_tensor(bias)) {
      l.bias = read_vector(f, bias, out);
      if (!unperm.empty()) l.bias = permute_rows(l.bias, unperm);
    } else {
      AWQ_CHECK(!linear_has_bias(cfg, r), "{}: tensor '{}' not found (the architecture has biases)",
                f.path(), bias);
    }
  }
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
  stage(arch.final_norm_name, shaped(f, kOutputNorm, d), {d});
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
  Model m = Model::from_blocks(std::move(ck), std::move(cfg), std::move(blocks));
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

}  // namespace awq::gguf
