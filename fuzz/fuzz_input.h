// Shared by the libFuzzer targets: readers that take a path get the fuzzer's bytes through one
// file per process (rewritten on every input, under TMPDIR), and every target treats awq::Error
// as the expected outcome of bad bytes. Anything else — a crash, a sanitizer report, another
// exception escaping, a hang — is a finding.
#pragma once
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

namespace awq::fuzz {

// The input written to this process's scratch file named `suffix` (e.g. ".gguf"); returns its path.
inline std::string as_file(const uint8_t* data, size_t size, const std::string& suffix) {
  const char* tmp = std::getenv("TMPDIR");
  static const std::string base =
      std::string(tmp && *tmp ? tmp : "/tmp") + "/awq-fuzz-" + std::to_string(::getpid());
  const std::string path = base + suffix;
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), std::streamsize(size));
  return path;
}

}  // namespace awq::fuzz
