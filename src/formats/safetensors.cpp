#include "formats/safetensors.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/files.h"
#include "base/half.h"

namespace awq {
using json = nlohmann::json;

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

std::string TensorInfo::shape_str() const {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(path) {
  const size_t size = file_.size();
  AWQ_CHECK(size >= 8,
            "{}: truncated safetensors file ({} bytes, need at least 8 for the header length)",
            path, size);
  uint64_t n = 0;
  std::memcpy(&n, file_.data(), 8);
  AWQ_CHECK(n <= size - 8,
            "{}: header length {} runs past the end of the file ({} bytes): truncated or not a "
            "safetensors file",
            path, n, size);
  AWQ_CHECK(n <= (uint64_t(100) << 20), "{}: header length {} exceeds the 100 MB limit", path, n);
  const uint8_t* data_start = file_.data() + 8 + n;
  const size_t data_size = size - 8 - size_t(n);
  json header;
  try {
    header = json::parse(file_.data() + 8, file_.data() + 8 + n);
  } catch (const json::exception& e) {
    fail("{}: header is not valid JSON: {}", path, e.what());
  }
  AWQ_CHECK(header.is_object(), "{}: header must be a JSON object", path);

  struct Range {
    size_t begin, end;
    const std::string* name;
  };
  std::vector<Range> ranges;
  for (auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      AWQ_CHECK(entry.is_object(), "{}: __metadata__ must be an object of strings", path);
      for (auto& [k, v] : entry.items()) {
        AWQ_CHECK(v.is_string(), "{}: __metadata__[{}] must be a string", path, k);
        metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    AWQ_CHECK(entry.is_object() && entry.contains("dtype") && entry.contains("shape") &&
                  entry.contains("data_offsets"),
              "{}: tensor '{}': entry needs dtype, shape and data_offsets", path, name);
    TensorInfo t;
    t.name = name;
    t.file = path;
    const auto& jd = entry["dtype"];
    AWQ_CHECK(jd.is_string(), "{}: tensor '{}': dtype must be a string", path, name);
    const auto dt = dtype_from_name(jd.get<std::string>());
    AWQ_CHECK(dt.has_value(),
              "{}: tensor '{}': unknown dtype '{}' (expected one of F32, F16, BF16, F64, I64, I32, "
              "I16, I8, U8, BOOL)",
              path, name, jd.get<std::string>());
    t.dtype = *dt;
    const auto& js = entry["shape"];
    AWQ_CHECK(js.is_array(), "{}: tensor '{}': shape must be an array", path, name);
    uint64_t numel = 1;
    for (const auto& d : js) {
      AWQ_CHECK(d.is_number_integer() && d.get<int64_t>() >= 0,
                "{}: tensor '{}': shape {} has a negative or non-integer dimension", path, name,
                js.dump());
      const uint64_t v = d.get<uint64_t>();
      AWQ_CHECK(v == 0 || numel <= (uint64_t(1) << 62) / v, "{}: tensor '{}': shape {} overflows",
                path, name, js.dump());
      numel *= v;
      t.shape.push_back(int64_t(v));
    }
    const auto& jo = entry["data_offsets"];
    AWQ_CHECK(
        jo.is_array() && jo.size() == 2 && jo[0].is_number_unsigned() && jo[1].is_number_unsigned(),
        "{}: tensor '{}': data_offsets must be [begin, end] with non-negative integers", path,
        name);
    const uint64_t b = jo[0].get<uint64_t>(), e = jo[1].get<uint64_t>();
    AWQ_CHECK(b <= e, "{}: tensor '{}': data_offsets [{}, {}] end before begin", path, name, b, e);
    AWQ_CHECK(e <= data_size,
              "{}: tensor '{}': data_offsets [{}, {}] out of range: the data buffer has {} bytes "
              "(file truncated?)",
              path, name, b, e, data_size);
    const uint64_t expect = numel * dtype_size(t.dtype);
    AWQ_CHECK(e - b == expect,
              "{}: tensor '{}': shape {} of {} needs {} bytes but data_offsets [{}, {}] cover {}",
              path, name, t.shape_str(), dtype_name(t.dtype), expect, b, e, e - b);
    t.data = data_start + b;
    t.nbytes = size_t(e - b);
    auto [it, inserted] = tensors_.emplace(name, std::move(t));
    ranges.push_back({size_t(b), size_t(e), &it->first});
  }
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < ranges.size(); ++i) {
    AWQ_CHECK(ranges[i].begin >= ranges[i - 1].end || ranges[i].begin == ranges[i].end ||
                  ranges[i - 1].begin == ranges[i - 1].end,
              "{}: tensors '{}' [{}, {}] and '{}' [{}, {}] overlap", path, *ranges[i - 1].name,
              ranges[i - 1].begin, ranges[i - 1].end, *ranges[i].name, ranges[i].begin,
              ranges[i].end);
  }
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

std::vector<uint8_t> encode_floats(std::span<const float> values, DType dtype) {
  std::vector<uint8_t> out(values.size() * dtype_size(dtype));
  switch (dtype) {
    case DType::F32:
      std::memcpy(out.data(), values.data(), out.size());
      break;
    case DType::F16: {
      auto* p = reinterpret_cast<uint16_t*>(out.data());
      for (size_t i = 0; i < values.size(); ++i) p[i] = f32_to_f16(values[i]);
      break;
    }
    case DType::BF16: {
      auto* p = reinterpret_cast<uint16_t*>(out.data());
      for (size_t i = 0; i < values.size(); ++i) p[i] = f32_to_bf16(values[i]);
      break;
    }
    default:
      fail("cannot encode floats as {}", dtype_name(dtype));
  }
  return out;
}

void SafetensorsWriter::add(const std::string& name, DType dtype, std::vector<int64_t> shape,
                            std::vector<uint8_t> bytes) {
  int64_t numel = 1;
  for (auto d : shape) numel *= d;
  AWQ_CHECK(size_t(numel) * dtype_size(dtype) == bytes.size(),
            "writing tensor '{}': {} bytes do not match shape of {} elements", name, bytes.size(),
            numel);
  for (const auto& e : entries_)
    AWQ_CHECK(e.name != name, "writing tensor '{}': duplicate name", name);
  data_bytes_ += bytes.size();
  const size_t size = bytes.size();
  if (!spill_path_.empty()) {
    if (!spill_) {
      spill_ = std::make_unique<std::ofstream>(spill_path_, std::ios::binary | std::ios::trunc);
      AWQ_CHECK(spill_->good(), "{}: cannot create: {}", spill_path_, std::strerror(errno));
    }
    spill_->write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(size));
    AWQ_CHECK(spill_->good(), "{}: writing tensor '{}' ({} bytes) failed: {}", spill_path_, name,
              size, errno ? std::strerror(errno) : "stream error");
    bytes = std::vector<uint8_t>();
  }
  entries_.push_back({name, dtype, std::move(shape), std::move(bytes), size});
}

SafetensorsWriter::~SafetensorsWriter() {
  if (spill_) {
    spill_.reset();
    std::error_code ec;
    std::filesystem::remove(spill_path_, ec);  // best effort: the staged directory goes too
  }
}

void SafetensorsWriter::spill_to(const std::string& path) {
  AWQ_CHECK(entries_.empty(), "{}: spilling must start before the first tensor", path);
  spill_path_ = path;
}

void SafetensorsWriter::add_f32_as(const std::string& name, DType dtype, std::vector<int64_t> shape,
                                   std::span<const float> values) {
  add(name, dtype, std::move(shape), encode_floats(values, dtype));
}

std::vector<std::string> SafetensorsWriter::names() const {
  std::vector<std::string> n;
  for (const auto& e : entries_) n.push_back(e.name);
  return n;
}

void SafetensorsWriter::clear() {
  entries_.clear();
  data_bytes_ = 0;
  if (spill_) {
    spill_.reset();
    std::filesystem::remove(spill_path_);
  }
}

void SafetensorsWriter::write(const std::string& path) const {
  // nlohmann's ordered_json keeps insertion order, so the header lists tensors in file order.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  size_t offset = 0;
  for (const auto& e : entries_) {
    header[e.name] = {{"dtype", dtype_name(e.dtype)},
                      {"shape", e.shape},
                      {"data_offsets", {offset, offset + e.size}}};
    offset += e.size;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  write_file_atomic(path, [&](std::ofstream& out) {
    const uint64_t n = h.size();
    out.write(reinterpret_cast<const char*>(&n), 8);
    out.write(h.data(), std::streamsize(h.size()));
    if (!spill_) {
      for (const auto& e : entries_)
        out.write(reinterpret_cast<const char*>(e.bytes.data()), std::streamsize(e.bytes.size()));
      return;
    }
    spill_->flush();
    AWQ_CHECK(spill_->good(), "{}: writing failed: {}", spill_path_,
              errno ? std::strerror(errno) : "stream error");
    std::ifstream in(spill_path_, std::ios::binary);
    std::vector<char> buf(size_t(64) << 20);
    for (size_t left = data_bytes_; left > 0;) {
      const size_t n = std::min(left, buf.size());
      in.read(buf.data(), std::streamsize(n));
      AWQ_CHECK(size_t(in.gcount()) == n, "{}: {} bytes short of the {} written", spill_path_, left,
                data_bytes_);
      out.write(buf.data(), std::streamsize(n));
      left -= n;
    }
  });
}

}  // namespace awq
