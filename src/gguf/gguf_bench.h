// `awq bench --model FILE.gguf`: a GGUF file's weights as a bench model, so the same file can be
// timed by both engines. W4/W4A8 run the Q4_0/Q4_1 tensors' own codes on the 4-bit kernels
// (other types as f32); F32 dequantizes everything; F16 dequantizes and rounds to f16 rows.
#pragma once
#include <string>

#include "eval/bench.h"

namespace awq::gguf {

BenchModel make_gguf_bench_model(const std::string& path, BenchForm form);

// Points `opts` at a GGUF file: sets model_dir (the name in the report), the config and the
// builder run_bench uses.
void set_gguf_bench_source(BenchOptions& opts, const std::string& path);

}  // namespace awq::gguf
