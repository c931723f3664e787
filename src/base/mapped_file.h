// A read-only memory mapping of a whole file. Weights are read through it so that a model larger
// than RAM costs page cache, not heap.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace awq {

class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(const std::string& path);  // throws awq::Error naming the path
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Tells the kernel that this process is done with [p, p + n), memory inside a MappedFile that was
// copied out: its whole pages leave the resident set (they stay in the page cache and are read
// again if touched), so a pipeline that copies one block of a larger-than-RAM checkpoint after
// another keeps ~one block resident, not every page it ever read. Advice only: harmless to the
// data (the mapping is read-only and private, never written); partial pages at the ends are kept.
// Never call it on heap memory: there it would discard the contents.
void drop_mapped_pages(const void* p, size_t n);

}  // namespace awq
