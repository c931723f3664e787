// `awq inspect` for a GGUF file: the same fields as inspect_model() gives for a directory
// (model_type, shapes, parameters, per-type tensor counts and bytes, files), plus the GGUF header
// (version, architecture, file type, alignment, tokenizer) and every metadata key.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace awq::gguf {

nlohmann::json inspect_gguf(const std::string& path);
std::string format_gguf_inspection(const nlohmann::json& j);

}  // namespace awq::gguf
