#include "tools/inspect.h"

#include <fmt/format.h>

#include <filesystem>
#include <map>

#include "formats/checkpoint.h"
#include "model/architecture.h"
#include "model/config.h"

namespace awq {
namespace fs = std::filesystem;

namespace {}  // namespace

nlohmann::json inspect_model(const std::string& path) {
  nlohmann::json j;
  const ModelConfig cfg = ModelConfig::load(path);
  const Checkpoint ck = Checkpoint::open(path);
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
  if (cfg.is_moe()) j["active_parameters"] = cfg.active_parameter_count();
  j["features"] = cfg.features();
  std::map<std::string, int64_t> dtype_bytes, dtype_count;
  nlohmann::json tensors = nlohmann::json::array();
  for (const auto& name : ck.names()) {
    const TensorInfo& t = ck.get(name);
    dtype_bytes[std::string(dtype_name(t.dtype))] += int64_t(t.nbytes);
    dtype_count[std::string(dtype_name(t.dtype))]++;
    tensors.push_back({{"name", name}, {"dtype", dtype_name(t.dtype)}, {"shape", t.shape}});
  }
  j["tensors"] = tensors;
  for (const auto& [k, v] : dtype_bytes)
    j["dtypes"][k] = {{"tensors", dtype_count[k]}, {"bytes", v}};
  nlohmann::json files = nlohmann::json::array();
  for (const auto& f : ck.files())
    files.push_back({{"file", fs::path(f->path()).filename().string()}, {"bytes", f->file_size()}});
  j["files"] = files;
  j["total_file_bytes"] = ck.total_file_bytes();
  if (cfg.quant) {
    j["quantization"] = {{"method", "awq"},
                         {"bits", cfg.quant->bits},
                         {"group_size", cfg.quant->group_size},
                         {"zero_point", cfg.quant->zero_point},
                         {"version", cfg.quant->version}};
    j["bits_per_weight"] = double(ck.total_file_bytes()) * 8.0 / double(cfg.parameter_count());
  }
  return j;
}

std::string format_shape_lines(const nlohmann::json& j) {
  std::string s = fmt::format(
      "architecture {} ({} layers, hidden {}, intermediate {}, heads {}/{} kv, head_dim {}, vocab "
      "{}{})\n",
      j["model_type"].get<std::string>(), j["num_hidden_layers"].get<int64_t>(),
      j["hidden_size"].get<int64_t>(), j["intermediate_size"].get<int64_t>(),
      j["num_attention_heads"].get<int64_t>(), j["num_key_value_heads"].get<int64_t>(),
      j["head_dim"].get<int64_t>(), j["vocab_size"].get<int64_t>(),
      j["tie_word_embeddings"].get<bool>() ? ", tied embeddings" : "");
  s += fmt::format("parameters   {} ({:.3f} B)\n", j["parameters"].get<int64_t>(),
                   double(j["parameters"].get<int64_t>()) / 1e9);
  if (j.contains("active_parameters"))  // MoE: what one token's forward reads
    s +=
        fmt::format("active       {} ({:.3f} B) per token\n", j["active_parameters"].get<int64_t>(),
                    double(j["active_parameters"].get<int64_t>()) / 1e9);
  return s;
}

std::string format_feature_and_dtype_lines(const nlohmann::json& j) {
  std::string s;
  if (j.contains("features") && !j["features"].empty()) {
    std::string f;
    for (const auto& [k, v] : j["features"].items())
      f += (f.empty() ? "" : ", ") + k + " " + (v.is_string() ? v.get<std::string>() : v.dump());
    s += fmt::format("features     {}\n", f);
  }
  for (const auto& [k, v] : j["dtypes"].items())
    s += fmt::format("dtype        {:5} {:5} tensors {:10.2f} MiB\n", k,
                     v["tensors"].get<int64_t>(), double(v["bytes"].get<int64_t>()) / 1048576.0);
  return s;
}

std::string format_inspection(const nlohmann::json& j) {
  std::string s;
  s += fmt::format("model        {}\n", j["path"].get<std::string>());
  s += format_shape_lines(j);
  s += format_feature_and_dtype_lines(j);
  for (const auto& f : j["files"])
    s += fmt::format("file         {} ({:.2f} MiB)\n", f["file"].get<std::string>(),
                     f["bytes"].get<int64_t>() / 1048576.0);
  if (j.contains("quantization")) {
    const auto& q = j["quantization"];
    s += fmt::format(
        "quantization AWQ {}-bit, group {}, {}, {} layout ({:.2f} bits per parameter on disk)\n",
        q["bits"].get<int>(), q["group_size"].get<int>(),
        q["zero_point"].get<bool>() ? "zero point" : "symmetric", q["version"].get<std::string>(),
        j["bits_per_weight"].get<double>());
  } else {
    s += "quantization none\n";
  }
  return s;
}

}  // namespace awq
