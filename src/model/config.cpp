#include "model/config.h"

#include <filesystem>

#include "base/error.h"
#include "base/files.h"
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

ModelConfig ModelConfig::from_json(const json& j, const std::string& src) {
  AWQ_CHECK(j.is_object(), "{}: must be a JSON object", src);
  ModelConfig c;
  c.raw = j;
  AWQ_CHECK(j.contains("model_type") && j["model_type"].is_string(),
            "{}: missing string field 'model_type'", src);
  c.model_type = j["model_type"].get<std::string>();
  const Architecture* arch = find_architecture(c.model_type);
  AWQ_CHECK(arch != nullptr, "{}: unsupported model_type '{}' (supported: {})", src, c.model_type,
            supported_model_types());
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
  c.rms_norm_eps = get_float(j, "rms_norm_eps", src, 1e-6f);
  c.rope_theta = get_float(j, "rope_theta", src, 10000.0f);
  c.tie_word_embeddings = get_bool(j, "tie_word_embeddings", src, arch->default_tie_embeddings);
  c.attention_bias = arch->qkv_bias || get_bool(j, "attention_bias", src, false);
  c.o_bias = !arch->qkv_bias && get_bool(j, "attention_bias", src, false);
  c.mlp_bias = get_bool(j, "mlp_bias", src, false);
  if (j.contains("hidden_act")) {
    AWQ_CHECK(j["hidden_act"] == "silu", "{}: hidden_act {} is not supported (only silu)", src,
              j["hidden_act"].dump());
  }
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    fail("{}: rope_scaling {} is not supported yet", src, j["rope_scaling"].dump());
  }
  c.bos_token_id = token_id(j, "bos_token_id");
  c.eos_token_id = token_id(j, "eos_token_id");
  if (j.contains("torch_dtype") && j["torch_dtype"].is_string()) c.torch_dtype = j["torch_dtype"];
  if (j.contains("quantization_config") && !j["quantization_config"].is_null()) {
    const json& q = j["quantization_config"];
    const std::string method = q.value("quant_method", "");
    AWQ_CHECK(method == "awq",
              "{}: quantization_config.quant_method '{}' is not supported (only awq)", src, method);
    AwqQuantConfig a;
    a.bits = int(get_int(q, "bits", src + " quantization_config", 4));
    a.group_size = int(get_int(q, "group_size", src + " quantization_config", 128));
    a.zero_point = get_bool(q, "zero_point", src, true);
    a.version = q.value("version", "gemm");
    for (auto& c2 : a.version) c2 = char(std::tolower(c2));
    AWQ_CHECK(a.version == "gemm", "{}: AWQ version '{}' is not supported (only the GEMM layout)",
              src, a.version);
    if (q.contains("modules_to_not_convert") && q["modules_to_not_convert"].is_array())
      a.modules_to_not_convert = q["modules_to_not_convert"].get<std::vector<std::string>>();
    c.quant = a;
  }
  return c;
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

int64_t ModelConfig::parameter_count() const {
  const int64_t d = hidden_size, f = intermediate_size;
  int64_t per_layer = d * q_dim() + 2 * d * kv_dim() + q_dim() * d + 3 * d * f + 2 * d;
  if (attention_bias) per_layer += q_dim() + 2 * kv_dim();
  int64_t n = num_hidden_layers * per_layer + vocab_size * d + d;
  if (!tie_word_embeddings) n += vocab_size * d;
  return n;
}

json ModelConfig::to_json() const {
  json j = raw.is_object() ? raw : json::object();
  j["model_type"] = model_type;
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
  j["hidden_act"] = "silu";
  if (bos_token_id >= 0) j["bos_token_id"] = bos_token_id;
  if (eos_token_id >= 0) j["eos_token_id"] = eos_token_id;
  j["torch_dtype"] = torch_dtype;
  if (quant) {
    j["quantization_config"] = {
        {"quant_method", "awq"},
        {"bits", quant->bits},
        {"group_size", quant->group_size},
        {"zero_point", quant->zero_point},
        {"version", quant->version},
        {"modules_to_not_convert", quant->modules_to_not_convert.empty()
                                       ? json(nullptr)
                                       : json(quant->modules_to_not_convert)}};
  } else {
    j.erase("quantization_config");
  }
  return j;
}

}  // namespace awq
