#include "formats/checkpoint.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/files.h"
#include "base/mapped_file.h"

namespace awq {
namespace fs = std::filesystem;

Checkpoint Checkpoint::open(const std::string& dir) {
  Checkpoint c;
  c.dir_ = dir;
  const fs::path single = fs::path(dir) / "model.safetensors";
  const fs::path index = fs::path(dir) / "model.safetensors.index.json";
  if (fs::exists(single)) {
    c.files_.push_back(std::make_unique<SafetensorsFile>(single.string()));
    for (const auto& [name, t] : c.files_.back()->tensors()) c.index_[name] = &t;
    return c;
  }
  AWQ_CHECK(fs::exists(index),
            "{}: no model.safetensors or model.safetensors.index.json (is this a Hugging Face "
            "model directory?)",
            dir);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text_file(index.string()));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: invalid JSON: {}", index.string(), e.what());
  }
  AWQ_CHECK(j.contains("weight_map") && j["weight_map"].is_object(),
            "{}: missing object 'weight_map'", index.string());
  std::map<std::string, SafetensorsFile*> by_shard;
  for (auto& [name, shard] : j["weight_map"].items()) {
    AWQ_CHECK(shard.is_string(), "{}: weight_map['{}'] must be a file name", index.string(), name);
    const std::string file = shard.get<std::string>();
    AWQ_CHECK(file.find('/') == std::string::npos && file.find("..") == std::string::npos,
              "{}: weight_map['{}'] = '{}' must be a file in the same directory", index.string(),
              name, file);
    auto it = by_shard.find(file);
    if (it == by_shard.end()) {
      const fs::path p = fs::path(dir) / file;
      AWQ_CHECK(fs::exists(p), "{}: shard '{}' listed for tensor '{}' does not exist",
                index.string(), file, name);
      c.files_.push_back(std::make_unique<SafetensorsFile>(p.string()));
      it = by_shard.emplace(file, c.files_.back().get()).first;
    }
    const TensorInfo* t = it->second->find(name);
    AWQ_CHECK(t != nullptr, "{}: tensor '{}' is listed in the index but missing from shard {}",
              index.string(), name, file);
    c.index_[name] = t;
  }
  return c;
}

bool Checkpoint::has(const std::string& name) const {
  return index_.count(name) != 0;
}

const TensorInfo& Checkpoint::get(const std::string& name) const {
  auto it = index_.find(name);
  AWQ_CHECK(it != index_.end(), "{}: tensor '{}' not found", dir_, name);
  return *it->second;
}

static std::string shape_string(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

const TensorInfo& Checkpoint::get(const std::string& name,
                                  const std::vector<int64_t>& shape) const {
  const TensorInfo& t = get(name);
  AWQ_CHECK(t.shape == shape, "{}: tensor '{}' has shape {}, expected {}", t.file, name,
            t.shape_str(), shape_string(shape));
  return t;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> n;
  for (const auto& [k, v] : index_) n.push_back(k);
  return n;
}

size_t Checkpoint::total_file_bytes() const {
  size_t s = 0;
  for (const auto& f : files_) s += f->file_size();
  return s;
}

Mat Checkpoint::read_mat(const std::string& name, int64_t rows, int64_t cols) const {
  const TensorInfo& t = get(name, {rows, cols});
  Mat m(rows, cols);
  convert_to_f32(t.dtype, t.data, rows * cols, m.data.data());
  drop_mapped_pages(t.data, t.nbytes);  // copied out: the mapping's pages need not stay resident
  return m;
}

std::vector<float> Checkpoint::read_vec(const std::string& name, int64_t n) const {
  const TensorInfo& t = get(name, {n});
  std::vector<float> v(static_cast<size_t>(n));
  convert_to_f32(t.dtype, t.data, n, v.data());
  return v;
}

}  // namespace awq
