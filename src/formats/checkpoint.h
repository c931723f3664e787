// A Hugging Face model directory's weights: model.safetensors, or the shards listed by
// model.safetensors.index.json. Tensors stay in the mappings until asked for as f32.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "base/mat.h"
#include "formats/safetensors.h"

namespace awq {

class Checkpoint {
 public:
  // Opens <dir>/model.safetensors or <dir>/model.safetensors.index.json (every shard it names must
  // exist, and every tensor the index lists must be in the shard it names).
  static Checkpoint open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  bool has(const std::string& name) const;
  // The tensor, or an awq::Error "<dir>: tensor '<name>' not found".
  const TensorInfo& get(const std::string& name) const;
  // As get(), and checks the shape: "<file>: tensor 'x' has shape [a, b], expected [c, d]".
  const TensorInfo& get(const std::string& name, const std::vector<int64_t>& shape) const;
  std::vector<std::string> names() const;
  size_t total_file_bytes() const;
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }

  // f32 copies (any float dtype), shape-checked.
  Mat read_mat(const std::string& name, int64_t rows, int64_t cols) const;
  std::vector<float> read_vec(const std::string& name, int64_t n) const;

 private:
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorInfo*> index_;
};

}  // namespace awq
