// Many machines, one model: with full-precision propagation (the default) block L's search sees
// only the original weights and the calibration, so the blocks split into N contiguous ranges
// that N machines search at once. `awq quantize --shard K/N --out SHARD` forwards the calibration
// through the blocks before its range (cheap: no search), searches its range and writes a shard
// directory in the resume stage's sealed form:
//
//   shard.json        {"shard": K, "of": N, "layers": [first, end), "model": DIR, "fingerprint"}
//   block-NNNN.json   the search result of each block of the range
//   block-NNNN.q      GPTQ methods: each block's quantized linears (GPTQ needs the block's
//                     calibration inputs, which only the shard had)
//
// `awq merge --out OUT SHARD...` checks that the shards come from one command (the same
// fingerprint: tool, model files, calibration tokens, options), that together they hold every
// block exactly once, and that the model it reads is the one they searched; then it writes the
// output by the --load-search path: byte for byte what one `awq quantize` run writes.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "awq/search_result.h"

namespace awq {

struct QuantizeOptions;

struct ShardRange {
  int64_t first = 0, end = 0;  // layers [first, end)
};

// "K/N" → {K, N}; anything else (K outside 1..N, N < 1) is an awq::Error.
std::pair<int, int> parse_shard(const std::string& s);
// Shard K of N (1-based) of `num_layers` blocks: contiguous, sizes differing by at most one.
ShardRange shard_range(int k, int n, int64_t num_layers);

void write_shard_manifest(const std::string& path, int k, int n, ShardRange r,
                          const std::string& model_dir, const nlohmann::ordered_json& fingerprint);

// The options of the command that made the shards (from the first one's fingerprint): what the
// replay needs to write the same bytes. `model_dir` empty: the model directory the shard records.
QuantizeOptions merge_options(const std::vector<std::string>& shards, const std::string& model_dir,
                              const std::string& out_dir);

// Every block of the shards, in layer order, after the checks above; `now` is the merge's own
// fingerprint of the tool and the model (resume_fingerprint without calibration).
std::vector<BlockResult> load_shards(const std::vector<std::string>& shards,
                                     const SearchHeader& header, const Architecture& arch,
                                     const nlohmann::ordered_json& now);

// The shard directory holding each layer (after load_shards has checked them).
std::vector<std::string> shard_dir_of_layers(const std::vector<std::string>& shards,
                                             int64_t num_layers);

}  // namespace awq
