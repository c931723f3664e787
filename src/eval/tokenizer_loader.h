// The tokenizer of a model directory, with an error that says what is missing and why it matters.
#pragma once
#include <string>

#include "tokenizer/tokenizer.h"

namespace awq {

// <dir>/tokenizer.json (and tokenizer_config.json when present). A directory without one is an
// awq::Error naming the directory and the file.
Tokenizer load_model_tokenizer(const std::string& dir);

}  // namespace awq
