#include "formats/checkpoint_writer.h"

#include <fmt/format.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "base/error.h"

namespace awq {
namespace fs = std::filesystem;

CheckpointWriter::CheckpointWriter(StagedDir& out, size_t max_shard_bytes)
    : out_(out), max_shard_bytes_(max_shard_bytes) {
  current_.set_metadata(
      "format", "pt");  // transformers rejects files whose metadata format is not pt/tf/flax/mlx
  // A shard's tensors wait on disk, not in memory, until the shard is written.
  current_.spill_to(out_.path("shard.spill").string());
}

void CheckpointWriter::add(const std::string& name, DType dtype, std::vector<int64_t> shape,
                           std::vector<uint8_t> bytes) {
  AWQ_CHECK(!finished_, "CheckpointWriter: add after finish");
  if (current_.count() > 0 && current_.data_bytes() + bytes.size() > max_shard_bytes_)
    flush_shard();
  total_bytes_ += bytes.size();
  current_.add(name, dtype, std::move(shape), std::move(bytes));
}

void CheckpointWriter::add_f32_as(const std::string& name, DType dtype, std::vector<int64_t> shape,
                                  std::span<const float> values) {
  add(name, dtype, std::move(shape), encode_floats(values, dtype));
}

void CheckpointWriter::flush_shard() {
  const size_t i = shard_names_.size();
  current_.write(out_.path(fmt::format("shard-{}.partial", i)).string());
  shard_names_.push_back(current_.names());
  current_.clear();
}

void CheckpointWriter::finish() {
  if (finished_) return;
  if (current_.count() > 0 || shard_names_.empty()) flush_shard();
  finished_ = true;
  const size_t n = shard_names_.size();
  if (n == 1) {
    fs::rename(out_.path("shard-0.partial"), out_.path("model.safetensors"));
    return;
  }
  nlohmann::ordered_json index;
  index["metadata"] = {{"total_size", total_bytes_}};
  nlohmann::ordered_json map = nlohmann::ordered_json::object();
  for (size_t i = 0; i < n; ++i) {
    const std::string name = fmt::format("model-{:05}-of-{:05}.safetensors", i + 1, n);
    fs::rename(out_.path(fmt::format("shard-{}.partial", i)), out_.path(name));
    for (const auto& t : shard_names_[i]) map[t] = name;
  }
  index["weight_map"] = map;
  write_text_file_atomic(out_.path("model.safetensors.index.json").string(), index.dump(2) + "\n");
}

}  // namespace awq
