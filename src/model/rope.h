// Rotary position embeddings as Hugging Face computes them (families.md §1,
// transformers' modeling_rope_utils.py): the inverse frequencies of every rope_type
// (default, linear, dynamic, llama3, yarn, longrope) and the attention factor that multiplies
// cos and sin, for a rotary width that may be less than the head (partial_rotary_factor).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace awq {

// config.json's rope_scaling, parsed and validated (errors name the file and key).
struct RopeScaling {
  std::string type = "default";  // default | linear | dynamic | llama3 | yarn | longrope
  double factor = 1.0;
  double low_freq_factor = 1.0, high_freq_factor = 4.0;  // llama3
  int64_t original_max_position_embeddings = 0;          // llama3, yarn, longrope (0: absent)
  double beta_fast = 32.0, beta_slow = 1.0;              // yarn
  double mscale = 0.0, mscale_all_dim = 0.0;             // yarn (0: absent)
  double attention_factor = 0.0;                         // yarn, longrope (0: derived)
  std::vector<double> short_factor, long_factor;         // longrope, rotary_dim/2 each

  bool is_default() const { return type == "default"; }
  // rope_scaling (null or absent: default). top_level_original_max: Phi-3's top-level
  // original_max_position_embeddings (0 if absent), which longrope uses.
  static RopeScaling from_json(const nlohmann::json& rope_scaling, int64_t rotary_dim,
                               int64_t top_level_original_max, const std::string& src);
  nlohmann::json to_json() const;  // as config.json writes it (null for default)
};

// What one attention layer rotates with.
struct RopeSpec {
  int64_t rotary_dim = 0;  // the first rotary_dim dimensions of each head rotate
  double theta = 10000.0;  // rope_theta (or Gemma-3's rope_local_base_freq on local layers)
  int64_t max_position_embeddings = 2048;
  RopeScaling scaling;
};

// cos/sin tables for positions [0, n_pos), rotary_dim/2 frequencies each, already multiplied by
// the attention factor (as HF multiplies both).
struct RotaryTable {
  int64_t rotary_dim = 0, n_pos = 0;
  std::vector<double> inv_freq;  // [rotary_dim/2]
  double attention_factor = 1.0;
  std::vector<float> cos, sin;  // [n_pos, rotary_dim/2]
  const float* cos_at(int64_t pos) const { return cos.data() + pos * (rotary_dim / 2); }
  const float* sin_at(int64_t pos) const { return sin.data() + pos * (rotary_dim / 2); }
};

// The inverse frequencies and attention factor for a forward whose positions end at seq_len - 1
// (dynamic and longrope depend on it: HF recomputes them when the sequence outgrows
// max_position_embeddings / original_max_position_embeddings).
void rope_frequencies(const RopeSpec& spec, int64_t seq_len, std::vector<double>& inv_freq,
                      double& attention_factor);

// A shared, immutable table for `spec` covering at least positions [0, seq_len) (cached).
std::shared_ptr<const RotaryTable> rotary_table(const RopeSpec& spec, int64_t seq_len);
size_t rotary_table_cache_entries();  // tables the cache holds now (for tests)

}  // namespace awq
