// `awq inspect`: what a model directory holds — architecture, shapes, dtypes, parameter count,
// file sizes, quantization config — as text or JSON.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace awq {

nlohmann::json inspect_model(const std::string& path);
std::string format_inspection(const nlohmann::json& j);

}  // namespace awq
