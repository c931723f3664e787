#include "model/model.h"

#include <algorithm>
#include <cmath>

#include "base/error.h"
#include "base/thread_pool.h"

namespace awq {

LoadOptions parse_weight_form(const std::string& s) {
  LoadOptions o;
  if (s == "f32") {
    o.weights = WeightForm::F32;
  } else if (s == "native") {
    o.weights = WeightForm::Native;
  } else if (s == "w4") {
    o.weights = WeightForm::W4;
  } else if (s == "w4a8") {
    o = LoadOptions::fastest();
  } else {
    fail("unknown weight form '{}' (expected f32, native, w4 or w4a8)", s);
  }
  return o;
}

std::string weight_form_name(const LoadOptions& o) {
  switch (o.weights) {
    case WeightForm::F32:
      return "f32";
    case WeightForm::Native:
      return "native";
    case WeightForm::W4:
      return o.w4a8 ? "w4a8" : "w4";
  }
  return "?";
}

LoadOptions weight_form_for(const std::string& model_dir, const std::string& s) {
  if (s != "auto") return parse_weight_form(s);
  return ModelConfig::load(model_dir).quant ? LoadOptions::fastest() : LoadOptions{};
}

namespace {

bool is_float(DType t) {
  return t == DType::F32 || t == DType::F16 || t == DType::BF16;
}

}  // namespace

void Model::load_shared(const LoadOptions& opts) {
  arch_ = find_architecture(cfg_.model_type);
  AWQ_CHECK(arch_ != nullptr, "{}: unsupported model_type '{}' (supported: {})", dir_,
            cfg_.model_type, supported_model_types());
  const int64_t V = cfg_.vocab_size, d = cfg_.hidden_size;
  embed_ = &ck_->get(arch_->embed_name, {V, d});
  AWQ_CHECK(is_float(embed_->dtype), "{}: tensor '{}' has dtype {}, expected F32, F16 or BF16",
            embed_->file, arch_->embed_name, dtype_name(embed_->dtype));
  const TensorInfo& fn = ck_->get(arch_->final_norm_name, {d});
  AWQ_CHECK(is_float(fn.dtype), "{}: tensor '{}' has dtype {}, expected F32, F16 or BF16", fn.file,
            arch_->final_norm_name, dtype_name(fn.dtype));
  final_norm_ = ck_->read_vec(arch_->final_norm_name, d);
  for (float& v : final_norm_) v += arch_->norm_offset();  // Gemma's 1 + w
  // Tied embeddings: the lm_head reuses the embedding rows (a checkpoint may still carry a copy).
  const TensorInfo* head = embed_;
  if (!cfg_.tie_word_embeddings) {
    head = &ck_->get(arch_->lm_head_name, {V, d});
    AWQ_CHECK(is_float(head->dtype), "{}: tensor '{}' has dtype {}, expected F32, F16 or BF16",
              head->file, arch_->lm_head_name, dtype_name(head->dtype));
  }
  lm_head_ = linear_in_place(head->data, head->dtype, V, d);
  // Tied or not, the int8 copy is its own allocation: embed() keeps reading the float rows.
  if (opts.lm_head_q8) lm_head_ = to_q8(lm_head_, head->file + ": " + head->name);
}

Model Model::load(const std::string& dir) {
  return load(dir, weight_form_for(dir, "auto"));
}

Model Model::load(const std::string& dir, const LoadOptions& opts) {
  Model m;
  m.dir_ = dir;
  m.cfg_ = ModelConfig::load(dir);
  m.ck_ = std::make_shared<Checkpoint>(Checkpoint::open(dir));
  m.load_shared(opts);
  AWQ_CHECK(
      opts.weights != WeightForm::W4 || m.cfg_.quant.has_value(),
      "{}: --weights w4 needs an AWQ-quantized checkpoint (config.json has no quantization_config)",
      dir);
  m.blocks_.reserve(size_t(m.cfg_.num_hidden_layers));
  for (int64_t l = 0; l < m.cfg_.num_hidden_layers; ++l) {
    m.blocks_.push_back(load_block(*m.ck_, m.cfg_, *m.arch_, l, opts));
  }
  return m;
}

Model Model::from_blocks(std::shared_ptr<const Checkpoint> ck, ModelConfig cfg,
                         std::vector<BlockWeights> blocks, const LoadOptions& opts) {
  AWQ_CHECK(int64_t(blocks.size()) == cfg.num_hidden_layers,
            "Model::from_blocks: {} blocks, config has {}", blocks.size(), cfg.num_hidden_layers);
  Model m;
  m.dir_ = ck->dir();
  m.cfg_ = std::move(cfg);
  m.ck_ = std::move(ck);
  m.load_shared(opts);
  m.blocks_ = std::move(blocks);
  return m;
}

int64_t Model::weight_bytes() const {
  int64_t b = lm_head_.weight_bytes();
  for (const auto& blk : blocks_) {
    for (const auto& l : blk.lin) b += l.weight_bytes();
    b += moe_active_weight_bytes(cfg_, blk.moe);  // a sparse layer reads k experts per token
  }
  return b;
}

double Model::prefill_flops(int64_t n_seq, int64_t T) const {
  double linear_params = double(cfg_.vocab_size) * double(cfg_.hidden_size);
  for (const auto& blk : blocks_) {
    for (const auto& l : blk.lin) linear_params += double(l.in) * double(l.out);
    linear_params += moe_active_macs(cfg_, blk.moe);
  }
  // Causal attention: T(T+1)/2 query-key pairs per head, each a q·k and a p·v of head_dim MACs.
  const double attn =
      double(cfg_.num_hidden_layers) * 2.0 * double(T) * double(T + 1) * double(cfg_.q_dim());
  return double(n_seq) * (2.0 * double(T) * linear_params + attn);
}

void embed_rows(const TensorInfo& table, const ModelConfig& cfg, const int32_t* tokens, int64_t n,
                Mat& x, const std::string& what) {
  const int64_t d = cfg.hidden_size;
  x.resize(n, d);
  const size_t row_bytes = size_t(d) * dtype_size(table.dtype);
  for (int64_t i = 0; i < n; ++i) {
    const int32_t t = tokens[i];
    AWQ_CHECK(t >= 0 && t < cfg.vocab_size, "{}: token id {} is outside the vocabulary (0..{})",
              what, t, cfg.vocab_size - 1);
    convert_to_f32(table.dtype, table.data + size_t(t) * row_bytes, d, x.row(i));
    if (cfg.embed_scale != 0)
      for (int64_t j = 0; j < d; ++j) x.row(i)[j] *= cfg.embed_scale;
  }
}

void Model::embed(const int32_t* tokens, int64_t n, Mat& x) const {
  embed_rows(*embed_, cfg_, tokens, n, x, dir_);
}

Mat Model::logits(const Mat& hidden) const {
  Mat out;
  lm_head_.forward(hidden, out);
  if (cfg_.final_softcap > 0) {  // Gemma-2: logits c·tanh(l/c)
    const float c = cfg_.final_softcap;
    parallel_for(out.size(), 1 << 14, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i)
        out.data[size_t(i)] = c * std::tanh(out.data[size_t(i)] / c);
    });
  }
  return out;
}

Mat Model::hidden(const int32_t* tokens, int64_t n_seq, int64_t T) const {
  Mat x;
  embed(tokens, n_seq * T, x);
  for (const auto& b : blocks_) block_forward(cfg_, b, x, n_seq, T, x);
  rmsnorm(x, final_norm_, cfg_.rms_norm_eps, x);
  return x;
}

Mat Model::forward(const int32_t* tokens, int64_t n_seq, int64_t T) const {
  return logits(hidden(tokens, n_seq, T));
}

Model::Session::Session(const Model& m, int64_t capacity) : m_(&m), capacity_(capacity) {
  AWQ_CHECK(capacity > 0, "Session: capacity must be positive (got {})", capacity);
  cache_.resize(size_t(m.n_layers()));
  for (auto& c : cache_) c.resize(m.cfg_.num_key_value_heads, capacity, m.cfg_.head_dim);
}

int64_t Model::Session::cache_bytes() const {
  int64_t total = 0;
  for (const KvCache& c : cache_) total += c.bytes();
  return total;
}

std::vector<float> Model::Session::feed(std::span<const int32_t> tokens) {
  const int64_t n = int64_t(tokens.size());
  AWQ_CHECK(n > 0, "Session::feed: no tokens");
  AWQ_CHECK(pos_ + n <= capacity_,
            "context full: {} tokens so far + {} new exceed the session's {} positions", pos_, n,
            capacity_);
  Mat x;
  m_->embed(tokens.data(), n, x);
  for (size_t l = 0; l < cache_.size(); ++l)
    block_forward_cached(m_->cfg_, m_->blocks_[l], x, pos_, cache_[l], x);
  pos_ += n;
  Mat last(1, x.cols);
  rmsnorm_row(x.row(n - 1), m_->final_norm_.data(), x.cols, m_->cfg_.rms_norm_eps, last.row(0));
  Mat lg = m_->logits(last);
  return {lg.data.begin(), lg.data.end()};
}

}  // namespace awq
