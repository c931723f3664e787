// `awq quantize --act-dtype`: the values it takes, the ones it refuses, and the report's record.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "base/files.h"
#include "test_util.h"

namespace awq {
namespace {
namespace fs = std::filesystem;

TEST(ActDtypeCli, TakesF32Bf16F16AndRefusesTheRest) {
  const fs::path root = test::scratch_dir("act_dtype_cli");
  const std::string model = (root / "m").string();
  const test::AwqRun s = test::run_awq("synth --shape tiny --layers 2 --out " + model);
  ASSERT_EQ(s.rc, 0) << s.out;
  {
    std::ofstream calib(root / "calib.txt");
    for (int i = 0; i < 64; ++i) calib << "Once upon a time a small model kept its activations.\n";
  }
  const std::string q = "quantize --model " + model + " --calib " + (root / "calib.txt").string() +
                        " --calib-samples 4 --calib-seqlen 32 --group-size 64 ";
  const test::AwqRun bad = test::run_awq(q + "--act-dtype fp8 --out " + (root / "bad").string());
  EXPECT_NE(bad.rc, 0);
  EXPECT_NE(bad.out.find("--act-dtype"), std::string::npos) << bad.out;
  EXPECT_FALSE(fs::exists(root / "bad"));
  const test::AwqRun gptq =
      test::run_awq(q + "--act-dtype f16 --method gptq --out " + (root / "gptq").string());
  EXPECT_NE(gptq.rc, 0);
  EXPECT_NE(gptq.out.find("--act-dtype f16: 16-bit activations are for --method awq"),
            std::string::npos)
      << gptq.out;
  const std::string report = (root / "bf16.json").string();
  const test::AwqRun ok = test::run_awq(q + "--act-dtype bf16 --report " + report + " --out " +
                                        (root / "bf16").string());
  ASSERT_EQ(ok.rc, 0) << ok.out;
  EXPECT_NE(ok.out.find("kept activations"), std::string::npos) << ok.out;
  const auto j = nlohmann::json::parse(read_text_file(report));
  EXPECT_EQ(j["act_dtype"], "bf16");
  EXPECT_GT(j["act_bytes"].get<int64_t>(), 0);
}

}  // namespace
}  // namespace awq
