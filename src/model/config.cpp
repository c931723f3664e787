#include "model/config.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "base/error.h"
#include "base/files.h"
#include "base/half.h"
#include "model/architecture.h"

namespace awq {
using json = nlohmann::json;

namespace {

int64_t get_int(const json& j, const char* key, const std::string& src,
                std::optional<int64_t> def = {}) {
  if (!j.contains(key) || j[key].is_null()) {
    AWQ_CHECK(def.has_value(), "{}: missing field '{}'", src, key);
    return *def;
  }
  AWQ_CHECK(j[key].is_number_integer(), "{}: field '{}' must be an integer, got {}", src, key,
            j[key].dump());
  return j[key].get<int64_t>();
}

// Sizes far above any released model (Llama-3.1-405B: 126 layers, hidden 16384, intermediate
// 53248; Gemma-3: vocabulary 262208; Qwen3-MoE: 128 experts): a larger value is a typo or a
// hostile file, and is rejected here, before anything sized by it is allocated.
void check_cap(const std::string& src, const char* key, int64_t value, int64_t cap) {
  AWQ_CHECK(value <= cap, "{}: {} = {} exceeds the limit {} (far above any released model)", src,
            key, value, cap);
}

float get_float(const json& j, const char* key, const std::string& src, float def) {
  if (!j.contains(key) || j[key].is_null()) return def;
  AWQ_CHECK(j[key].is_number(), "{}: field '{}' must be a number, got {}", src, key, j[key].dump());
  return j[key].get<float>();
}

bool get_bool(const json& j, const char* key, const std::string& src, bool def) {
  if (!j.contains(key) || j[key].is_null()) return def;
  AWQ_CHECK(j[key].is_boolean(), "{}: field '{}' must be true or false, got {}", src, key,
            j[key].dump());
  return j[key].get<bool>();
}

int32_t token_id(const json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return -1;
  if (j[key].is_number_integer()) return j[key].get<int32_t>();
  if (j[key].is_array() && !j[key].empty() && j[key][0].is_number_integer())
    return j[key][0].get<int32_t>();
  return -1;
}

}  // namespace

namespace {

// Hugging Face's config-class defaults for keys a config.json may omit. Only the Gemma-3
// multimodal text_config omits them in practice (save_pretrained writes non-defaults only there),
// so the whole Gemma3TextConfig default set is here; the others carry the feature keys whose
// absence would otherwise change the forward.
json family_defaults(const std::string& type) {
  if (type == "gemma2")
    return {{"head_dim", 256},
            {"query_pre_attn_scalar", 256},
            {"sliding_window", 4096},
            {"final_logit_softcapping", 30.0},
            {"attn_logit_softcapping", 50.0},
            {"hidden_activation", "gelu_pytorch_tanh"},
            {"rms_norm_eps", 1e-6},
            {"rope_theta", 10000.0}};
  if (type == "gemma3_text")
    return {{"vocab_size", 262208},
            {"hidden_size", 2304},
            {"intermediate_size", 9216},
            {"num_hidden_layers", 26},
            {"num_attention_heads", 8},
            {"num_key_value_heads", 4},
            {"head_dim", 256},
            {"hidden_activation", "gelu_pytorch_tanh"},
            {"max_position_embeddings", 131072},
            {"rms_norm_eps", 1e-6},
            {"rope_theta", 1000000.0},
            {"query_pre_attn_scalar", 256},
            {"sliding_window", 4096},
            {"sliding_window_pattern", 6},
            {"rope_local_base_freq", 10000.0},
            {"tie_word_embeddings", true}};
  if (type == "gemma")
    return {{"head_dim", 256}, {"hidden_act", "gelu_pytorch_tanh"}, {"rms_norm_eps", 1e-6}};
  if (type == "phi3") return {{"original_max_position_embeddings", 4096}, {"rms_norm_eps", 1e-5}};
  // The MoE config classes' defaults (transformers 4.52 configuration_{mixtral,qwen2_moe,
  // qwen3_moe}.py): a config.json that omits them gets these experts, not none.
  if (type == "mixtral")
    return {{"num_local_experts", 8},
            {"num_experts_per_tok", 2},
            {"rope_theta", 1e6},
            {"rms_norm_eps", 1e-5}};
  if (type == "qwen2_moe")
    return {{"num_experts", 60},
            {"num_experts_per_tok", 4},
            {"moe_intermediate_size", 1408},
            {"shared_expert_intermediate_size", 5632},
            {"norm_topk_prob", false},
            {"decoder_sparse_step", 1}};
  if (type == "qwen3_moe")
    return {{"num_experts", 128},
            {"num_experts_per_tok", 8},
            {"moe_intermediate_size", 768},
            {"norm_topk_prob", false},
            {"decoder_sparse_step", 1}};
  return json::object();
}

bool present(const json& j, const char* key) {
  return j.contains(key) && !j[key].is_null();
}

// sqrt(hidden) as the model's dtype holds it: HF multiplies the embeddings by a tensor of it in
// the activation dtype (families.md §3).
float rounded_sqrt(int64_t hidden, const std::string& dtype) {
  const float s = std::sqrt(float(hidden));
  if (dtype == "bfloat16") return bf16_to_f32(f32_to_bf16(s));
  if (dtype == "float16") return round_to_f16(s);
  return s;
}

void parse_features(const json& j, const Architecture& a, ModelConfig& c, const std::string& src) {
  // A key for a feature the family lacks: refuse rather than compute something else.
  auto refuse = [&](const char* key, bool supported) {
    AWQ_CHECK(supported || !present(j, key),
              "{}: '{}' is set ({}) but model_type '{}' has no such feature in awq's architecture "
              "table",
              src, key, j.contains(key) ? j[key].dump() : "", a.model_type);
  };
  refuse("attn_logit_softcapping", a.attn_softcap);
  refuse("final_logit_softcapping", a.final_softcap);
  refuse("query_pre_attn_scalar", a.query_pre_attn_scalar);
  refuse("rope_local_base_freq", a.local_rope);
  refuse("sliding_window_pattern", a.sliding == SlidingLayers::Pattern);
  refuse("layer_types", a.sliding == SlidingLayers::Pattern);
  if (a.sliding == SlidingLayers::None) refuse("sliding_window", false);
  if (!a.partial_rotary && present(j, "partial_rotary_factor"))
    AWQ_CHECK(j["partial_rotary_factor"] == 1 || j["partial_rotary_factor"] == 1.0,
              "{}: 'partial_rotary_factor' is {} but model_type '{}' rotates whole heads", src,
              j["partial_rotary_factor"].dump(), a.model_type);

  // Activation: the family's, named under its key (Gemma-1 configs say "gelu" in hidden_act for
  // the tanh approximation its checkpoints were trained with; families.md §3).
  c.activation = a.activation;
  const char* act_key = present(j, a.activation_key.c_str()) ? a.activation_key.c_str()
                        : present(j, "hidden_act")           ? "hidden_act"
                                                             : nullptr;
  if (act_key != nullptr) {
    const json& v = j[act_key];
    const bool ok = a.activation == Activation::Silu
                        ? v == "silu"
                        : (v == "gelu_pytorch_tanh" || v == "gelu_tanh" ||
                           (a.model_type == "gemma" && v == "gelu"));
    AWQ_CHECK(ok, "{}: {} {} is not supported for model_type '{}' (expected {})", src, act_key,
              v.dump(), a.model_type, activation_name(a.activation));
  }

  // Attention.
  c.attn_scale = float(1.0 / std::sqrt(double(c.head_dim)));
  if (a.query_pre_attn_scalar && present(j, "query_pre_attn_scalar")) {
    AWQ_CHECK(j["query_pre_attn_scalar"].is_number(),
              "{}: query_pre_attn_scalar must be a number, got {}", src,
              j["query_pre_attn_scalar"].dump());
    const double q = j["query_pre_attn_scalar"].get<double>();
    AWQ_CHECK(q > 0, "{}: query_pre_attn_scalar must be positive, got {}", src, q);
    c.attn_scale = float(1.0 / std::sqrt(q));
  }
  if (a.attn_softcap) c.attn_softcap = get_float(j, "attn_logit_softcapping", src, 0.0f);
  if (a.final_softcap) c.final_softcap = get_float(j, "final_logit_softcapping", src, 0.0f);
  AWQ_CHECK(c.attn_softcap >= 0 && c.final_softcap >= 0,
            "{}: soft-capping values must be positive or null", src);
  if (a.embed_scale) c.embed_scale = rounded_sqrt(c.hidden_size, c.torch_dtype);

  // RoPE.
  const double prf = a.partial_rotary ? get_float(j, "partial_rotary_factor", src, 1.0f) : 1.0;
  AWQ_CHECK(prf > 0 && prf <= 1, "{}: partial_rotary_factor must be in (0, 1], got {}", src, prf);
  c.rotary_dim = int64_t(double(c.head_dim) * prf);
  AWQ_CHECK(c.rotary_dim >= 2 && c.rotary_dim % 2 == 0,
            "{}: the rotary width head_dim x partial_rotary_factor = {} must be even", src,
            c.rotary_dim);
  if (a.partial_rotary)
    c.original_max_position_embeddings =
        get_int(j, "original_max_position_embeddings", src, c.max_position_embeddings);
  c.rope_scaling = RopeScaling::from_json(j.contains("rope_scaling") ? j["rope_scaling"] : json(),
                                          c.rotary_dim, c.original_max_position_embeddings, src);
  if (a.local_rope) c.rope_local_theta = get_float(j, "rope_local_base_freq", src, 10000.0f);

  // Sliding-window layers.
  c.layer_sliding.assign(size_t(c.num_hidden_layers), 0);
  c.sliding_window = present(j, "sliding_window") ? get_int(j, "sliding_window", src) : 0;
  AWQ_CHECK(c.sliding_window >= 0, "{}: sliding_window must be positive or null, got {}", src,
            c.sliding_window);
  if (a.sliding == SlidingLayers::FromLayer && !get_bool(j, "use_sliding_window", src, false))
    c.sliding_window = 0;
  const int64_t L = c.num_hidden_layers;
  for (int64_t l = 0; l < L; ++l) {
    bool s = false;
    switch (a.sliding) {
      case SlidingLayers::None:
        break;
      case SlidingLayers::All:
        s = true;
        break;
      case SlidingLayers::FromLayer:
        s = l >= get_int(j, "max_window_layers", src, L);
        break;
      case SlidingLayers::Even:
        s = l % 2 == 0;
        break;
      case SlidingLayers::Pattern:
        if (present(j, "layer_types")) {
          const json& t = j["layer_types"];
          AWQ_CHECK(t.is_array() && int64_t(t.size()) == L,
                    "{}: layer_types must list {} layers, got {}", src, L, t.dump());
          AWQ_CHECK(t[size_t(l)] == "sliding_attention" || t[size_t(l)] == "full_attention",
                    "{}: layer_types[{}] is {}, expected \"sliding_attention\" or "
                    "\"full_attention\"",
                    src, l, t[size_t(l)].dump());
          s = t[size_t(l)] == "sliding_attention";
        } else {
          const int64_t pattern =
              get_int(j, "sliding_window_pattern", src, a.default_sliding_window_pattern);
          AWQ_CHECK(pattern > 0, "{}: sliding_window_pattern must be positive", src);
          s = (l + 1) % pattern != 0;
        }
        break;
    }
    c.layer_sliding[size_t(l)] = s ? 1 : 0;
  }
}

// The sparse MoE keys (families.md §6). A key the family does not read (any of them on a dense
// family; Qwen's on Mixtral; Mixtral's expert count on Qwen) is refused: transformers would ignore
// it, and the user meant something by it.
void parse_moe(const json& j, const Architecture& a, ModelConfig& c, const std::string& src) {
  const MoeSpec& m = a.moe;
  const bool moe = a.is_moe();
  auto refuse = [&](const char* key, bool supported) {
    AWQ_CHECK(supported || !present(j, key),
              "{}: '{}' is set ({}) but model_type '{}' has no such key in awq's architecture "
              "table{}",
              src, key, j.contains(key) ? j[key].dump() : "", a.model_type,
              moe ? "" : " (it is not a mixture-of-experts family)");
  };
  refuse("num_local_experts", moe && m.experts_key == "num_local_experts");
  refuse("num_experts", moe && m.experts_key == "num_experts");
  refuse("num_experts_per_tok", moe);
  refuse("moe_intermediate_size", moe && m.dense_layers);
  refuse("shared_expert_intermediate_size", !m.shared_expert.empty());
  refuse("decoder_sparse_step", m.dense_layers);
  refuse("mlp_only_layers", m.dense_layers);
  // Mixtral always renormalizes: a norm_topk_prob false there would be ignored by transformers.
  if (!(moe && m.always_renormalize && present(j, "norm_topk_prob") && j["norm_topk_prob"] == true))
    refuse("norm_topk_prob", moe && !m.always_renormalize);
  if (!moe) return;
  // Qwen2/3-MoE's eager attention applies use_sliding_window to every layer through the mask but
  // its flash path only from max_window_layers: no single semantics to match.
  if (a.sliding == SlidingLayers::FromLayer)
    AWQ_CHECK(!get_bool(j, "use_sliding_window", src, false),
              "{}: use_sliding_window true is not supported for model_type '{}' (transformers "
              "applies it differently per attention implementation)",
              src, a.model_type);

  c.num_experts = get_int(j, m.experts_key.c_str(), src);
  c.num_experts_per_tok = get_int(j, "num_experts_per_tok", src);
  AWQ_CHECK(c.num_experts >= 0, "{}: {} must not be negative, got {}", src, m.experts_key,
            c.num_experts);
  if (c.num_experts == 0) return;  // Qwen: every layer dense
  AWQ_CHECK(c.num_experts_per_tok > 0 && c.num_experts_per_tok <= c.num_experts,
            "{}: num_experts_per_tok {} must be between 1 and {} {}", src, c.num_experts_per_tok,
            m.experts_key, c.num_experts);
  c.moe_intermediate_size =
      m.dense_layers ? get_int(j, "moe_intermediate_size", src) : c.intermediate_size;
  AWQ_CHECK(c.moe_intermediate_size > 0, "{}: moe_intermediate_size must be positive, got {}", src,
            c.moe_intermediate_size);
  check_cap(src, m.experts_key.c_str(), c.num_experts, 1 << 16);
  check_cap(src, "moe_intermediate_size", c.moe_intermediate_size, int64_t(1) << 20);
  if (!m.shared_expert.empty()) {
    c.shared_expert_intermediate_size = get_int(j, "shared_expert_intermediate_size", src);
    AWQ_CHECK(c.shared_expert_intermediate_size > 0,
              "{}: shared_expert_intermediate_size must be positive, got {}", src,
              c.shared_expert_intermediate_size);
    check_cap(src, "shared_expert_intermediate_size", c.shared_expert_intermediate_size,
              int64_t(1) << 20);
  }
  c.norm_topk_prob = m.always_renormalize || get_bool(j, "norm_topk_prob", src, false);
  if (m.dense_layers) {
    c.decoder_sparse_step = get_int(j, "decoder_sparse_step", src, 1);
    AWQ_CHECK(c.decoder_sparse_step > 0, "{}: decoder_sparse_step must be positive, got {}", src,
              c.decoder_sparse_step);
    if (present(j, "mlp_only_layers")) {
      const json& l = j["mlp_only_layers"];
      AWQ_CHECK(l.is_array(), "{}: mlp_only_layers must be a list of layer indices, got {}", src,
                l.dump());
      for (const json& v : l) {
        AWQ_CHECK(v.is_number_integer() && v.get<int64_t>() >= 0,
                  "{}: mlp_only_layers must hold layer indices, got {}", src, l.dump());
        c.mlp_only_layers.push_back(v.get<int64_t>());  // indices past the last layer: no effect
      }
    }
  }
}

}  // namespace

namespace {

ModelConfig parse_config(const json& outer, const std::string& src_file) {
  AWQ_CHECK(outer.is_object(), "{}: must be a JSON object", src_file);
  ModelConfig c;
  c.raw = outer;
  AWQ_CHECK(outer.contains("model_type") && outer["model_type"].is_string(),
            "{}: missing string field 'model_type'", src_file);
  c.model_type = outer["model_type"].get<std::string>();
  // Gemma-3 multimodal: the text model's settings are under text_config.
  std::string src = src_file;
  json j = outer;
  if (c.model_type == "gemma3") {
    AWQ_CHECK(outer.contains("text_config") && outer["text_config"].is_object(),
              "{}: model_type 'gemma3' (Gemma3ForConditionalGeneration) needs a 'text_config' "
              "object with the language model's settings",
              src_file);
    j = outer["text_config"];
    src = src_file + " text_config";
    c.multimodal = true;
    for (const char* k : {"torch_dtype", "bos_token_id", "eos_token_id", "quantization_config"})
      if (!j.contains(k) && outer.contains(k)) j[k] = outer[k];
  }
  const Architecture* arch = find_architecture(c.model_type);
  AWQ_CHECK(arch != nullptr, "{}: unsupported model_type '{}' (supported: {})", src_file,
            c.model_type, supported_model_types());
  json defaults = family_defaults(c.multimodal ? "gemma3_text" : c.model_type);
  defaults.update(j);
  j = std::move(defaults);
  c.hidden_size = get_int(j, "hidden_size", src);
  c.intermediate_size = get_int(j, "intermediate_size", src);
  c.num_hidden_layers = get_int(j, "num_hidden_layers", src);
  c.num_attention_heads = get_int(j, "num_attention_heads", src);
  c.num_key_value_heads = get_int(j, "num_key_value_heads", src, c.num_attention_heads);
  c.vocab_size = get_int(j, "vocab_size", src);
  c.max_position_embeddings = get_int(j, "max_position_embeddings", src, 2048);
  AWQ_CHECK(c.hidden_size > 0 && c.intermediate_size > 0 && c.num_hidden_layers > 0 &&
                c.num_attention_heads > 0 && c.num_key_value_heads > 0 && c.vocab_size > 0,
            "{}: hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, "
            "num_key_value_heads and "
            "vocab_size must be positive",
            src);
  AWQ_CHECK(c.num_attention_heads % c.num_key_value_heads == 0,
            "{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", src,
            c.num_attention_heads, c.num_key_value_heads);
  const int64_t default_hd =
      c.hidden_size % c.num_attention_heads == 0 ? c.hidden_size / c.num_attention_heads : -1;
  c.head_dim = get_int(j, "head_dim", src, default_hd);
  AWQ_CHECK(c.head_dim > 0 && c.head_dim % 2 == 0,
            "{}: head_dim must be a positive even number (got {})", src, c.head_dim);
  check_cap(src, "num_hidden_layers", c.num_hidden_layers, 4096);
  check_cap(src, "hidden_size", c.hidden_size, int64_t(1) << 18);
  check_cap(src, "intermediate_size", c.intermediate_size, int64_t(1) << 20);
  check_cap(src, "num_attention_heads", c.num_attention_heads, 8192);
  check_cap(src, "head_dim", c.head_dim, 8192);
  check_cap(src, "vocab_size", c.vocab_size, int64_t(1) << 24);
  check_cap(src, "max_position_embeddings", c.max_position_embeddings, int64_t(1) << 30);
  c.rms_norm_eps = get_float(j, "rms_norm_eps", src, 1e-6f);
  c.rope_theta = get_float(j, "rope_theta", src, 10000.0f);
  c.tie_word_embeddings = get_bool(j, "tie_word_embeddings", src, arch->default_tie_embeddings);
  if (c.multimodal) c.tie_word_embeddings = get_bool(outer, "tie_word_embeddings", src_file, true);
  c.attention_bias = arch->qkv_bias || get_bool(j, "attention_bias", src, false);
  c.o_bias = !arch->qkv_bias && get_bool(j, "attention_bias", src, false);
  c.mlp_bias = get_bool(j, "mlp_bias", src, false);
  c.bos_token_id = token_id(j, "bos_token_id");
  c.eos_token_id = token_id(j, "eos_token_id");
  if (j.contains("torch_dtype") && j["torch_dtype"].is_string()) c.torch_dtype = j["torch_dtype"];
  if (arch->head_dim_from_hidden)
    AWQ_CHECK(c.head_dim == default_hd,
              "{}: head_dim {} is not hidden_size / num_attention_heads = {}, which model_type "
              "'{}' always uses",
              src, c.head_dim, default_hd, c.model_type);
  parse_features(j, *arch, c, src);
  parse_moe(j, *arch, c, src);
  if (j.contains("quantization_config") && !j["quantization_config"].is_null()) {
    const json& q = j["quantization_config"];
    const std::string qsrc = src + " quantization_config";
    AWQ_CHECK(q.is_object(), "{}: must be an object, got {}", qsrc, q.dump());
    const auto text = [&](const char* key, const char* def) {
      if (!q.contains(key) || q[key].is_null()) return std::string(def);
      AWQ_CHECK(q[key].is_string(), "{}: '{}' must be a string, got {}", qsrc, key, q[key].dump());
      return q[key].get<std::string>();
    };
    const std::string method = text("quant_method", "");
    AWQ_CHECK(method == "awq",
              "{}: quantization_config.quant_method '{}' is not supported (only awq)", src, method);
    AwqQuantConfig a;
    const int64_t bits = get_int(q, "bits", qsrc, 4), group = get_int(q, "group_size", qsrc, 128);
    AWQ_CHECK(bits >= 1 && bits <= 8 && group >= -1 && group <= (int64_t(1) << 20),
              "{}: bits {} or group_size {} out of range", qsrc, bits, group);
    a.bits = int(bits);
    a.group_size = int(group);
    a.zero_point = get_bool(q, "zero_point", qsrc, true);
    a.version = text("version", "gemm");
    for (auto& c2 : a.version) c2 = char(std::tolower(c2));
    AWQ_CHECK(a.version == "gemm", "{}: AWQ version '{}' is not supported (only the GEMM layout)",
              src, a.version);
    if (q.contains("modules_to_not_convert") && q["modules_to_not_convert"].is_array()) {
      for (const json& m : q["modules_to_not_convert"]) {
        AWQ_CHECK(m.is_string(), "{}: modules_to_not_convert holds {}, not a module name", qsrc,
                  m.dump());
        a.modules_to_not_convert.push_back(m.get<std::string>());
      }
    }
    c.quant = a;
  }
  return c;
}

}  // namespace

ModelConfig ModelConfig::from_json(const json& outer, const std::string& src_file) {
  // Every field is type-checked where it is read; a JSON type error escaping a check that was
  // missed is still a message naming the file, not an internal error.
  try {
    return parse_config(outer, src_file);
  } catch (const json::exception& e) {
    fail("{}: a field has an unexpected type or value: {}", src_file, e.what());
  }
}

const Architecture& ModelConfig::arch() const {
  const Architecture* a = find_architecture(model_type);
  AWQ_CHECK(a != nullptr, "unsupported model_type '{}' (supported: {})", model_type,
            supported_model_types());
  return *a;
}

int64_t ModelConfig::window(int64_t layer) const {
  return size_t(layer) < layer_sliding.size() && layer_sliding[size_t(layer)] ? sliding_window : 0;
}

json ModelConfig::features() const {
  json f = json::object();
  const Architecture& a = arch();
  if (a.norm == NormKind::OneOffset) f["norm"] = "1 + w";
  if (a.has_qk_norm()) f["qk_norm"] = true;
  if (a.has_post_norms()) f["post_norms"] = true;
  if (a.fused_qkv() || a.fused_gate_up()) f["fused"] = "qkv_proj, gate_up_proj";
  if (rotary_dim != head_dim) f["rotary_dim"] = rotary_dim;
  if (!rope_scaling.is_default()) f["rope_scaling"] = rope_scaling.to_json();
  int64_t sliding = 0;
  for (auto v : layer_sliding) sliding += v != 0;
  if (sliding_window > 0 && sliding > 0)
    f["sliding_window"] = {{"window", sliding_window}, {"layers", sliding}};
  if (a.local_rope && sliding > 0) f["rope_local_theta"] = rope_local_theta;
  if (attn_softcap > 0) f["attn_softcap"] = attn_softcap;
  if (final_softcap > 0) f["final_softcap"] = final_softcap;
  if (a.query_pre_attn_scalar) f["attn_scale"] = attn_scale;
  if (embed_scale > 0) f["embed_scale"] = embed_scale;
  if (activation != Activation::Silu) f["activation"] = activation_name(activation);
  if (is_moe()) {
    int64_t sparse = 0;
    for (int64_t l = 0; l < num_hidden_layers; ++l) sparse += is_moe_layer(l);
    json m = {{"experts", num_experts},
              {"top_k", num_experts_per_tok},
              {"norm_topk_prob", norm_topk_prob},
              {"expert_intermediate", moe_intermediate_size},
              {"sparse_layers", sparse}};
    if (shared_expert_intermediate_size > 0)
      m["shared_expert_intermediate"] = shared_expert_intermediate_size;
    f["moe"] = m;
  }
  return f;
}

RopeSpec ModelConfig::rope(int64_t layer) const {
  RopeSpec s;
  s.rotary_dim = rotary_dim > 0 ? rotary_dim : head_dim;
  s.theta = rope_theta;
  s.max_position_embeddings = max_position_embeddings;
  s.scaling = rope_scaling;
  // Gemma-3's local layers: their own base, no scaling.
  const bool local = size_t(layer) < layer_sliding.size() && layer_sliding[size_t(layer)];
  if (local && arch().local_rope) {
    s.theta = rope_local_theta;
    s.scaling = RopeScaling{};
  }
  return s;
}

ModelConfig ModelConfig::load(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / "config.json").string();
  AWQ_CHECK(std::filesystem::exists(path),
            "{}: no config.json (is this a Hugging Face model directory?)", dir);
  json j;
  try {
    j = json::parse(read_text_file(path));
  } catch (const json::exception& e) {
    fail("{}: invalid JSON: {}", path, e.what());
  }
  return from_json(j, path);
}

bool ModelConfig::is_moe_layer(int64_t layer) const {
  if (num_experts <= 0) return false;
  if (std::find(mlp_only_layers.begin(), mlp_only_layers.end(), layer) != mlp_only_layers.end())
    return false;
  return (layer + 1) % decoder_sparse_step == 0;
}

namespace {

// Parameters of the model with `experts` routed experts counted per sparse layer.
int64_t count_parameters(const ModelConfig& c, int64_t experts) {
  const int64_t d = c.hidden_size;
  int64_t attn = d * c.q_dim() + 2 * d * c.kv_dim() + c.q_dim() * d + 2 * d;
  if (c.attention_bias) attn += c.q_dim() + 2 * c.kv_dim();
  if (c.arch().has_qk_norm()) attn += 2 * c.head_dim;
  if (c.arch().has_post_norms()) attn += 2 * d;
  const int64_t dense = 3 * d * c.intermediate_size;
  int64_t sparse = d * c.num_experts + experts * 3 * d * c.moe_intermediate_size;
  if (c.shared_expert_intermediate_size > 0)
    sparse += 3 * d * c.shared_expert_intermediate_size + d;
  int64_t n = c.vocab_size * d + d;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    n += attn + (c.is_moe_layer(l) ? sparse : dense);
  if (!c.tie_word_embeddings) n += c.vocab_size * d;
  return n;
}

}  // namespace

int64_t ModelConfig::parameter_count() const {
  return count_parameters(*this, num_experts);
}

int64_t ModelConfig::active_parameter_count() const {
  return count_parameters(*this, num_experts_per_tok);
}

json ModelConfig::to_json() const {
  json out = raw.is_object() ? raw : json::object();
  // The text model's settings live in text_config for Gemma-3 multimodal; the quantization
  // config and torch_dtype stay at the top, where transformers and vLLM read them.
  json& j = multimodal ? out["text_config"] : out;
  const Architecture& a = arch();
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["num_key_value_heads"] = num_key_value_heads;
  j["head_dim"] = head_dim;
  j["vocab_size"] = vocab_size;
  j["max_position_embeddings"] = max_position_embeddings;
  j["rms_norm_eps"] = rms_norm_eps;
  j["rope_theta"] = rope_theta;
  j["tie_word_embeddings"] = tie_word_embeddings;
  j[a.activation_key] = activation_name(activation);
  // rope_scaling as the source wrote it (Phi-3's validator accepts only its own three keys).
  if (!j.contains("rope_scaling") && !rope_scaling.is_default())
    j["rope_scaling"] = rope_scaling.to_json();
  out["model_type"] = model_type;
  if (multimodal) out["tie_word_embeddings"] = tie_word_embeddings;
  if (bos_token_id >= 0) out["bos_token_id"] = bos_token_id;
  if (eos_token_id >= 0 && !(out.contains("eos_token_id") && out["eos_token_id"].is_array()))
    out["eos_token_id"] = eos_token_id;
  out["torch_dtype"] = torch_dtype;
  if (quant) {
    out["quantization_config"] = {
        {"quant_method", "awq"},
        {"bits", quant->bits},
        {"group_size", quant->group_size},
        {"zero_point", quant->zero_point},
        {"version", quant->version},
        {"modules_to_not_convert", quant->modules_to_not_convert.empty()
                                       ? json(nullptr)
                                       : json(quant->modules_to_not_convert)}};
  } else {
    out.erase("quantization_config");
    if (multimodal) j.erase("quantization_config");
  }
  return out;
}

}  // namespace awq
