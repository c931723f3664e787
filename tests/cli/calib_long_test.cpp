// A calibration text that is one long document (a book, a log file: no blank line, no
// <|endoftext|>) quantizes: by default it is split into blocks (--calib-long split); skip,
// AutoAWQ's behaviour, refuses it with an error that says what to do; truncate takes its first
// block. The summary line, the report and the resume fingerprint say which mode ran. Runs the built
// binary on a small synthetic model with the llama2 tokenizer.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "test_util.h"

namespace awq {
namespace {
namespace fs = std::filesystem;

using Outcome = test::AwqRun;

constexpr auto awq = test::run_awq;

class CalibLongCli : public ::testing::Test {
 protected:
  void SetUp() override {
    AWQ_REQUIRE_DATA("tokenizers/llama2/tokenizer.json");
    AWQ_REQUIRE_DATA("text/sotu-1790-2021.txt");
    AWQ_REQUIRE_DATA("text/tinystories-train-head.txt");
    root_ = test::scratch_dir("calib_long");
    model_ = root_ / "m";
    const Outcome s = awq("synth --shape tiny --layers 3 --vocab 32000 --tokenizer " +
                          test::data_path("tokenizers/llama2") + " --out " + model_.string());
    ASSERT_EQ(s.rc, 0) << s.out;
    // The first three State of the Union addresses, one per line, no blank line (~47 KB): one
    // document of about 10,000 tokens, far longer than a block.
    std::ifstream in(test::data_path("text/sotu-1790-2021.txt"));
    std::ofstream out(root_ / "book.txt");
    std::string line;
    for (int i = 0; i < 3 && std::getline(in, line); ++i) out << line << "\n";
  }

  std::string quantize(const std::string& out, const std::string& extra) const {
    return "quantize --model " + model_.string() + " --calib " + (root_ / "book.txt").string() +
           " --calib-samples 8 --calib-seqlen 128 --out " + (root_ / out).string() + " " + extra;
  }

  fs::path root_, model_;
};

TEST_F(CalibLongCli, OneLongParagraphIsSplitByDefault) {
  const Outcome r = awq(quantize("split", "--report " + (root_ / "split.json").string()));
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("calibration: 1 document (1 longer than 128 tokens split into 8 pieces), "
                       "1,024 tokens used of "),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find(" read -> 8 blocks of 128 tokens"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(root_ / "split" / "config.json"));
  const auto rep = nlohmann::json::parse(test::file_bytes(root_ / "split.json"));
  const auto& c = rep.at("calibration");
  EXPECT_EQ(c.at("long_documents"), "split");
  EXPECT_EQ(c.at("documents"), 1);
  EXPECT_EQ(c.at("documents_too_long"), 1);
  EXPECT_EQ(c.at("pieces"), 8);
  EXPECT_EQ(c.at("blocks"), 8);
  EXPECT_EQ(c.at("tokens_used"), 1024);
  EXPECT_GT(c.at("tokens_read").get<int64_t>(), 5000);  // the whole document was tokenized
  EXPECT_EQ(c.at("tokens_dropped"), 0);
}

TEST_F(CalibLongCli, SkipRefusesItClearlyAndTruncateTakesOneBlock) {
  const Outcome skip = awq(quantize("skip", "--calib-long skip"));
  EXPECT_EQ(skip.rc, 1) << skip.out;
  EXPECT_NE(skip.out.find("awq: error: " + (root_ / "book.txt").string() +
                          ": not enough calibration text: 0 usable documents (1 skipped as "
                          "longer than 128 tokens) give 0 tokens, fewer than one block of 128 (use "
                          "more text or a smaller --calib-seqlen, or --calib-long split to use the "
                          "long documents)"),
            std::string::npos)
      << skip.out;
  EXPECT_FALSE(fs::exists(root_ / "skip"));

  const Outcome trunc = awq(quantize("truncate", "--calib-long truncate"));
  ASSERT_EQ(trunc.rc, 0) << trunc.out;
  EXPECT_NE(trunc.out.find("calibration: 1 document (1 longer than 128 tokens truncated to their "
                           "first 128), 128 tokens used of "),
            std::string::npos)
      << trunc.out;
  EXPECT_NE(trunc.out.find(" read -> 1 blocks of 128 tokens"), std::string::npos) << trunc.out;

  const Outcome bad = awq(quantize("bad", "--calib-long chop"));
  EXPECT_NE(bad.rc, 0);
  EXPECT_NE(bad.out.find("--calib-long"), std::string::npos) << bad.out;
  EXPECT_FALSE(fs::exists(root_ / "bad"));
}

// --calib-long is in the resume fingerprint by itself: on stories shorter than a block every mode
// gives the same tokens, and still a stage of one mode is not resumed by another.
TEST_F(CalibLongCli, TheModeIsInTheResumeFingerprint) {
  const std::string q = "quantize --model " + model_.string() + " --calib " +
                        test::data_path("text/tinystories-train-head.txt") +
                        " --calib-samples 8 --calib-seqlen 512 --out " + (root_ / "q").string();
  Outcome killed;
  killed.rc = test::run_command("AWQ_TEST_KILL_AT=kept:1 " + test::awq_binary() + " " + q +
                                    " >/dev/null 2>&1; echo \"rc=$?\"",
                                &killed.out);
  ASSERT_NE(killed.out.find("rc=137"), std::string::npos) << killed.out;
  const Outcome other = awq(q + " --calib-long skip");
  ASSERT_EQ(other.rc, 0) << other.out;
  EXPECT_NE(other.out.find("calibration: 8 documents (0 skipped as longer than 512 tokens)"),
            std::string::npos)
      << other.out;
  EXPECT_NE(other.out.find("different command or input: --calib-long (kept: \"split\"; now: "
                           "\"skip\")"),
            std::string::npos)
      << other.out;
}

}  // namespace
}  // namespace awq
