// safetensors: reading (mmap, every header claim validated) and writing (atomic).
// Layout: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets:
// [begin, end]}, "__metadata__": {str: str}}, then the data buffer; offsets are relative to it.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/mapped_file.h"
#include "formats/dtype.h"

namespace awq {

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // inside the mapping
  size_t nbytes = 0;
  std::string file;  // for error messages

  int64_t numel() const;
  std::string shape_str() const;  // "[64, 172]"
};

class SafetensorsFile {
 public:
  // Maps and validates `path`: header length inside the file, valid JSON, known dtypes,
  // non-negative shapes, shape × dtype size == byte range, ranges inside the data buffer and not
  // overlapping. Any violation is an awq::Error naming the file (and the tensor).
  explicit SafetensorsFile(const std::string& path);

  const std::string& path() const { return file_.path(); }
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  size_t file_size() const { return file_.size(); }

 private:
  MappedFile file_;
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Accumulates tensors, then writes one safetensors file atomically. Tensors are written in the
// order added and packed without gaps (the reference loader rejects holes); the header is
// space-padded so that the data buffer starts 8-aligned, as the reference writer does.
class SafetensorsWriter {
 public:
  void add(const std::string& name, DType dtype, std::vector<int64_t> shape,
           std::vector<uint8_t> bytes);
  void add_f32_as(const std::string& name, DType dtype, std::vector<int64_t> shape,
                  std::span<const float> values);
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  size_t data_bytes() const { return data_bytes_; }
  size_t count() const { return entries_.size(); }
  std::vector<std::string> names() const;
  void write(const std::string& path) const;  // atomic
  void clear();

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
  };
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
  size_t data_bytes_ = 0;
};

// Encodes f32 values into `dtype` (F32/F16/BF16) bytes.
std::vector<uint8_t> encode_floats(std::span<const float> values, DType dtype);

}  // namespace awq
