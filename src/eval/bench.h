// awq bench: prompt (prefill) and decode speed of a model in each weight form, set against the
// machine's own memory bandwidth measured in the same run (DESIGN.md, performance model).
//
//   decode: n tokens fed one at a time through the KV cache (batch 1), from an empty context as
//           llama-bench's tg test does, or after d positions (--depth, llama-bench's -d); every
//           token reads every weight once and the keys/values of its context, so achieved
//           GB/s = bytes per token x tokens/s, and the roofline is bandwidth / bytes per token.
//           A sparse MoE layer is the exception: a token reads the router, the shared expert and
//           only its k routed experts (model/moe.h), so bytes per token count those (the active
//           parameters), not the resident experts.
//   prompt: one prefill of p tokens from an empty context (logits of the last token only, as
//           llama-bench's pp test); GFLOP/s = FLOPs of that prefill / its time (MoE: k experts'
//           MACs per token, as in decode).
// Each is the median of `repeats` runs after one short warm-up.
//
// The model is a real checkpoint (--model) or random weights of a known shape built directly in
// memory (--shape, no files): linears drawn from a uniform distribution, then kept as f32, f16,
// or quantized with RTN (4 bits, groups of g, asymmetric) and packed for the W4 kernels; MoE
// experts and shared experts likewise, MoE routers f32 (as Model keeps them). Embeddings and
// lm_head stay f16, as in an AWQ checkpoint (--lm-head q8: the lm_head as its int8 copy). --layers
// N keeps the first N blocks of a shape, each of its real size (a 48-layer MoE shape then fits in
// memory).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/mat.h"
#include "formats/dtype.h"
#include "model/block.h"
#include "model/config.h"

namespace awq {

// How the linears of the blocks are held (embeddings and lm_head: see above).
enum class BenchForm { F32, F16, W4, W4A8 };
const char* bench_form_name(BenchForm f);
BenchForm parse_bench_form(const std::string& s);  // "f32|f16|w4|w4a8", else awq::Error
bool is_w4(BenchForm f);                           // w4 or w4a8: the 4-bit kernels

// Bytes of weights one decoded token reads, by kind.
struct DecodeBytes {
  // The blocks' linears: packed W4 (nibbles + scales + zeros) or f16/f32; in a sparse MoE layer
  // the f32 router, the shared expert (and its gate) and k experts (moe_active_weight_bytes).
  int64_t linears = 0;
  int64_t norms_biases = 0;   // RMSNorm weights (f32) and linear biases (f32)
  int64_t lm_head = 0;        // the whole [vocab, hidden] output matrix
  int64_t embedding_row = 0;  // one row of the embedding table
  // The keys and values attention reads, averaged over the decoded tokens (0 in decode_bytes(),
  // which knows no context; bench_model sets it from the depth and token count).
  int64_t kv_cache = 0;
  int64_t total() const { return linears + norms_biases + lm_head + embedding_row + kv_cache; }
};

// A model held in memory for the bench, with its own KV-cache decoding. The arrays that the
// linears and the embedding point into are owned by `storage` (or by a checkpoint kept there).
struct BenchModel {
  ModelConfig cfg;
  BenchForm form = BenchForm::F16;
  std::vector<BlockWeights> blocks;
  std::vector<float> final_norm;
  Linear lm_head;
  DType embed_dtype = DType::F16;
  const uint8_t* embed = nullptr;  // [vocab, hidden] of embed_dtype
  // Untied float lm_head rows still held after lm_head_to_q8 (not read per token).
  int64_t lm_head_source_bytes = 0;
  std::vector<std::shared_ptr<const void>> storage;

  DecodeBytes decode_bytes() const;
  // Bytes of all the weights held (every expert of an MoE, not only the k a token reads; f16
  // embedding and lm_head once even when tied).
  int64_t resident_weight_bytes() const;
  // Keys and values read per decoded token, on average over n tokens after depth positions.
  int64_t kv_cache_bytes_per_token(int64_t depth, int64_t n) const;
  // FLOPs of a prefill of T tokens from position 0 (linears, causal attention, lm_head on the last
  // token only).
  double prefill_flops(int64_t T) const;
  // Switches every W4 linear between w4 (f32 activations) and w4a8 (int8 activations).
  void set_w4a8(bool on);
  // Replaces the lm_head by its RTN 4-bit form (groups of `group_size`, asymmetric), as a
  // what-if: AWQ checkpoints keep it f16, llama.cpp's Q4_0 files make it Q6_K.
  void quantize_lm_head(int group_size);
  // Replaces the lm_head by its run-time int8 copy (to_q8: per-32 f16 scales, int8 activations),
  // in any form; the embedding keeps reading its own rows.
  void lm_head_to_q8();
  // Stacks each block's q|k|v and gate|up W4 matrices into one (fuse_w4), as Model::load does
  // for W4, and every MoE expert's (and shared expert's) gate|up: decode then runs one kernel
  // call per group. Returns the number of groups fused.
  int fuse_w4_groups();
};

// The f32 weight w of tensor `name` as a linear in `form` (f16 rows in weight memory; W4: RTN
// in groups of `group_size`, asymmetric, packed); arrays it needs are appended to `storage`.
// No bias: the caller keeps its own.
Linear linear_in_form(Mat&& w, BenchForm form, int group_size, const std::string& name,
                      std::vector<std::shared_ptr<const void>>& storage);

// Every linear of block b as f16 rows (dense ones and every expert's; the router and the shared
// expert's gate stay f32): linears already f16 in the mapping are used in place, others converted.
void block_to_f16(BlockWeights& b, std::vector<std::shared_ptr<const void>>& storage);

// Random weights of `cfg`'s shape (seeded, bit-identical for any thread count). For W4/W4A8 the
// linears are RTN-quantized with groups of `group_size` (asymmetric) and packed. Each matrix is
// drawn in f32 and converted on its own, so no more than one matrix (an expert's, or the
// embedding) is ever held in f32. Router weights of scale 1/sqrt(hidden) give routing logits of
// about unit spread, so each token picks its k experts nearly uniformly.
BenchModel make_synthetic_bench_model(const ModelConfig& cfg, BenchForm form, int group_size,
                                      uint64_t seed);

// A checkpoint's weights in the given form: f16 rows used in place from the mapping (converted
// to f16 where the file holds another type), f32 copies, or 4 bits — an AWQ checkpoint's own codes,
// or a float checkpoint quantized in memory with RTN (groups of `group_size`, asymmetric).
// Embeddings and lm_head are read in place.
BenchModel make_checkpoint_bench_model(const std::string& dir, BenchForm form, int group_size);

// KV-cache decoding over a BenchModel: the same block code as Model::Session.
class BenchSession {
 public:
  BenchSession(const BenchModel& m, int64_t capacity);
  // Appends tokens at positions pos()..pos()+n-1 and returns the logits of the last one.
  std::vector<float> feed(std::span<const int32_t> tokens);
  int64_t pos() const { return pos_; }
  void reset() { pos_ = 0; }
  const BenchModel& model() const { return *m_; }

 private:
  const BenchModel* m_;
  int64_t pos_ = 0;
  std::vector<KvCache> cache_;
};

struct BenchOptions {
  std::string model_dir;         // one of model_dir and shape
  std::string shape;             // a synth preset (tools/synth.h)
  int64_t layers = 0;            // with shape: only its first N blocks (0: all)
  int threads = 0;               // 0: the pool's current size
  int64_t prompt = 512;          // p; 0 skips the prompt test
  int64_t decode = 128;          // n; 0 skips the decode test
  int64_t depth = 0;             // decode after this many positions of context (untimed prefill)
  std::vector<BenchForm> forms;  // empty: f16 and w4
  int group_size = 128;
  bool lm_head_w4 = false;  // W4 forms: lm_head quantized too (BenchModel::quantize_lm_head)
  // The lm_head as its int8 copy (BenchModel::lm_head_to_q8): on the w4a8 rows only (the run-time
  // default, LoadOptions::fastest: the default), on every row, or on none.
  enum class HeadQ8 { WithW4A8, Always, Never } lm_head_q8 = HeadQ8::WithW4A8;
  int repeats = 3;
  uint64_t seed = 1;
  int64_t bandwidth_bytes = 0;  // probe buffer; 0: the probe's default (1 GiB or AWQ_BW_BYTES)
  bool progress = false;        // one line per finished measurement on stderr
  bool breakdown = false;       // also time each kind of matrix product in a decode-like sweep
  bool fuse_w4 = true;          // W4 forms: q|k|v and gate|up fused (AWQ_FUSE=0 turns it off)
  // A source this layer cannot read itself (a GGUF file: its reader is in the layer above): the
  // model's config and a builder of each form. When set, model_dir only names it in the report.
  std::function<BenchModel(BenchForm)> build_model;
  ModelConfig build_model_cfg;
};

// Where a decoded token's time goes: each matrix product as decode calls it (a linear role, or a
// fused group such as "q|k|v"), summed over the blocks, and the lm_head, timed call by call in a
// sweep that streams the weights in decode order (so caches behave as in decode); "other" is the
// decode time per token minus those (attention, norms, RoPE, embedding, thread hand-offs).
struct DecodePart {
  // "q_proj", ..., "q|k|v", "gate|up", "lm_head", "other"; in sparse layers "router", "expert
  // gate|up", "expert down_proj" (k experts per layer), "shared gate|up", "shared down_proj".
  std::string name;
  int64_t bytes = 0;  // weights it reads per token (0 for "other")
  double ms = 0;      // per token
  double gbs() const { return ms > 0 ? double(bytes) / (ms * 1e6) : 0; }
};
std::vector<DecodePart> decode_breakdown(const BenchModel& m, int sweeps, double decode_tok_s);

struct BenchRow {
  std::string form;
  std::string lm_head;  // "f16" (or the stored type), "q8" or "w4": what this row's head read
  DecodeBytes bytes;
  double build_seconds = 0;
  std::vector<double> prompt_runs, decode_runs;  // tokens/s of each repeat
  double prompt_tok_s = 0, decode_tok_s = 0;     // medians (0 when not run)
  double prompt_gflops = 0;                      // prefill FLOPs x prompt_tok_s / p / 1e9
  double decode_gbs = 0;                         // bytes.total() x decode_tok_s / 1e9
  double roofline_fraction = 0;                  // decode_gbs / bandwidth
  double roofline_tok_s = 0;                     // bandwidth / bytes.total()
  // Process CPU time over the timed runs / (wall time x threads): well below 1 means the threads
  // were waiting for cores (a busy machine) or for each other, and the speeds are understated.
  double prompt_cpu_share = 0, decode_cpu_share = 0;
  std::vector<DecodePart> parts;  // with BenchOptions::breakdown
  int64_t resident_bytes = 0;     // BenchModel::resident_weight_bytes
};

struct BenchReport {
  std::string source;        // "shape tinyllama-1.1b" or the directory
  ModelConfig cfg;           // as benched (with --layers: that many layers)
  int64_t shape_layers = 0;  // the layers of the shape or checkpoint before --layers
  BenchOptions opts;
  int threads = 0;
  std::string isa, cpu;
  // Measured with `threads` threads before the rows, before every decode run and after the rows
  // (kernels::BandwidthProbe, 3 passes each); the roofline is the median of all of them. A VM's
  // bandwidth moves by tens of percent within minutes: probes taken in the same minutes as the
  // runs they judge, and their median, keep the fraction from moving with one unlucky reading.
  double bandwidth_gbs = 0, bandwidth_before_gbs = 0, bandwidth_after_gbs = 0;
  std::vector<double> bandwidth_probes;      // every reading, in order
  double load_before = -1, load_after = -1;  // 1-minute load average (/proc/loadavg), -1 unknown
  int cores = 0;                             // std::thread::hardware_concurrency()
  std::vector<BenchRow> rows;
};

// Runs every requested form in turn (each model built, measured and freed before the next; w4 and
// w4a8 share one packed model).
BenchReport run_bench(const BenchOptions& opts);

// Measures one already-built model (the tests use this on a tiny shape).
// `before_decode_run`, when set, runs before each timed decode run (run_bench probes the
// bandwidth there).
BenchRow bench_model(const BenchModel& m, const BenchOptions& opts, double bandwidth_gbs,
                     const std::function<void()>& before_decode_run = {});

double median(std::vector<double> v);
double load_average_1m();      // -1 when /proc/loadavg cannot be read
double process_cpu_seconds();  // user + system time of the whole process so far
std::string format_bench_report(const BenchReport& r);  // header lines and the table
nlohmann::json bench_report_json(const BenchReport& r);

}  // namespace awq
