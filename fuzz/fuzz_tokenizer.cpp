// tokenizer.json (+ tokenizer_config.json): the input is "TOKENIZER_JSON\0CONFIG_JSON\0TEXT";
// a tokenizer that loads then encodes and decodes the text.
#include <string>
#include <string_view>

#include "base/error.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t a = in.find('\0');
  const size_t b = a == std::string_view::npos ? a : in.find('\0', a + 1);
  const std::string tok_json(in.substr(0, a));
  const std::string cfg_json(a == std::string_view::npos ? std::string_view()
                                                         : in.substr(a + 1, b - a - 1));
  const std::string_view text = b == std::string_view::npos ? "Hello world" : in.substr(b + 1);
  try {
    const awq::Tokenizer tok = awq::Tokenizer::from_json(tok_json, cfg_json, "", "fuzz");
    const auto ids = tok.encode(text, true);
    (void)tok.decode(ids);
    (void)tok.decode(ids, true);
  } catch (const awq::Error&) {
  }
  return 0;
}
