#include "eval/tokenizer_loader.h"

#include <filesystem>

#include "base/error.h"

namespace awq {

Tokenizer load_model_tokenizer(const std::string& dir) {
  const auto path = std::filesystem::path(dir) / "tokenizer.json";
  AWQ_CHECK(std::filesystem::exists(path),
            "{}: missing tokenizer: no tokenizer.json in the model directory (evaluation and "
            "generation tokenize "
            "text with the model's own tokenizer; copy it from the original model)",
            dir);
  return Tokenizer::from_dir(dir);
}

}  // namespace awq
