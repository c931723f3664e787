#include "tools/llama2c_convert.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/files.h"
#include "formats/checkpoint_writer.h"
#include "formats/llama2c.h"
#include "tokenizer/tokenizer.h"

namespace awq {

std::vector<float> permute_rows_for_rotate_half(const std::vector<float>& w, int64_t n_heads,
                                                int64_t head_dim, int64_t in) {
  AWQ_CHECK(head_dim % 2 == 0 && int64_t(w.size()) == n_heads * head_dim * in,
            "permute_rows_for_rotate_half: {} values are not [{} heads x {} x {}]", w.size(),
            n_heads, head_dim, in);
  std::vector<float> out(w.size());
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t c = 0; c < 2; ++c) {
        const float* src = w.data() + (h * head_dim + 2 * i + c) * in;
        std::copy(src, src + in, out.data() + (h * head_dim + c * half + i) * in);
      }
  return out;
}

void convert_llama2c(const std::string& model_bin, const std::string& tokenizer_bin,
                     const std::string& out_dir) {
  const Llama2cModel m = read_llama2c(model_bin);
  // Read the tokenizer before writing anything: a bad tokenizer.bin leaves no output behind.
  const GeneratedTokenizer tok = tokenizer_json_from_llama2c(tokenizer_bin);
  const int64_t d = m.dim, hd = m.hidden_dim, kv = m.kv_dim(), hs = m.head_size();

  StagedDir out(out_dir);
  {
    CheckpointWriter cw(out);
    auto slice = [](const std::vector<float>& all, int64_t layer, int64_t n) {
      return std::vector<float>(all.begin() + layer * n, all.begin() + (layer + 1) * n);
    };
    cw.add_f32_as("model.embed_tokens.weight", DType::F32, {m.vocab_size, d}, m.token_embedding);
    for (int64_t l = 0; l < m.n_layers; ++l) {
      const std::string p = fmt::format("model.layers.{}.", l);
      cw.add_f32_as(p + "input_layernorm.weight", DType::F32, {d}, slice(m.rms_att, l, d));
      cw.add_f32_as(p + "self_attn.q_proj.weight", DType::F32, {d, d},
                    permute_rows_for_rotate_half(slice(m.wq, l, d * d), m.n_heads, hs, d));
      cw.add_f32_as(p + "self_attn.k_proj.weight", DType::F32, {kv, d},
                    permute_rows_for_rotate_half(slice(m.wk, l, kv * d), m.n_kv_heads, hs, d));
      cw.add_f32_as(p + "self_attn.v_proj.weight", DType::F32, {kv, d}, slice(m.wv, l, kv * d));
      cw.add_f32_as(p + "self_attn.o_proj.weight", DType::F32, {d, d}, slice(m.wo, l, d * d));
      cw.add_f32_as(p + "post_attention_layernorm.weight", DType::F32, {d}, slice(m.rms_ffn, l, d));
      cw.add_f32_as(p + "mlp.gate_proj.weight", DType::F32, {hd, d}, slice(m.w1, l, hd * d));
      cw.add_f32_as(p + "mlp.down_proj.weight", DType::F32, {d, hd}, slice(m.w2, l, d * hd));
      cw.add_f32_as(p + "mlp.up_proj.weight", DType::F32, {hd, d}, slice(m.w3, l, hd * d));
    }
    cw.add_f32_as("model.norm.weight", DType::F32, {d}, m.rms_final);
    if (!m.shared_classifier)
      cw.add_f32_as("lm_head.weight", DType::F32, {m.vocab_size, d}, m.wcls);
    cw.finish();
  }
  const nlohmann::ordered_json cfg = {
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"hidden_size", d},
      {"intermediate_size", hd},
      {"num_hidden_layers", m.n_layers},
      {"num_attention_heads", m.n_heads},
      {"num_key_value_heads", m.n_kv_heads},
      {"head_dim", hs},
      {"vocab_size", m.vocab_size},
      {"max_position_embeddings", m.seq_len},
      {"rms_norm_eps", 1e-5},
      {"rope_theta", 10000.0},
      {"hidden_act", "silu"},
      {"tie_word_embeddings", m.shared_classifier},
      {"attention_bias", false},
      {"mlp_bias", false},
      {"bos_token_id", 1},
      {"eos_token_id", 2},
      {"torch_dtype", "float32"},
  };
  write_text_file_atomic(out.path("config.json").string(), cfg.dump(2) + "\n");
  write_text_file_atomic(out.path("tokenizer.json").string(), tok.tokenizer_json);
  write_text_file_atomic(out.path("tokenizer_config.json").string(), tok.tokenizer_config_json);
  out.commit();
}

}  // namespace awq
