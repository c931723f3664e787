#include "quant/quant_spec.h"

#include <fmt/format.h>

#include <algorithm>

#include "base/error.h"

namespace awq {

int QuantSpec::group_for(int64_t in) const {
  return group_size == -1 ? int(in) : group_size;
}

void QuantSpec::validate(int64_t in, const std::string& tensor) const {
  AWQ_CHECK(bits >= 2 && bits <= 8, "tensor '{}': {} bits requested, the quantizer supports 2..8",
            tensor, bits);
  AWQ_CHECK(in > 0 && in <= (int64_t(1) << 30), "tensor '{}': input width {} is out of range",
            tensor, in);
  const bool ok = group_size == -1 || (group_size > 0 && in % group_size == 0);
  AWQ_CHECK(ok, "tensor '{}': group size {} does not divide its input width {}; use one of {}",
            tensor, group_size, in, format_group_sizes(valid_group_sizes(in, 8), true));
}

std::vector<int64_t> valid_group_sizes(int64_t in, int64_t multiple) {
  std::vector<int64_t> out;
  for (int64_t d = 1; d * d <= in; ++d) {  // divisors come in pairs (d, in/d)
    if (in % d != 0) continue;
    if (d % multiple == 0) out.push_back(d);
    if (in / d != d && (in / d) % multiple == 0) out.push_back(in / d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string format_group_sizes(const std::vector<int64_t>& sizes, bool with_whole_row) {
  std::vector<std::string> items;
  for (int64_t g : sizes) items.push_back(std::to_string(g));
  if (with_whole_row) items.push_back("-1 (whole row)");
  if (items.empty()) return "none";
  std::string s;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) s += (i + 1 == items.size()) ? " or " : ", ";
    s += items[i];
  }
  return s;
}

}  // namespace awq
