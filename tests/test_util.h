// Shared test helpers: where the shared data lives (AWQ_DATA, default ../shared/data beside the
// checkout), a skip with a one-line reason when it is absent, and scratch directories.
#pragma once
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

namespace awq::test {

std::string data_dir();                         // AWQ_DATA or <source>/../shared/data
std::string data_path(const std::string& rel);  // data_dir()/rel
bool have_data(const std::string& rel);
std::filesystem::path scratch_dir(const std::string& name);  // fresh, under the build's tmp dir
std::string awq_binary();                                    // path to the built `awq` CLI
// Runs `cmd` through the shell; returns its exit status (-1 if it did not exit normally) and
// appends its stdout to *out (stderr passes through unless the command redirects it).
int run_command(const std::string& cmd, std::string* out);
// `awq ARGS` with stdout and stderr together.
struct AwqRun {
  int rc = -1;
  std::string out;
};
AwqRun run_awq(const std::string& args);
// The bytes of a file ("" if it cannot be read: the comparison that follows then fails).
std::string file_bytes(const std::filesystem::path& p);
// Two directories hold the same file names with the same bytes (gtest failures name the file).
void expect_same_dirs(const std::filesystem::path& a, const std::filesystem::path& b);

}  // namespace awq::test

// Skips the current test (with the reason) when a shared data file is missing.
#define AWQ_REQUIRE_DATA(rel)                                                  \
  do {                                                                         \
    if (!::awq::test::have_data(rel))                                          \
      GTEST_SKIP() << "shared data not found: " << ::awq::test::data_path(rel) \
                   << " (set AWQ_DATA to the shared data directory)";          \
  } while (0)
