#include "quant/quantized_matrix.h"

#include "base/thread_pool.h"

namespace awq {

void QuantizedMatrix::dequantize(float* w_out) const {
  const int64_t ng = n_groups();
  parallel_for(out, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t o = r0; o < r1; ++o) {
      const uint8_t* c = codes.data() + o * in;
      float* dst = w_out + o * in;
      for (int64_t g = 0; g < ng; ++g) {
        const float s = scales[size_t(o * ng + g)];
        const int z = zeros[size_t(o * ng + g)];
        for (int64_t i = g * group; i < (g + 1) * group; ++i) dst[i] = float(int(c[i]) - z) * s;
      }
    }
  });
}

}  // namespace awq
