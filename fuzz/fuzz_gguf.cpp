// The GGUF reader (header, metadata, tensor infos), then what awq builds from a GGUF file: the
// model config and the tokenizer (vocabulary, merges, special tokens), encoding a short text.
#include "base/error.h"
#include "fuzz_input.h"
#include "gguf/gguf_file.h"
#include "gguf/gguf_model.h"
#include "gguf/gguf_vocab.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const awq::gguf::GgufFile f(awq::fuzz::as_file(data, size, ".gguf"));
    try {
      (void)awq::gguf::config_from_gguf(f);
    } catch (const awq::Error&) {
    }
    const awq::Tokenizer tok = awq::gguf::tokenizer_from_gguf(f);
    const auto ids = tok.encode("Hello world, it's 2024!", true);
    (void)tok.decode(ids);
  } catch (const awq::Error&) {
  }
  return 0;
}
