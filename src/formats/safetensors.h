// safetensors: reading (mmap, every header claim validated) and writing (atomic).
// Layout: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets:
// [begin, end]}, "__metadata__": {str: str}}, then the data buffer; offsets are relative to it.
#pragma once
#include <cstdint>
#include <fstream>
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
  SafetensorsWriter() = default;
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;
  SafetensorsWriter(SafetensorsWriter&&) = default;
  SafetensorsWriter& operator=(SafetensorsWriter&&) = default;
  ~SafetensorsWriter();
  // From now on each added tensor's bytes are appended to this file instead of kept in memory,
  // and write() copies them after the header: memory stays one tensor, not the whole file (a 5 GB
  // output shard). The file is removed by clear() and by the destructor.
  void spill_to(const std::string& path);
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
    std::vector<uint8_t> bytes;  // empty when spilled
    size_t size = 0;
  };
  std::vector<Entry> entries_;
  std::string spill_path_;
  std::unique_ptr<std::ofstream> spill_;  // open while tensors are being spilled
  std::map<std::string, std::string> metadata_;
  size_t data_bytes_ = 0;
};

// Encodes f32 values into `dtype` (F32/F16/BF16) bytes.
std::vector<uint8_t> encode_floats(std::span<const float> values, DType dtype);

}  // namespace awq
