// Outputs are never half-written, never fought over, and never cost the input: a second writer of
// the same output is refused while the first holds it; a full disk and a read-only destination
// are clear errors that leave nothing at the destination and the input byte for byte as it was.
// Runs the built `awq` binary, as a user would. The full and read-only file systems are small
// tmpfs mounts made inside a private user + mount namespace (`unshare -rm`), so the test needs no
// privileges and leaves no mount behind.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "base/files.h"
#include "test_util.h"

namespace awq {
namespace {
namespace fs = std::filesystem;

// Every regular file under `dir` with its bytes, to show an input was not touched.
std::string tree_bytes(const fs::path& dir) {
  std::string all;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) all += e.path().string() + "\n" + test::file_bytes(e.path());
  return all;
}

// A tiny random llama checkpoint (synth), made once per test in `root`.
fs::path tiny_model(const fs::path& root) {
  const fs::path m = root / "tiny";
  std::string out;
  EXPECT_EQ(test::run_command(test::awq_binary() + " synth --shape tiny --out " + m.string() +
                                  " > /dev/null 2>&1",
                              &out),
            0);
  return m;
}

struct Shell {
  int rc = -1;
  std::string out;  // stdout and stderr of `awq`, then the "left=[...]" line
};

// Runs `awq ARGS` with `mnt` a fresh tmpfs of `size` (mount options `opts`) in a private namespace,
// then lists what is left in the mount. rc 77: the namespace or the mount was refused here.
Shell run_on_tmpfs(const fs::path& mnt, const std::string& opts, const std::string& args) {
  fs::create_directories(mnt);
  const std::string script = "mount -t tmpfs -o " + opts + " tmpfs " + mnt.string() +
                             " || exit 77; " + test::awq_binary() + " " + args +
                             " 2>&1; echo \"rc=$?\"; echo \"left=[$(ls -A " + mnt.string() + ")]\"";
  Shell s;
  s.rc = test::run_command("unshare --user --map-root-user --mount sh -c '" + script + "' 2>&1",
                           &s.out);
  return s;
}

#define SKIP_WITHOUT_NAMESPACES(shell)                                                    \
  if ((shell).rc == 77 || (shell).out.find("unshare:") != std::string::npos)              \
  GTEST_SKIP() << "cannot mount a tmpfs in a user namespace here (unshare -rm refused): " \
               << (shell).out

TEST(OutputSafety, ASecondWriterIsRefusedWhileTheFirstHoldsTheOutput) {
  const fs::path root = test::scratch_dir("output_lock");
  const fs::path out = root / "out";
  std::string msg;
  {
    const OutputLock first(out.string());  // this process is the first writer
    const int rc = test::run_command(
        test::awq_binary() + " synth --shape tiny --out " + out.string() + " 2>&1", &msg);
    EXPECT_NE(rc, 0);
    EXPECT_NE(msg.find(out.string() + ": another process is writing this output"),
              std::string::npos)
        << msg;
    EXPECT_FALSE(fs::exists(out)) << "the refused writer must not create the output";
    // Nor its staging directory: only our lock file is there.
    for (const auto& e : fs::directory_iterator(root))
      EXPECT_EQ(e.path().filename().string(), "out.lock") << "left behind: " << e.path();
  }
  EXPECT_FALSE(fs::exists(root / "out.lock")) << "the lock file is removed by its holder";
  msg.clear();
  EXPECT_EQ(test::run_command(
                test::awq_binary() + " synth --shape tiny --out " + out.string() + " 2>&1", &msg),
            0)
      << msg;
  EXPECT_TRUE(fs::exists(out / "config.json"));
}

TEST(OutputSafety, ALockFileLeftByAKilledRunDoesNotBlock) {
  const fs::path root = test::scratch_dir("output_stale_lock");
  const fs::path out = root / "out";
  // A SIGKILLed writer leaves its lock file, but the kernel released the lock with the process.
  std::ofstream(root / "out.lock") << "12345\n";
  std::string msg;
  EXPECT_EQ(test::run_command(
                test::awq_binary() + " synth --shape tiny --out " + out.string() + " 2>&1", &msg),
            0)
      << msg;
  EXPECT_TRUE(fs::exists(out / "config.json"));
  EXPECT_FALSE(fs::exists(root / "out.lock"));
}

TEST(OutputSafety, AFullDiskIsAClearErrorAndLeavesNothing) {
  const fs::path root = test::scratch_dir("output_full");
  const fs::path model = tiny_model(root);
  const std::string before = tree_bytes(model);
  const fs::path mnt = root / "full";
  // 64 KiB: the tiny model's quantized checkpoint (~0.5 MB) cannot fit.
  Shell s = run_on_tmpfs(
      mnt, "size=64k",
      "quantize --method rtn --model " + model.string() + " --out " + (mnt / "q").string());
  SKIP_WITHOUT_NAMESPACES(s);
  EXPECT_NE(s.out.find("No space left on device"), std::string::npos) << s.out;
  EXPECT_NE(s.out.find(mnt.string() + "/q"), std::string::npos) << "names the output: " << s.out;
  EXPECT_EQ(s.out.find("rc=0"), std::string::npos) << s.out;
  EXPECT_NE(s.out.find("left=[]"), std::string::npos) << "nothing may stay behind: " << s.out;
  EXPECT_EQ(tree_bytes(model), before) << "the input changed";

  // The same for a single-file output (export-gguf of the full-precision model: ~1 MB).
  s = run_on_tmpfs(mnt, "size=64k",
                   "export-gguf --model " + model.string() + " --out " + (mnt / "m.gguf").string());
  SKIP_WITHOUT_NAMESPACES(s);
  EXPECT_NE(s.out.find("No space left on device"), std::string::npos) << s.out;
  EXPECT_NE(s.out.find(mnt.string() + "/m.gguf"), std::string::npos) << s.out;
  EXPECT_EQ(s.out.find("rc=0"), std::string::npos) << s.out;
  EXPECT_NE(s.out.find("left=[]"), std::string::npos) << s.out;
  EXPECT_EQ(tree_bytes(model), before) << "the input changed";

  // With room, the same command works: what failed was the disk, not the command.
  s = run_on_tmpfs(mnt, "size=16m",
                   "quantize --method rtn --model " + model.string() + " --out " +
                       (mnt / "q").string() + " > /dev/null");
  EXPECT_NE(s.out.find("rc=0"), std::string::npos) << s.out;
  EXPECT_NE(s.out.find("left=[q]"), std::string::npos) << s.out;
}

TEST(OutputSafety, AReadOnlyDestinationIsAClearErrorAndLeavesNothing) {
  const fs::path root = test::scratch_dir("output_ro");
  const fs::path model = tiny_model(root);
  const std::string before = tree_bytes(model);
  const fs::path mnt = root / "ro";
  for (const std::string& args :
       {"synth --shape tiny --out " + (mnt / "s").string(),
        "quantize --method rtn --model " + model.string() + " --out " + (mnt / "q").string(),
        "export-gguf --model " + model.string() + " --out " + (mnt / "m.gguf").string()}) {
    const Shell s = run_on_tmpfs(mnt, "ro,size=1m", args);
    SKIP_WITHOUT_NAMESPACES(s);
    EXPECT_NE(s.out.find("Read-only file system"), std::string::npos) << args << "\n" << s.out;
    EXPECT_NE(s.out.find(mnt.string() + "/"), std::string::npos) << "names the output: " << s.out;
    EXPECT_EQ(s.out.find("rc=0"), std::string::npos) << s.out;
    EXPECT_NE(s.out.find("left=[]"), std::string::npos) << s.out;
  }
  EXPECT_EQ(tree_bytes(model), before) << "the input changed";
}

}  // namespace
}  // namespace awq
