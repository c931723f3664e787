// Importance matrices for llama.cpp's quantizer (llama-quantize --imatrix): per linear, the mean
// of the squared input activation of each input channel over the calibration tokens, computed
// with the model layer's own block forward (the same code calibration and evaluation run).
//
// File layout: llama.cpp's legacy imatrix .dat, as its imatrix tool saves it (little-endian):
//   i32 n_entries
//   n_entries × { i32 name_len, name bytes (no NUL), i32 ncall, i32 nval, f32 values[nval] }
//   i32 last_chunk, i32 dataset_len, dataset bytes
// llama.cpp stores values as mean(x²) · ncall and divides by ncall when it reads them; ncall is
// the number of chunks (one forward per chunk), so we do the same.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "model/model.h"

namespace awq::gguf {

struct ImatrixEntry {
  int32_t ncall = 0;
  std::vector<float> values;  // as stored: mean(x²) · ncall
};

struct Imatrix {
  std::map<std::string, ImatrixEntry> entries;  // "blk.N.attn_q.weight", ...
  int32_t chunks = 0;
  std::string dataset;
};

// Runs `chunks` (each a token sequence of the same length T, e.g. calibration blocks) through the
// model one at a time and collects every linear's input statistics under llama.cpp's tensor names.
// `on_chunk(i)` (if set) is called after each chunk, for progress.
Imatrix compute_imatrix(const Model& model, const std::vector<std::vector<int32_t>>& chunks,
                        const std::string& dataset,
                        const std::function<void(int64_t)>& on_chunk = {});

void write_imatrix(const std::string& path, const Imatrix& m);  // atomic
// Reads and validates a .dat file (counts and lengths inside the file); errors name the file.
Imatrix read_imatrix(const std::string& path);

}  // namespace awq::gguf
