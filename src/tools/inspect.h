// `awq inspect`: what a model directory holds — architecture, shapes, dtypes, parameter count,
// file sizes, quantization config — as text or JSON.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace awq {

nlohmann::json inspect_model(const std::string& path);
std::string format_inspection(const nlohmann::json& j);

// The lines a directory's and a GGUF file's inspection share (inspect_gguf.cpp): the
// architecture, the parameter counts (total, and active per token for MoE), and the features and
// dtypes, from the JSON both build.
std::string format_shape_lines(const nlohmann::json& j);
std::string format_feature_and_dtype_lines(const nlohmann::json& j);

}  // namespace awq
