#include "base/files.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>
#include <vector>

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

OutputLock::OutputLock(const std::string& target) : path_(target + ".lock") {
  // Open, lock, then check that the name still leads to the locked file: a holder finishing
  // between our open and flock unlinks it, and a lock on an unlinked file guards nothing.
  for (int attempt = 0;; ++attempt) {
    const int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    AWQ_CHECK(fd >= 0, "{}: cannot create the output's lock file {}: {}", target, path_,
              std::strerror(errno));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int e = errno;
      ::close(fd);
      AWQ_CHECK(e != EWOULDBLOCK,
                "{}: another process is writing this output (it holds {}); wait for it to "
                "finish or choose another output",
                target, path_);
      fail("{}: cannot lock {}: {}", target, path_, std::strerror(e));
    }
    struct stat held {
    }, named{};
    if (::fstat(fd, &held) == 0 && ::stat(path_.c_str(), &named) == 0 &&
        held.st_dev == named.st_dev && held.st_ino == named.st_ino) {
      fd_ = fd;
      return;
    }
    ::close(fd);
    AWQ_CHECK(attempt < 100, "{}: the lock file {} keeps being replaced", target, path_);
  }
}

OutputLock::~OutputLock() {
  if (fd_ < 0) return;
  ::unlink(path_.c_str());  // while still held, so no one can lock the old file after us
  ::close(fd_);
}

namespace {

// "<target>.<kind>.<digits>": a temporary of a process that wrote `target`.
bool is_temporary_of(const std::string& name, const std::string& target, const std::string& kind) {
  const std::string prefix = target + "." + kind + ".";
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return false;
  for (size_t i = prefix.size(); i < name.size(); ++i)
    if (name[i] < '0' || name[i] > '9') return false;
  return true;
}

// A writer killed without clean-up (SIGKILL, OOM, power loss) leaves its "<target>.tmp.<pid>"
// behind: possibly gigabytes. Whoever holds the target's lock next owns those names, and removes
// them. "<target>.old.<pid>" (a replaced output not yet deleted) goes too, but only while the
// target exists: otherwise it is the last complete output.
void remove_stale_temporaries(const fs::path& target) {
  const fs::path parent = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  const std::string base = target.filename().string();
  const bool target_exists = fs::exists(target);
  std::error_code ec;
  std::vector<fs::path> stale;
  for (fs::directory_iterator it(parent, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (is_temporary_of(name, base, "tmp") || (target_exists && is_temporary_of(name, base, "old")))
      stale.push_back(it->path());
  }
  for (const fs::path& p : stale) fs::remove_all(p, ec);
}

}  // namespace

static void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  AWQ_CHECK(fd >= 0, "{}: cannot reopen to sync: {}", path, std::strerror(errno));
  const int rc = ::fsync(fd);
  const int e = errno;
  ::close(fd);
  AWQ_CHECK(rc == 0, "{}: sync failed: {}", path, std::strerror(e));
}

void write_file_atomic(const std::string& path, const std::function<void(std::ofstream&)>& writer) {
  const OutputLock lock(path);
  remove_stale_temporaries(path);
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  try {
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      AWQ_CHECK(out.good(), "{}: cannot create: {}", tmp, std::strerror(errno));
      errno = 0;
      writer(out);
      out.flush();
      AWQ_CHECK(out.good(), "{}: write failed: {}", tmp,
                errno ? std::strerror(errno) : "stream error");
      out.close();
      AWQ_CHECK(!out.fail(), "{}: write failed on close: {}", tmp, std::strerror(errno));
    }
    fsync_path(tmp);
    std::error_code ec;
    fs::rename(tmp, path, ec);
    AWQ_CHECK(!ec, "{}: cannot move the written file into place: {}", path, ec.message());
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

// Creates the directory an output goes into (--out a/b/c with no a/b yet), so that its lock and
// staging directory can be made beside it; returns `dir`.
std::string with_parent_created(const fs::path& dir) {
  const fs::path parent = dir.parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    fs::create_directories(parent, ec);
    AWQ_CHECK(!ec, "{}: cannot create the output's parent directory: {}", dir.string(),
              ec.message());
  }
  return dir.string();
}

}  // namespace

StagedDir::StagedDir(const std::string& dir_arg)
    : final_(without_trailing_slashes(dir_arg)), lock_(with_parent_created(final_)) {
  const std::string dir = final_.string();
  remove_stale_temporaries(final_);
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
