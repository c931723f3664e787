#include "gguf/gguf_bench.h"

#include <memory>
#include <vector>

#include "base/error.h"
#include "gguf/gguf_model.h"

namespace awq::gguf {
BenchModel make_gguf_bench_model(const std::string& path, BenchForm form) {
  const GgufFile f(path);
  BenchModel m;
  m.cfg = config_from_gguf(f);
  m.form = form;
  const ModelConfig& cfg = m.cfg;
  const Architecture& arch = *find_architecture(cfg.model_type);
  const int64_t d = cfg.hidden_size, V = cfg.vocab_size;
  auto ck = staged_checkpoint(f, cfg, arch);
  const TensorInfo& e = ck->get(arch.embed_name, {V, d});
  m.embed = e.data;
  m.embed_dtype = e.dtype;
  m.final_norm = ck->read_vec(arch.final_norm_name, d);
  const TensorInfo& h = cfg.tie_word_embeddings ? e : ck->get(arch.lm_head_name, {V, d});
  m.lm_head = linear_in_place(h.data, h.dtype, V, d);
  LoadOptions lo;
  lo.weights = is_w4(form) ? WeightForm::W4 : WeightForm::F32;
  lo.w4a8 = form == BenchForm::W4A8;
  for (int64_t layer = 0; layer < cfg.num_hidden_layers; ++layer) {
    BlockWeights b = load_gguf_block(f, cfg, layer, lo, nullptr);
    if (form == BenchForm::F16) block_to_f16(b, m.storage);
    m.blocks.push_back(std::move(b));
  }
  m.storage.push_back(std::move(ck));
  return m;
}

void set_gguf_bench_source(BenchOptions& opts, const std::string& path) {
  opts.model_dir = path;
  opts.build_model_cfg = config_from_gguf(GgufFile(path));
  opts.build_model = [path](BenchForm form) { return make_gguf_bench_model(path, form); };
}

}  // namespace awq::gguf
