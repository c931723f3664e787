#include "quant/quant_spec.h"

#include <gtest/gtest.h>

#include <string>

#include "base/error.h"

namespace awq {
namespace {

std::string validate_error(const QuantSpec& s, int64_t in, const std::string& name) {
  try {
    s.validate(in, name);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(QuantSpec, DefaultsAreAutoAwqs) {
  const QuantSpec s;
  EXPECT_EQ(s.bits, 4);
  EXPECT_EQ(s.group_size, 128);
  EXPECT_TRUE(s.zero_point);
  EXPECT_EQ(s.group_for(4096), 128);
  EXPECT_EQ((QuantSpec{4, -1, true}.group_for(4096)), 4096);
  EXPECT_EQ(validate_error(s, 4096, "x"), "");
}

TEST(QuantSpec, RejectsBitsOutside2To8) {
  for (int bits : {0, 1, 9, 16}) {
    const std::string msg = validate_error(QuantSpec{bits, 128, true}, 256, "model.layers.1.q");
    EXPECT_NE(msg.find("model.layers.1.q"), std::string::npos) << msg;
    EXPECT_NE(msg.find("2..8"), std::string::npos) << msg;
  }
  for (int bits = 2; bits <= 8; ++bits)
    EXPECT_EQ(validate_error(QuantSpec{bits, 128, true}, 256, "x"), "");
}

TEST(QuantSpec, GroupErrorsListTheSizesThatWork) {
  // 5632 = 2^9 * 11 (an MLP width): the multiples of 8 dividing it.
  const std::string msg = validate_error(QuantSpec{4, 128 * 3, true}, 5632, "mlp.down_proj");
  EXPECT_NE(msg.find("mlp.down_proj"), std::string::npos) << msg;
  EXPECT_NE(msg.find("5632"), std::string::npos) << msg;
  EXPECT_NE(msg.find("8, 16, 32, 64, 88, 128, 176, 256, 352, 512, 704, 1408, 2816, 5632 or -1"),
            std::string::npos)
      << msg;
  EXPECT_NE(validate_error(QuantSpec{4, 0, true}, 64, "t"), "");
  EXPECT_NE(validate_error(QuantSpec{4, -2, true}, 64, "t"), "");
  EXPECT_EQ(validate_error(QuantSpec{4, 3, true}, 63, "t"), "");  // any divisor is allowed
}

TEST(QuantSpec, ValidGroupSizes) {
  EXPECT_EQ(valid_group_sizes(96, 8), (std::vector<int64_t>{8, 16, 24, 32, 48, 96}));
  EXPECT_EQ(valid_group_sizes(100, 32), (std::vector<int64_t>{}));
  EXPECT_EQ(format_group_sizes({}, false), "none");
  EXPECT_EQ(format_group_sizes({32}, true), "32 or -1 (whole row)");
}

}  // namespace
}  // namespace awq
