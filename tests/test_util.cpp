#include "test_util.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <system_error>
#include <vector>

namespace awq::test {
namespace fs = std::filesystem;

std::string data_dir() {
  if (const char* env = std::getenv("AWQ_DATA"); env && *env) return env;
  return (fs::path(AWQ_SOURCE_DIR) / ".." / "shared" / "data").lexically_normal().string();
}

std::string data_path(const std::string& rel) {
  return (fs::path(data_dir()) / rel).string();
}

bool have_data(const std::string& rel) {
  return fs::exists(data_path(rel));
}

namespace {
// This process's scratch root, removed when the process exits normally — after a failing test
// too (gtest returns from main) — so that a run of the suite leaves nothing in the temp folder.
// The per-process name keeps parallel test processes (ctest -j) apart.
struct ScratchRoot {
  pid_t owner = ::getpid();
  fs::path path = fs::temp_directory_path() / ("awq_test_" + std::to_string(owner));
  ScratchRoot() = default;
  ScratchRoot(const ScratchRoot&) = delete;
  ScratchRoot& operator=(const ScratchRoot&) = delete;
  ~ScratchRoot() {
    if (::getpid() != owner) return;  // a forked child exiting must not take the parent's files
    std::error_code ec;               // best effort: a destructor must not throw
    fs::remove_all(path, ec);
  }
};

const fs::path& scratch_root() {
  static const ScratchRoot root;
  return root.path;
}
}  // namespace

fs::path scratch_dir(const std::string& name) {
  const fs::path p = scratch_root() / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

std::string awq_binary() {
  return AWQ_BINARY;
}

int run_command(const std::string& cmd, std::string* out) {
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out->append(buf, n);
  const int status = ::pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

AwqRun run_awq(const std::string& args) {
  AwqRun r;
  r.rc = run_command(awq_binary() + " " + args + " 2>&1", &r.out);
  return r;
}

std::string file_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void expect_same_dirs(const std::filesystem::path& a, const std::filesystem::path& b) {
  std::vector<std::string> na, nb;
  for (const auto& e : std::filesystem::directory_iterator(a))
    na.push_back(e.path().filename().string());
  for (const auto& e : std::filesystem::directory_iterator(b))
    nb.push_back(e.path().filename().string());
  std::sort(na.begin(), na.end());
  std::sort(nb.begin(), nb.end());
  ASSERT_EQ(na, nb) << a << " and " << b << " hold different files";
  for (const auto& n : na) EXPECT_TRUE(file_bytes(a / n) == file_bytes(b / n)) << n << " differs";
}

}  // namespace awq::test
