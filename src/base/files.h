// Small file helpers: whole-file reads with clear errors, and atomic writes (a temporary name in
// the destination directory, renamed over the target only when complete, so an interrupted run
// never leaves a half-written output under the real name).
#pragma once
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

namespace awq {

std::string read_text_file(const std::string& path);  // throws awq::Error naming the path

// Exclusive ownership of an output for this process: an flock on "<target>.lock" beside it, taken
// without waiting, so that a second awq writing the same output stops at once with a message
// naming it (instead of both staging and the last rename silently winning). The kernel drops the
// lock when its holder dies (SIGKILL, OOM), so a lock file left behind never blocks a re-run; the
// holder removes the file when it is done.
class OutputLock {
 public:
  explicit OutputLock(const std::string& target);
  ~OutputLock();
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;

 private:
  std::string path_;
  int fd_ = -1;
};

// Writes through `writer` into "<path>.tmp.<pid>", flushes, fsyncs and renames to `path`, holding
// the OutputLock of `path` (and removing the temporaries that killed writers of `path` left). A
// write error (a full disk, a read-only destination) is an awq::Error naming the file, and nothing
// is left under either name.
void write_file_atomic(const std::string& path, const std::function<void(std::ofstream&)>& writer);
void write_text_file_atomic(const std::string& path, const std::string& text);

// A directory output: built under "<dir>.tmp.<pid>" and renamed to `dir` when commit() is called.
// If `dir` exists it is replaced only at commit (the old one is removed then). Destroyed without
// commit, the temporary directory is removed. Holds the OutputLock of `dir` while it lives, and
// first removes the temporary directories of writers of `dir` that were killed.
class StagedDir {
 public:
  explicit StagedDir(const std::string& dir);
  ~StagedDir();
  StagedDir(const StagedDir&) = delete;
  StagedDir& operator=(const StagedDir&) = delete;
  std::filesystem::path path(const std::string& name) const { return tmp_ / name; }
  const std::filesystem::path& tmp() const { return tmp_; }
  void commit();

 private:
  std::filesystem::path final_;
  OutputLock lock_;
  std::filesystem::path tmp_;
  bool committed_ = false;
};

}  // namespace awq
