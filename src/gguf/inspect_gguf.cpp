#include "gguf/inspect_gguf.h"

#include <fmt/format.h>

#include <filesystem>
#include <map>
#include <set>

#include "gguf/gguf_file.h"
#include "gguf/gguf_model.h"
#include "tools/inspect.h"

namespace awq::gguf {
namespace fs = std::filesystem;

namespace {

// A metadata value for display: scalars as themselves, arrays as their type and length.
nlohmann::json describe(const Value& v) {
  if (v.is_array()) return fmt::format("{} of {}", v.type_str(), v.size());
  if (const std::string* s = v.as_string())
    return s->size() <= 200 ? *s : s->substr(0, 200) + "...";
  if (v.type() == ValueType::Bool) return *v.as_bool();
  if (v.type() == ValueType::F32 || v.type() == ValueType::F64) return *v.as_float();
  if (auto i = v.as_int()) return *i;
  return v.type_str();
}

}  // namespace

nlohmann::json inspect_gguf(const std::string& path) {
  const GgufFile f(path);
  const ModelConfig cfg = config_from_gguf(f);
  nlohmann::json j;
  j["path"] = path;
  j["model_type"] = cfg.model_type;
  j["hidden_size"] = cfg.hidden_size;
  j["intermediate_size"] = cfg.intermediate_size;
  j["num_hidden_layers"] = cfg.num_hidden_layers;
  j["num_attention_heads"] = cfg.num_attention_heads;
  j["num_key_value_heads"] = cfg.num_key_value_heads;
  j["head_dim"] = cfg.head_dim;
  j["vocab_size"] = cfg.vocab_size;
  j["tie_word_embeddings"] = cfg.tie_word_embeddings;
  j["rope_theta"] = cfg.rope_theta;
  j["parameters"] = cfg.parameter_count();
  if (cfg.is_moe()) {
    j["active_parameters"] = cfg.active_parameter_count();
    // The experts as llama.cpp holds them: one stacked [E, out, in] tensor per projection.
    nlohmann::json e = {{"count", cfg.num_experts},
                        {"used", cfg.num_experts_per_tok},
                        {"intermediate", cfg.moe_intermediate_size},
                        {"renormalized", cfg.norm_topk_prob}};
    if (cfg.shared_expert_intermediate_size > 0)
      e["shared_intermediate"] = cfg.shared_expert_intermediate_size;
    std::set<std::string> types;
    for (const GgufTensor& t : f.tensors())
      if (t.name.ends_with("_exps.weight")) types.insert(ggml_type_name(t.type));
    e["types"] = types;
    j["experts"] = e;
  }
  j["features"] = cfg.features();
  std::map<std::string, int64_t> type_bytes, type_count;
  nlohmann::json tensors = nlohmann::json::array();
  int64_t elements = 0;
  for (const GgufTensor& t : f.tensors()) {
    type_bytes[ggml_type_name(t.type)] += int64_t(t.nbytes);
    type_count[ggml_type_name(t.type)]++;
    elements += t.numel();
    std::vector<int64_t> shape(t.ne.rbegin(), t.ne.rend());  // row-major, as Hugging Face writes it
    tensors.push_back(
        {{"name", t.name}, {"dtype", ggml_type_name(t.type)}, {"shape", shape}, {"ne", t.ne}});
  }
  j["tensors"] = tensors;
  for (const auto& [k, v] : type_bytes) j["dtypes"][k] = {{"tensors", type_count[k]}, {"bytes", v}};
  j["files"] = nlohmann::json::array(
      {{{"file", fs::path(path).filename().string()}, {"bytes", f.file_size()}}});
  j["total_file_bytes"] = f.file_size();
  j["bits_per_weight"] =
      elements > 0 ? double(f.file_size() - f.data_offset()) * 8.0 / double(elements) : 0.0;
  nlohmann::json meta = nlohmann::json::object();
  for (const auto& [k, v] : f.metadata()) meta[k] = describe(v);
  j["gguf"] = {{"version", f.version()},
               {"architecture", f.get_string("general.architecture")},
               {"file_type", f.get_int("general.file_type", -1)},
               {"alignment", f.alignment()},
               {"tokenizer", f.get_string("tokenizer.ggml.model", "")},
               {"pre_tokenizer", f.get_string("tokenizer.ggml.pre", "")},
               {"metadata", meta}};
  return j;
}

std::string format_gguf_inspection(const nlohmann::json& j) {
  const auto& g = j["gguf"];
  std::string s;
  s += fmt::format("model        {} (GGUF v{}, {} architecture, file type {})\n",
                   j["path"].get<std::string>(), g["version"].get<int>(),
                   g["architecture"].get<std::string>(), g["file_type"].get<int>());
  s += format_shape_lines(j);
  if (j.contains("experts")) {
    const auto& e = j["experts"];
    std::string types;
    for (const auto& t : e["types"]) types += (types.empty() ? "" : ", ") + t.get<std::string>();
    s += fmt::format(
        "experts      {} per layer, {} per token ({}renormalized), width {}{}; stacked in "
        "blk.N.ffn_{{gate,up,down}}_exps ({})\n",
        e["count"].get<int64_t>(), e["used"].get<int64_t>(),
        e["renormalized"].get<bool>() ? "" : "not ", e["intermediate"].get<int64_t>(),
        e.contains("shared_intermediate")
            ? fmt::format(", shared expert {}", e["shared_intermediate"].get<int64_t>())
            : "",
        types);
  }
  s += format_feature_and_dtype_lines(j);
  s += fmt::format("file         {:.2f} MiB, {:.2f} bits per weight\n",
                   double(j["total_file_bytes"].get<int64_t>()) / 1048576.0,
                   j["bits_per_weight"].get<double>());
  s += fmt::format("tokenizer    {} (pre {})\n", g["tokenizer"].get<std::string>(),
                   g["pre_tokenizer"].get<std::string>());
  return s;
}

}  // namespace awq::gguf
