// llama2.c inputs: the checkpoint reader (header, shared classifier flag, sizes) and the
// tokenizer.bin reader with the tokenizer it generates (encode/decode).
#include <string>

#include "base/error.h"
#include "formats/llama2c.h"
#include "fuzz_input.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    (void)awq::read_llama2c(awq::fuzz::as_file(data, size, ".bin"));
  } catch (const awq::Error&) {
  }
  try {
    const auto g = awq::tokenizer_json_from_llama2c_bytes(
        std::string(reinterpret_cast<const char*>(data), size), "tokenizer.bin");
    const awq::Tokenizer tok =
        awq::Tokenizer::from_json(g.tokenizer_json, g.tokenizer_config_json, "", "tokenizer.bin");
    (void)tok.decode(tok.encode("Once upon a time", true));
  } catch (const awq::Error&) {
  }
  return 0;
}
