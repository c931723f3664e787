// config.json: every family's fields, rope scaling, MoE, quantization_config, nested text_config.
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "model/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const nlohmann::json j = nlohmann::json::parse(data, data + size, nullptr, false);
  if (j.is_discarded()) return 0;  // not JSON: the loader's parse error is tested elsewhere
  try {
    (void)awq::ModelConfig::from_json(j, "config.json");
  } catch (const awq::Error&) {
  }
  return 0;
}
