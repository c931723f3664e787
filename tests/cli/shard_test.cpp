// Many machines, one model: `awq quantize --shard K/N` on each, then `awq merge`, gives the bytes
// one run writes; shards of different commands, a missing or repeated shard, a different model at
// merge time and impossible shard specs are clear errors that write nothing. Runs the built
// binary on a small multi-block synthetic model.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "test_util.h"

namespace awq {
namespace {
namespace fs = std::filesystem;

using Outcome = test::AwqRun;

constexpr auto awq = test::run_awq;

TEST(Shard, ThreeShardsMergedInAnyOrderAreOneRunByteForByte) {
  AWQ_REQUIRE_DATA("tokenizers/llama2/tokenizer.json");
  AWQ_REQUIRE_DATA("text/tinystories-train-head.txt");
  const fs::path root = test::scratch_dir("shard");
  const std::string tok = " --vocab 32000 --tokenizer " + test::data_path("tokenizers/llama2");
  const fs::path m = root / "m", m2 = root / "m2";
  ASSERT_EQ(awq("synth --shape tiny --layers 5" + tok + " --out " + m.string()).rc, 0);
  const std::string q = "quantize --model " + m.string() + " --calib " +
                        test::data_path("text/tinystories-train-head.txt") +
                        " --calib-samples 16 --calib-seqlen 256";
  const auto at = [&](const std::string& n) { return (root / n).string(); };
  ASSERT_EQ(awq(q + " --out " + at("full")).rc, 0);
  for (int k = 1; k <= 3; ++k) {
    const Outcome s =
        awq(q + " --shard " + std::to_string(k) + "/3 --out " + at("s" + std::to_string(k)));
    ASSERT_EQ(s.rc, 0) << s.out;
  }
  // 5 blocks in 3 shards: [0, 1), [1, 3), [3, 5).
  EXPECT_TRUE(fs::exists(root / "s1" / "block-0000.json"));
  EXPECT_TRUE(fs::exists(root / "s2" / "block-0002.json"));
  EXPECT_TRUE(fs::exists(root / "s3" / "block-0004.json"));
  EXPECT_FALSE(fs::exists(root / "s3" / "block-0002.json"));
  const Outcome merged =
      awq("merge " + at("s3") + " " + at("s1") + " " + at("s2") + " --out " + at("merged"));
  ASSERT_EQ(merged.rc, 0) << merged.out;
  test::expect_same_dirs(root / "full", root / "merged");

  // Errors, each before anything is written.
  const auto expect_error = [&](const std::string& args, const std::string& message) {
    const Outcome r = awq(args + " --out " + at("bad"));
    EXPECT_EQ(r.rc, 1) << args << ": " << r.out;
    EXPECT_NE(r.out.find("awq: error: " + message), std::string::npos) << args << ": " << r.out;
    EXPECT_FALSE(fs::exists(root / "bad")) << args;
  };
  expect_error(q + " --shard 3/2", "--shard 3/2: expected K/N with 1 <= K <= N");
  expect_error(q + " --shard 2", "--shard 2: expected K/N");
  expect_error(q + " --shard 1/6", "--shard 1/6: the model has only 5 blocks to share out");
  expect_error(q + " --shard 1/2 --propagate quantized", "--shard with --propagate quantized");
  expect_error(q + " --shard 1/2 --method rtn", "--shard splits an AWQ or GPTQ run");
  expect_error("merge " + at("s1") + " " + at("s2"), "shard 3/3 is missing (layers [3, 5))");
  expect_error("merge " + at("s1") + " " + at("s2") + " " + at("s2") + " " + at("s3"),
               "shard 2/3 is given twice");
  expect_error("merge " + at("s1") + " " + at("full"), at("full") + ": not a shard");
  ASSERT_EQ(awq(q + " --scale-grid 10 --shard 2/3 --out " + at("s2b")).rc, 0);
  expect_error("merge " + at("s1") + " " + at("s2b") + " " + at("s3"),
               at("s1") + " and " + at("s2b") +
                   " come from different commands or inputs (--scale-grid (kept: 20; now: 10))");
  // Another model with the same shapes (another seed): the shards' searches do not belong to it.
  ASSERT_EQ(awq("synth --shape tiny --layers 5 --seed 9" + tok + " --out " + m2.string()).rc, 0);
  expect_error("merge " + at("s1") + " " + at("s2") + " " + at("s3") + " --model " + m2.string(),
               at("s1") + ": 'model model.safetensors' is ");
  // A damaged shard file is named.
  std::string b = test::file_bytes(root / "s2" / "block-0001.json");
  b[b.size() / 2] ^= 4;
  std::ofstream(root / "s2" / "block-0001.json", std::ios::binary | std::ios::trunc) << b;
  expect_error("merge " + at("s1") + " " + at("s2") + " " + at("s3"),
               (root / "s2" / "block-0001.json").string() + ": content does not match its hash");
}

// mpirun: every rank searches its shard, rank 0 merges; the output is the single run's bytes and
// the shard directories are gone. More ranks than blocks: every rank stops with the error.
TEST(Shard, MpirunShardsAndMergesInOneCommand) {
#ifndef AWQ_TEST_MPIRUN
  GTEST_SKIP() << "awq was built without Open MPI (scripts/setup.sh installs libopenmpi-dev)";
#else
  AWQ_REQUIRE_DATA("tokenizers/llama2/tokenizer.json");
  AWQ_REQUIRE_DATA("text/tinystories-train-head.txt");
  const fs::path root = test::scratch_dir("mpi");
  const fs::path m = root / "m";
  ASSERT_EQ(awq("synth --shape tiny --layers 4 --vocab 32000 --tokenizer " +
                test::data_path("tokenizers/llama2") + " --out " + m.string())
                .rc,
            0);
  const std::string q = "quantize --model " + m.string() + " --calib " +
                        test::data_path("text/tinystories-train-head.txt") +
                        " --calib-samples 16 --calib-seqlen 256";
  ASSERT_EQ(awq(q + " --out " + (root / "full").string()).rc, 0);
  // --oversubscribe: more ranks than cores; root may run it (CI containers).
  const std::string mpirun = std::string(AWQ_TEST_MPIRUN) + " --oversubscribe --allow-run-as-root";
  Outcome r;
  r.rc = test::run_command(mpirun + " -n 2 " + test::awq_binary() + " " + q + " --mpi --out " +
                               (root / "mpi").string() + " 2>&1",
                           &r.out);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("from 2 ranks"), std::string::npos) << r.out;
  test::expect_same_dirs(root / "full", root / "mpi");
  EXPECT_FALSE(fs::exists(root / "mpi.mpi"));
  Outcome bad;
  bad.rc = test::run_command(mpirun + " -n 5 " + test::awq_binary() + " " + q + " --mpi --out " +
                                 (root / "bad").string() + " 2>&1",
                             &bad.out);
  EXPECT_NE(bad.rc, 0) << bad.out;
  EXPECT_NE(bad.out.find("--shard 1/5: the model has only 4 blocks to share out"),
            std::string::npos)
      << bad.out;
  EXPECT_FALSE(fs::exists(root / "bad"));
#endif
}

}  // namespace
}  // namespace awq
