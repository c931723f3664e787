// stories260K converted once per test binary into a scratch directory (tests call
// AWQ_REQUIRE_DATA first).
#pragma once
#include <string>

#include "test_util.h"
#include "tools/llama2c_convert.h"

namespace awq::test {

inline const char* kStoriesBin = "models/stories260K/stories260K.bin";
inline const char* kStoriesTok = "models/stories260K/tok512.bin";

inline const std::string& stories_hf_dir() {
  static const std::string dir = [] {
    const std::string d = (scratch_dir("stories260K_hf") / "model").string();
    convert_llama2c(data_path(kStoriesBin), data_path(kStoriesTok), d);
    return d;
  }();
  return dir;
}

}  // namespace awq::test
