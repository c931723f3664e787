// Small file helpers: whole-file reads with clear errors, and atomic writes (a temporary name in
// the destination directory, renamed over the target only when complete, so an interrupted run
// never leaves a half-written output under the real name).
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <fstream>
#include <string>

namespace awq {

std::string read_text_file(const std::string& path);  // throws awq::Error naming the path

// Writes through `writer` into "<path>.tmp.<pid>", flushes, fsyncs and renames to `path`.
void write_file_atomic(const std::string& path, const std::function<void(std::ofstream&)>& writer);
void write_text_file_atomic(const std::string& path, const std::string& text);

// A directory output: built under "<dir>.tmp.<pid>" and renamed to `dir` when commit() is called.
// If `dir` exists it is replaced only at commit (the old one is removed then). Destroyed without
// commit, the temporary directory is removed.
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
  std::filesystem::path final_, tmp_;
  bool committed_ = false;
};

}  // namespace awq
