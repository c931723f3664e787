// Resumable quantization. While `awq quantize` searches, every finished block is kept in
// "<out>.resume/" beside the output:
//
//   fingerprint.json   everything that decides the output's bytes (resume_fingerprint)
//   block-NNNN.json    block N's search result (scales, clips, and what the report shows)
//   activations.bin    the calibration activations entering the next block (f32, [tokens, hidden])
//   block-NNNN.q       GPTQ runs only: block N's quantized linears (codes, scales, zeros), which
//                      cannot be rebuilt without that block's calibration inputs
//
// Each file is written atomically and sealed (a trailer with its length and a hash), so a kill at
// any instant (SIGKILL, OOM, power loss: no clean-up code runs) leaves either the old file or the
// new one, and a torn or damaged file is recognised. A re-run of the same command finds the
// longest prefix of blocks it can trust, rebuilds their quantized tensors from the kept results
// with the same code as --load-search (byte-identical, and far cheaper than a search; the
// quantized tensors themselves are not kept, which would double the disk a large model needs,
// except for GPTQ, whose rounding needs the block's calibration inputs),
// takes the activations and searches on from the first unfinished block. A stage made by a
// different command, or damaged, is reported and moved aside to "<out>.resume.stale" (so an
// accidental option change costs nothing: move it back), never mixed in. The stage is removed
// once the output is committed.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "awq/search_result.h"
#include "base/mat.h"
#include "quant/quantized_matrix.h"

namespace awq {

struct QuantizeOptions;
struct CalibBlocks;
class Checkpoint;

// What decides the output's bytes, as named fields (so that a mismatch can say which one
// differs): the tool (version and a hash of its executable), the model's files (each
// safetensors file's size, header and a sample of its data; config.json, the index and the
// tokenizer files in full), the calibration tokens, and every option that changes the output.
// Thread counts do not matter (the output is the same for any) and are left out.
nlohmann::ordered_json resume_fingerprint(const QuantizeOptions& o, const Checkpoint& ck,
                                          const CalibBlocks* calib,
                                          const std::vector<std::string>& skipped_groups);

// "key (kept: A; now: B), ..." for every field where two fingerprints differ.
std::string fingerprint_difference(const nlohmann::ordered_json& kept,
                                   const nlohmann::ordered_json& now);

// A block's quantized linears (the dense ones in kAllLinearRoles order, then the experts') as
// the resume stage and a GPTQ shard keep them: dir/block-NNNN.q, sealed.
void write_quantized_file(const std::string& dir, int64_t layer,
                          const std::vector<QuantizedMatrix>& q,
                          const std::vector<QuantizedMatrix>& q_experts);
void read_quantized_file(const std::string& dir, int64_t layer, std::vector<QuantizedMatrix>& q,
                         std::vector<QuantizedMatrix>& q_experts);

class ResumeStage {
 public:
  // Opens the stage of `out_dir` (the caller holds the output's lock). With `resume` and a stage
  // of the same fingerprint, the trusted blocks are loaded; otherwise an existing stage is set
  // aside (the reason goes to messages()) and a fresh one is started.
  // With `keeps_quantized` (GPTQ) every kept block also has its quantized linears.
  ResumeStage(const std::string& out_dir, const nlohmann::ordered_json& fingerprint,
              const SearchHeader& header, const Architecture& arch, bool resume,
              bool keeps_quantized = false);

  // Blocks 0 .. kept_blocks() - 1 are finished; the search goes on from kept_blocks().
  int64_t kept_blocks() const { return int64_t(blocks_.size()); }
  const BlockResult& block(int64_t layer) const { return blocks_.at(size_t(layer)); }
  // The activations entering block kept_blocks() (0 < kept_blocks() < num_layers), moved out.
  Mat take_activations();

  // A kept block's quantized linears (keeps_quantized): the dense ones in kAllLinearRoles order,
  // then the experts'.
  const std::vector<QuantizedMatrix>& quantized(int64_t layer) const {
    return quantized_.at(size_t(layer));
  }
  const std::vector<QuantizedMatrix>& quantized_experts(int64_t layer) const {
    return quantized_experts_.at(size_t(layer));
  }

  // Keeps block b.layer's quantized linears (keeps_quantized), its result, then the activations
  // entering the next block (null after the last block), each atomically and in that order: a
  // kept result means its linears are kept.
  void keep_block(const BlockResult& b, const Mat* next_input,
                  const std::vector<QuantizedMatrix>* q = nullptr,
                  const std::vector<QuantizedMatrix>* q_experts = nullptr);
  void remove();  // the output is committed: the stage has served

  const std::string& dir() const { return dir_; }
  // What opening found: "resuming: ...", "set aside ...: <why>".
  const std::vector<std::string>& messages() const { return messages_; }

 private:
  bool load(const nlohmann::ordered_json& fingerprint, std::string* why);
  void set_aside(const std::string& why);
  void start(const nlohmann::ordered_json& fingerprint);

  std::string dir_;
  SearchHeader header_;
  const Architecture& arch_;
  std::vector<BlockResult> blocks_;
  bool keeps_quantized_ = false;
  std::vector<std::vector<QuantizedMatrix>> quantized_, quantized_experts_;
  Mat activations_;
  std::vector<std::string> messages_;
};

// "block-NNNN.json" in `dir`, sealed: one block's search result in full (block_to_json).
std::string block_file_name(int64_t layer);
void write_block_file(const std::string& dir, const BlockResult& b);
// Reads and checks it (seal, JSON, layer); an awq::Error names the file.
BlockResult read_block_file(const std::string& dir, int64_t layer, const SearchHeader& header,
                            const Architecture& arch);

// A file whose last 32 bytes seal it: "awq-seal", the content's length and hash, "end-seal".
// read_sealed_file returns the content, or an awq::Error naming the file and what is wrong.
void write_sealed_file(const std::string& path, std::initializer_list<std::string_view> parts);
std::string read_sealed_file(const std::string& path);

}  // namespace awq
