#include "test_util.h"

#include <unistd.h>

#include <cstdlib>

namespace awq::test {
namespace fs = std::filesystem;

std::string data_dir() {
  if (const char* env = std::getenv("AWQ_DATA"); env && *env) return env;
  return (fs::path(AWQ_SOURCE_DIR) / ".." / "shared" / "data").lexically_normal().string();
}

std::string data_path(const std::string& rel) { return (fs::path(data_dir()) / rel).string(); }

bool have_data(const std::string& rel) { return fs::exists(data_path(rel)); }

fs::path scratch_dir(const std::string& name) {
  const fs::path p = fs::temp_directory_path() /
                     ("awq_test_" + std::to_string(::getpid())) / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

std::string awq_binary() { return AWQ_BINARY; }

}  // namespace awq::test
