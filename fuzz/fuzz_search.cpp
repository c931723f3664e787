// --load-search files, checked against the header of `awq synth --shape tiny` quantized W4 g128
// (the seed corpus holds its search), as a quantize run would check them.
#include "awq/search_result.h"
#include "base/error.h"
#include "fuzz_input.h"
#include "model/architecture.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  awq::SearchHeader h;
  h.model_type = "llama";
  h.num_layers = 2;
  h.hidden_size = 128;
  h.intermediate_size = 384;
  h.group_size = 128;
  try {
    (void)awq::load_search(awq::fuzz::as_file(data, size, ".json"), h,
                           *awq::find_architecture("llama"));
  } catch (const awq::Error&) {
  }
  return 0;
}
