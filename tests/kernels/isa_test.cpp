// ISA selection: force_isa lowers the choice, never raises it beyond the CPU, and AWQ_ISA caps it
// at start-up (checked in a child process, since the choice is made once per process).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "base/error.h"
#include "kernel_test_util.h"

namespace awq::kernels::test {
namespace {

TEST(Isa, AvailableIsasRunFromScalarToTheCpuBest) {
  const std::vector<Isa> isas = available_isas();
  ASSERT_FALSE(isas.empty());
  EXPECT_EQ(isas.front(), Isa::Scalar);
  EXPECT_EQ(isas.back(), cpu_best_isa());
  EXPECT_LE(int(active_isa()), int(cpu_best_isa()));
  EXPECT_STREQ(isa_name(Isa::Avx2), "avx2");
}

TEST(Isa, ForceIsaLowersTheChoiceAndCannotExceedTheCpu) {
  IsaGuard guard;
  for (Isa isa : available_isas()) {
    force_isa(isa);
    EXPECT_EQ(active_isa(), isa);
  }
  if (cpu_best_isa() != Isa::Avx512) {
    EXPECT_THROW(force_isa(Isa::Avx512), Error);
  }
}

// Runs this test binary again with AWQ_ISA set, asking the child test below what it chose.
int run_child(const std::string& awq_isa, const std::string& expect) {
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  const std::string cmd = "AWQ_ISA=" + awq_isa + " AWQ_TEST_EXPECT_ISA=" + expect + " '" + self +
                          "' --gtest_also_run_disabled_tests"
                          " --gtest_filter=IsaEnv.DISABLED_ChildChecksActiveIsa > /dev/null 2>&1";
  return std::system(cmd.c_str());
}

TEST(IsaEnv, AwqIsaCapsTheChoice) {
  auto capped = [](Isa cap) {
    return isa_name(int(cap) < int(cpu_best_isa()) ? cap : cpu_best_isa());
  };
  EXPECT_EQ(run_child("scalar", "scalar"), 0);
  EXPECT_EQ(run_child("avx2", capped(Isa::Avx2)), 0);
  EXPECT_EQ(run_child("avx512", capped(Isa::Avx512)), 0);
  EXPECT_EQ(run_child("sse9", "error"), 0);
  EXPECT_NE(run_child("scalar", "avx512"), 0);  // the child really checks
}

// Disabled in normal runs: only IsaEnv.AwqIsaCapsTheChoice runs it, in a child process.
TEST(IsaEnv, DISABLED_ChildChecksActiveIsa) {
  const char* expect = std::getenv("AWQ_TEST_EXPECT_ISA");
  ASSERT_NE(expect, nullptr) << "set AWQ_TEST_EXPECT_ISA";
  if (std::string(expect) == "error") {
    EXPECT_THROW(active_isa(), Error);
    return;
  }
  EXPECT_STREQ(isa_name(active_isa()), expect);
}

}  // namespace
}  // namespace awq::kernels::test
