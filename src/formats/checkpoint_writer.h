// Writes a Hugging Face model directory's weights: one model.safetensors, or shards of at most
// `max_shard_bytes` named model-0000i-of-0000n.safetensors plus model.safetensors.index.json, as
// huggingface_hub's save_torch_state_dict does. A shard's tensors are appended to a spill file in
// the staged directory as they come and copied behind the header when the shard is written, so
// memory stays one tensor, not one shard (5 GB). Files go into a StagedDir (atomic as a whole).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/files.h"
#include "formats/safetensors.h"

namespace awq {

class CheckpointWriter {
 public:
  CheckpointWriter(StagedDir& out, size_t max_shard_bytes = size_t(5) * 1000 * 1000 * 1000);
  void add(const std::string& name, DType dtype, std::vector<int64_t> shape,
           std::vector<uint8_t> bytes);
  void add_f32_as(const std::string& name, DType dtype, std::vector<int64_t> shape,
                  std::span<const float> values);
  // Writes the last shard, renames shards to their final "-of-N" names and writes the index.
  void finish();
  size_t total_bytes() const { return total_bytes_; }

 private:
  void flush_shard();
  StagedDir& out_;
  size_t max_shard_bytes_;
  SafetensorsWriter current_;
  std::vector<std::vector<std::string>> shard_names_;
  size_t total_bytes_ = 0;
  bool finished_ = false;
};

}  // namespace awq
