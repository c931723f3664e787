#include "base/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include "base/error.h"

namespace awq {
namespace fs = std::filesystem;

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  AWQ_CHECK(in.good(), "{}: cannot open: {}", path, std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  AWQ_CHECK(!in.bad(), "{}: read error", path);
  return ss.str();
}

static void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

void write_file_atomic(const std::string& path, const std::function<void(std::ofstream&)>& writer) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  try {
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      AWQ_CHECK(out.good(), "{}: cannot create: {}", tmp, std::strerror(errno));
      writer(out);
      out.flush();
      AWQ_CHECK(out.good(), "{}: write failed (disk full?)", tmp);
    }
    fsync_path(tmp);
    fs::rename(tmp, path);
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
}

void write_text_file_atomic(const std::string& path, const std::string& text) {
  write_file_atomic(
      path, [&](std::ofstream& out) { out.write(text.data(), std::streamsize(text.size())); });
}

namespace {

// "out/" and "out" name the same directory; the staging name must sit beside it, not inside.
std::string without_trailing_slashes(std::string d) {
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  return d;
}

}  // namespace

StagedDir::StagedDir(const std::string& dir_arg) : final_(without_trailing_slashes(dir_arg)) {
  const std::string dir = final_.string();
  tmp_ = fs::path(dir + ".tmp." + std::to_string(::getpid()));
  std::error_code ec;
  fs::remove_all(tmp_, ec);
  fs::create_directories(tmp_, ec);
  AWQ_CHECK(!ec, "{}: cannot create output directory: {}", tmp_.string(), ec.message());
}

StagedDir::~StagedDir() {
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }
}

void StagedDir::commit() {
  std::error_code ec;
  if (fs::exists(final_)) {
    const fs::path old = final_.string() + ".old." + std::to_string(::getpid());
    fs::rename(final_, old, ec);
    AWQ_CHECK(!ec, "{}: cannot replace existing output: {}", final_.string(), ec.message());
    fs::rename(tmp_, final_, ec);
    AWQ_CHECK(!ec, "{}: cannot move output into place: {}", final_.string(), ec.message());
    fs::remove_all(old, ec);
  } else {
    fs::rename(tmp_, final_, ec);
    AWQ_CHECK(!ec, "{}: cannot move output into place: {}", final_.string(), ec.message());
  }
  committed_ = true;
}

}  // namespace awq
