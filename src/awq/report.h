// What a quantization run reports: per linear layer the chosen scale (α and mode), its search
// loss relative to round-to-nearest, clip statistics; time per stage; peak memory; the scale
// search's arithmetic rate beside this machine's sgemm rate.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "awq/search_result.h"

namespace awq {

struct StageTimes {
  double calib = 0, capture = 0, scale_search = 0, clip_search = 0, quantize = 0, write = 0,
         total = 0;
  double gptq = 0;  // of quantize: GPTQ's Gram matrices, factorizations and rounding
};

struct QuantizeReport {
  std::string method, format, model_dir, out_dir;
  int bits = 4, group_size = 128;
  bool zero_point = true;
  bool f16_scales = true;
  std::string scale_mode, scale_loss;
  int64_t screen_seqs = 0, finalists = 0;  // two-stage search (0: every candidate on all data)
  int64_t keep = 0;  // finalists scored on the second half of the data too (0: all, on all of it)
  int64_t scale_grid = 0;   // α grid points per mode
  int64_t clip_tokens = 0;  // as asked (0: every token for groups <= 1024)
  int64_t n_layers = 0;
  // Blocks taken from the resume stage of an interrupted run (resume.h), not searched again.
  int64_t resumed_blocks = 0;
  // Calibration (CalibBlocks): documents longer than the block were handled as calib_long says.
  std::string calib_long;
  int64_t calib_blocks = 0, calib_seqlen = 0, calib_docs = 0, calib_docs_too_long = 0,
          calib_pieces = 0, calib_tokens_read = 0, calib_tokens_dropped = 0;
  std::vector<BlockResult> blocks;
  // When each block processed here finished (seconds since the first block began) and the time
  // the progress bar then gave for the rest: how right the ETA was is checkable afterwards.
  struct BlockTime {
    int64_t layer = 0;
    double done_s = 0, eta_s = -1;
  };
  std::vector<BlockTime> block_times;
  StageTimes times;
  double search_flops = 0;   // of the inspected forwards
  double search_gflops = 0;  // search_flops / scale_search seconds / 1e9
  double sgemm_gflops = 0;   // 1024³ gemm_f32 probe in the same run
  // The candidate forwards' arithmetic that ran (--search-precision after the CPU check).
  std::string search_precision = "f32";
  int threads = 1;
  int64_t peak_rss_bytes = 0;
  // --act-dtype, and the most bytes the kept activations took after a block's capture: the next
  // block's input and the capture (in f32 also the captured outputs, which 16 bits recompute).
  std::string act_dtype = "f32";
  int64_t act_bytes = 0;
  int64_t output_bytes = 0;
  std::vector<std::string> warnings;

  nlohmann::ordered_json to_json() const;
  // The per-linear table and the totals, for the terminal.
  std::string format_table() const;
};

}  // namespace awq
