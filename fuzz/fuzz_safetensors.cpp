// The safetensors reader (header length, JSON header, dtypes, shapes, offsets), then every
// tensor's bytes read through the mapping as f32.
#include <vector>

#include "base/error.h"
#include "formats/dtype.h"
#include "formats/safetensors.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const awq::SafetensorsFile f(awq::fuzz::as_file(data, size, ".safetensors"));
    for (const auto& [name, t] : f.tensors()) {
      if (t.numel() > (1 << 16)) continue;  // the reader checked the range; keep inputs fast
      std::vector<float> v(size_t(t.numel()));
      awq::convert_to_f32(t.dtype, t.data, t.numel(), v.data());
    }
  } catch (const awq::Error&) {
  }
  return 0;
}
