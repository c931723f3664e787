#include "quant/ggml_blocks.h"

#include <cmath>
#include <cstring>

#include "base/error.h"
#include "base/half.h"
#include "base/thread_pool.h"
#include "quant/quant_spec.h"

namespace awq {
namespace {

constexpr int64_t kBlock = 32;

void put_f16(uint8_t* p, uint16_t h) {
  p[0] = uint8_t(h & 0xff);
  p[1] = uint8_t(h >> 8);
}
uint16_t get_f16(const uint8_t* p) {
  return uint16_t(p[0] | (p[1] << 8));
}

const char* type_name(int type) {
  switch (type) {
    case kGgmlQ4_0:
      return "Q4_0";
    case kGgmlQ4_1:
      return "Q4_1";
    case kGgmlQ8_0:
      return "Q8_0";
    default:
      return "?";
  }
}

int64_t block_bytes(int type) {
  switch (type) {
    case kGgmlQ4_0:
      return 18;
    case kGgmlQ4_1:
      return 20;
    case kGgmlQ8_0:
      return 34;
    default:
      fail("ggml type {} is not one of Q4_0 (2), Q4_1 (3), Q8_0 (8)", type);
  }
}

void check_width(int type, int64_t out, int64_t in, const std::string& tensor) {
  AWQ_CHECK(out >= 0 && in > 0 && in % kBlock == 0,
            "tensor '{}': {} blocks hold 32 weights along the input dimension; width {} is not a "
            "multiple of 32",
            tensor, type_name(type), in);
}

// Codes of at most 4 bits (2- and 3-bit codes fit a nibble exactly) in groups of whole blocks;
// says which --group-size would work otherwise.
void check_q4(const QuantizedMatrix& q, int type, const std::string& tensor) {
  check_width(type, q.out, q.in, tensor);
  AWQ_CHECK(q.spec.bits >= 2 && q.spec.bits <= 4,
            "tensor '{}': {} holds 4-bit codes, the matrix has {}-bit codes", tensor,
            type_name(type), q.spec.bits);
  AWQ_CHECK(q.group > 0 && q.group % kBlock == 0,
            "tensor '{}': group size {} is not a multiple of ggml's 32-weight block, so {} cannot "
            "hold it exactly; quantize with --group-size {}",
            tensor, q.group, type_name(type),
            format_group_sizes(valid_group_sizes(q.in, kBlock), true));
  AWQ_CHECK(q.codes.size() == size_t(q.out * q.in) &&
                q.scales.size() == size_t(q.out * q.n_groups()) &&
                q.zeros.size() == q.scales.size(),
            "tensor '{}': inconsistent quantized matrix [{}, {}] with group {}", tensor, q.out,
            q.in, q.group);
}

uint16_t exact_f16(float s, const std::string& tensor, int64_t row, int64_t group) {
  const uint16_t h = f32_to_f16(s);
  AWQ_CHECK(f16_to_f32(h) == s, "tensor '{}': scale {} at (row {}, group {}) is not an f16 value",
            tensor, s, row, group);
  return h;
}

// Writes the 16 nibble pairs of one block of codes.
void pack_nibbles(const uint8_t* codes, uint8_t* qs) {
  for (int j = 0; j < 16; ++j) qs[j] = uint8_t((codes[j] & 0xF) | ((codes[j + 16] & 0xF) << 4));
}
void unpack_nibbles(const uint8_t* qs, uint8_t* codes) {
  for (int j = 0; j < 16; ++j) {
    codes[j] = qs[j] & 0xF;
    codes[j + 16] = qs[j] >> 4;
  }
}

// The largest group size (a multiple of 32 dividing `in`) over which every row's consecutive
// blocks share their (scale, zero); 32 always qualifies.
int merged_group(const QuantizedMatrix& q32) {
  const int64_t nb = q32.in / kBlock;
  std::vector<int64_t> sizes = valid_group_sizes(q32.in, kBlock);
  for (auto it = sizes.rbegin(); it != sizes.rend(); ++it) {
    const int64_t per = *it / kBlock;
    bool ok = true;
    for (int64_t o = 0; o < q32.out && ok; ++o) {
      for (int64_t b = 0; b < nb && ok; ++b) {
        const size_t i = size_t(o * nb + b), first = size_t(o * nb + b / per * per);
        ok = q32.scales[i] == q32.scales[first] && q32.zeros[i] == q32.zeros[first];
      }
    }
    if (ok) return int(*it);
  }
  return int(kBlock);
}

QuantizedMatrix regroup(const QuantizedMatrix& q32) {
  const int g = merged_group(q32);
  if (g == kBlock) return q32;
  QuantizedMatrix q = q32;
  q.group = g;
  q.spec.group_size = g;
  const int64_t nb = q32.in / kBlock, per = g / kBlock, ng = q32.in / g;
  q.scales.resize(size_t(q.out * ng));
  q.zeros.resize(size_t(q.out * ng));
  for (int64_t o = 0; o < q.out; ++o) {
    for (int64_t k = 0; k < ng; ++k) {
      q.scales[size_t(o * ng + k)] = q32.scales[size_t(o * nb + k * per)];
      q.zeros[size_t(o * ng + k)] = q32.zeros[size_t(o * nb + k * per)];
    }
  }
  return q;
}

QuantizedMatrix empty_q4(int64_t out, int64_t in, bool zero_point) {
  QuantizedMatrix q;
  q.out = out;
  q.in = in;
  q.spec.bits = 4;
  q.spec.group_size = int(kBlock);
  q.spec.zero_point = zero_point;
  q.group = int(kBlock);
  q.codes.resize(size_t(out * in));
  q.scales.resize(size_t(out * (in / kBlock)));
  q.zeros.resize(q.scales.size());
  return q;
}

}  // namespace

size_t ggml_tensor_bytes(int ggml_type, int64_t out, int64_t in) {
  const int64_t bb = block_bytes(ggml_type);
  check_width(ggml_type, out, in, "?");
  return size_t(out * (in / kBlock) * bb);
}

std::vector<uint8_t> to_ggml_q4_1(const QuantizedMatrix& q, const std::string& tensor) {
  check_q4(q, kGgmlQ4_1, tensor);
  const int64_t nb = q.in / kBlock, ng = q.n_groups();
  std::vector<uint8_t> out(ggml_tensor_bytes(kGgmlQ4_1, q.out, q.in));
  for (int64_t o = 0; o < q.out; ++o) {
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t g = b * kBlock / q.group;
      const float s = q.scales[size_t(o * ng + g)];
      const int z = q.zeros[size_t(o * ng + g)];
      uint8_t* blk = out.data() + (o * nb + b) * 20;
      put_f16(blk, exact_f16(s, tensor, o, g));
      put_f16(blk + 2, f32_to_f16(-float(z) * s));  // -z*s is exact in f32; f16 rounds it
      pack_nibbles(q.codes.data() + o * q.in + b * kBlock, blk + 4);
    }
  }
  return out;
}

std::vector<uint8_t> to_ggml_q4_0(const QuantizedMatrix& q, const std::string& tensor) {
  check_q4(q, kGgmlQ4_0, tensor);
  const int64_t nb = q.in / kBlock, ng = q.n_groups();
  std::vector<uint8_t> out(ggml_tensor_bytes(kGgmlQ4_0, q.out, q.in));
  for (int64_t o = 0; o < q.out; ++o) {
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t g = b * kBlock / q.group;
      const int z = q.zeros[size_t(o * ng + g)], half = 1 << (q.spec.bits - 1);
      AWQ_CHECK(z == half,
                "tensor '{}': Q4_0 has no zero point (it is x = d * (q - 8)), but group {} of row "
                "{} has zero {}; quantize symmetrically (zero_point = false) or use Q4_1",
                tensor, g, o, z);
      uint8_t* blk = out.data() + (o * nb + b) * 18;
      put_f16(blk, exact_f16(q.scales[size_t(o * ng + g)], tensor, o, g));
      // Symmetric codes are q + 2^(bits-1); Q4_0 stores q + 8.
      uint8_t codes[kBlock];
      for (int64_t j = 0; j < kBlock; ++j)
        codes[j] = uint8_t(q.codes[size_t(o * q.in + b * kBlock + j)] - half + 8);
      pack_nibbles(codes, blk + 2);
    }
  }
  return out;
}

std::vector<uint8_t> quantize_ggml_q8_0(const float* x, int64_t out, int64_t in,
                                        const std::string& tensor) {
  check_width(kGgmlQ8_0, out, in, tensor);
  const int64_t nb = in / kBlock;
  std::vector<uint8_t> dst(ggml_tensor_bytes(kGgmlQ8_0, out, in));
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t b = 0; b < nb; ++b) {
      const float* v = x + o * in + b * kBlock;
      float amax = 0.0f;
      for (int j = 0; j < kBlock; ++j) {
        AWQ_CHECK(std::isfinite(v[j]), "tensor '{}': value at (row {}, col {}) is {}", tensor, o,
                  b * kBlock + j, v[j]);
        const float a = std::fabs(v[j]);
        amax = amax > a ? amax : a;
      }
      const float d = amax / 127.0f;
      const float id = d != 0.0f ? 1.0f / d : 0.0f;
      uint8_t* blk = dst.data() + (o * nb + b) * 34;
      put_f16(blk, f32_to_f16(d));
      for (int j = 0; j < kBlock; ++j) {
        const int8_t qv = int8_t(std::round(v[j] * id));
        std::memcpy(blk + 2 + j, &qv, 1);
      }
    }
  }
  return dst;
}

void dequantize_ggml(int ggml_type, const uint8_t* blocks, int64_t out, int64_t in, float* dst) {
  const int64_t bb = block_bytes(ggml_type);
  check_width(ggml_type, out, in, "dequantize_ggml");
  const int64_t nb = in / kBlock;
  parallel_for(out, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t o = r0; o < r1; ++o) {
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = blocks + (o * nb + b) * bb;
        float* y = dst + o * in + b * kBlock;
        const float d = f16_to_f32(get_f16(blk));
        if (ggml_type == kGgmlQ8_0) {
          for (int j = 0; j < kBlock; ++j) {
            int8_t qv;
            std::memcpy(&qv, blk + 2 + j, 1);
            y[j] = float(qv) * d;
          }
        } else if (ggml_type == kGgmlQ4_0) {
          for (int j = 0; j < 16; ++j) {
            y[j] = float(int(blk[2 + j] & 0xF) - 8) * d;
            y[j + 16] = float(int(blk[2 + j] >> 4) - 8) * d;
          }
        } else {
          const float m = f16_to_f32(get_f16(blk + 2));
          for (int j = 0; j < 16; ++j) {
            y[j] = float(blk[4 + j] & 0xF) * d + m;
            y[j + 16] = float(blk[4 + j] >> 4) * d + m;
          }
        }
      }
    }
  });
}

QuantizedMatrix from_ggml_q4_0(const uint8_t* blocks, int64_t out, int64_t in,
                               const std::string& tensor) {
  check_width(kGgmlQ4_0, out, in, tensor);
  QuantizedMatrix q = empty_q4(out, in, false);
  const int64_t nb = in / kBlock;
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* blk = blocks + (o * nb + b) * 18;
      const float d = f16_to_f32(get_f16(blk));
      AWQ_CHECK(std::isfinite(d), "tensor '{}': Q4_0 block (row {}, block {}) has scale {}", tensor,
                o, b, d);
      q.scales[size_t(o * nb + b)] = d;
      q.zeros[size_t(o * nb + b)] = 8;
      unpack_nibbles(blk + 2, q.codes.data() + o * in + b * kBlock);
    }
  }
  return regroup(q);
}

QuantizedMatrix from_ggml_q4_1(const uint8_t* blocks, int64_t out, int64_t in,
                               const std::string& tensor) {
  check_width(kGgmlQ4_1, out, in, tensor);
  QuantizedMatrix q = empty_q4(out, in, true);
  const int64_t nb = in / kBlock;
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* blk = blocks + (o * nb + b) * 20;
      const float d = f16_to_f32(get_f16(blk)), m = f16_to_f32(get_f16(blk + 2));
      const float zf = d > 0.0f && std::isfinite(d) ? std::nearbyint(-m / d) : -1.0f;
      const bool ok = zf >= 0.0f && zf <= 15.0f && f16_to_f32(f32_to_f16(-zf * d)) == m;
      AWQ_CHECK(ok,
                "tensor '{}': Q4_1 block (row {}, block {}) has d = {}, m = {}: m is not -z*d for "
                "an integer zero z in [0, 15], so it was not written from AWQ codes and its codes "
                "cannot be recovered exactly",
                tensor, o, b, d, m);
      q.scales[size_t(o * nb + b)] = d;
      q.zeros[size_t(o * nb + b)] = uint8_t(zf);
      unpack_nibbles(blk + 4, q.codes.data() + o * in + b * kBlock);
    }
  }
  return regroup(q);
}

}  // namespace awq
