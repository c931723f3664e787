// Whole-file encoding of WikiText-2 (test split) equals the ids an independent implementation of
// tokenizer.json produced, id for id, for each tokenizer family; decoding gives the text back.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "base/sysinfo.h"
#include "tokenizer_test_util.h"

namespace awq {
namespace {

class WikiExpected : public ::testing::TestWithParam<std::string> {};

TEST_P(WikiExpected, EncodesIdForIdAndRoundTrips) {
  const std::string family = GetParam();
  const std::string expected_rel = "tokenizers/expected/" + family + ".wiki.test.raw.json";
  AWQ_REQUIRE_DATA(expected_rel);
  AWQ_REQUIRE_DATA("tokenizers/" + family + "/tokenizer.json");
  AWQ_REQUIRE_DATA("text/wiki.test.raw");
  const nlohmann::json expected = nlohmann::json::parse(test::read_data(expected_rel));
  ASSERT_EQ(expected.at("add_special_tokens").get<bool>(), false);
  ASSERT_EQ(expected.at("whole_file").get<bool>(), true);
  ASSERT_EQ(expected.at("text").get<std::string>(), "text/wiki.test.raw");
  const std::vector<int32_t> want = expected.at("ids").get<std::vector<int32_t>>();
  ASSERT_EQ(want.size(), expected.at("n").get<size_t>());

  const Tokenizer& tok = test::family_tokenizer(family);
  const std::string text = test::read_data("text/wiki.test.raw");
  Timer timer;
  const std::vector<int32_t> got = tok.encode(text, /*add_special=*/false);
  const double seconds = timer.seconds();
  std::printf("[ %s ] encoded %zu bytes to %zu tokens in %.3f s (%.2f MB/s)\n", family.c_str(),
              text.size(), got.size(), seconds, text.size() / seconds / 1e6);
  EXPECT_EQ(test::first_difference(got, want, &tok), "");
  EXPECT_LT(seconds, 10.0) << "encoding is far slower than expected";

  timer.reset();
  const std::string back = tok.decode(got);
  std::printf("[ %s ] decoded in %.3f s\n", family.c_str(), timer.seconds());
  ASSERT_EQ(back.size(), text.size());
  EXPECT_TRUE(back == text);
}

INSTANTIATE_TEST_SUITE_P(Families, WikiExpected,
                         ::testing::Values("gpt2", "llama2", "phi-3", "qwen2.5"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

}  // namespace
}  // namespace awq
