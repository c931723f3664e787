// QuantSpec: how a weight is quantized (bits, group size along the input dimension, zero point).
// The defaults are AutoAWQ's (awq-spec §2): 4 bits, groups of 128, asymmetric.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace awq {

struct QuantSpec {
  int bits = 4;
  int group_size = 128;  // -1: one group per row (the whole input dimension)
  bool zero_point = true;
  // Round each group's scale to f16 before the codes are chosen (the AutoAWQ GEMM layout stores
  // f16 scales, so the written file then dequantizes to exactly the weights that were scored).
  // false: f32 scales, the arithmetic of the reference runs (fake-quant output has no stored
  // scales).
  bool f16_scales = true;

  // The group length for a row of `in` inputs: group_size, or `in` when group_size is -1.
  int group_for(int64_t in) const;

  // Throws awq::Error naming `tensor` unless bits is in 2..8 and the group size is -1 or a
  // positive divisor of `in`; the message lists the group sizes that would work.
  void validate(int64_t in, const std::string& tensor) const;
};

// The group sizes usable for a row of `in` inputs that are multiples of `multiple` (ascending),
// e.g. valid_group_sizes(5632, 8) = {8, 16, 32, ..., 5632}. Used in error messages.
std::vector<int64_t> valid_group_sizes(int64_t in, int64_t multiple);

// "8, 16, 32 or -1": the list above, formatted for a message (with -1 when `with_whole_row`).
std::string format_group_sizes(const std::vector<int64_t>& sizes, bool with_whole_row);

}  // namespace awq
