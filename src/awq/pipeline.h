// `awq quantize` as a library call: from a Hugging Face model directory and calibration text to a
// quantized checkpoint, one decoder block at a time (DESIGN.md, "The pipeline"):
//
//   embed(calibration blocks) = X
//   for each block: load as f32 (optionally zero-pad the MLP), run it unmodified capturing every
//     linear's input (its output is the next block's X unless --propagate quantized), search the
//     scales of all groups, fold them, search and apply clipping, quantize, hand to the writer.
//
// Memory is one block in f32, the captured activations and the output writer's current shard.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "awq/act_store.h"
#include "awq/calib.h"
#include "awq/report.h"
#include "awq/scales.h"
#include "quant/clip_search.h"
#include "quant/gptq.h"
#include "quant/quant_spec.h"

namespace awq {

// awq: AWQ's scales and clipping, then round to nearest. rtn: round to nearest only. gptq: GPTQ's
// error-compensating rounding (quant/gptq.h) of the original weights. awq-gptq: AWQ's scales and
// clipping, then GPTQ's rounding of the scaled weights with the scaled inputs' Gram matrices.
enum class QuantMethod { Awq, Rtn, Gptq, AwqGptq };
enum class OutputFormat { AutoAwq, FakeQuant };
// The arithmetic of the scale search's candidate forwards (--search-precision): f32, or x and W
// rounded to bfloat16 with f32 sums (kernels::gemm_f32_in_bf16; AVX512-BF16 only).
enum class SearchPrecision { F32, Bf16 };
SearchPrecision parse_search_precision(const std::string& s);  // "f32" | "bf16"
const char* search_precision_name(SearchPrecision p);
// What a search asked for `asked` runs: bf16 needs kernels::bf16_products_available(), else f32.
SearchPrecision effective_search_precision(SearchPrecision asked);

struct QuantizeOptions {
  std::string model_dir, out_dir;
  std::string calib;  // FILE | DIR | FILE.jsonl[:field]
  QuantMethod method = QuantMethod::Awq;
  QuantSpec spec;  // 4 bits, group 128, zero point
  ScaleMode scale_mode = ScaleMode::Both;
  bool clip = true;
  // Score each scale candidate with the clipping it will get (the default: the loss then measures
  // the weights that are written), or plainly as Q(W·s)/s like AutoAWQ and llm-awq (false). See
  // ScaleSearchOptions::clip_aware. Without clipping the two are the same.
  bool clip_aware_search = true;
  // Clipping candidates: asymmetric bounds by default (each side of a group shrunk on its own;
  // with --symmetric quantization they fall back to AutoAWQ's symmetric ones).
  ClipOptions clip_opts = {20, 0.5f, true};
  GptqOptions gptq;  // --method gptq / awq-gptq
  // Tokens the clip search samples (strided); <= 0 (default): all of them where groups are at most
  // 1024 wide, 512 (the reference's number) for wider ones. See ScaleSearchOptions::clip_tokens.
  int64_t clip_tokens = 0;
  int scale_grid = 20;  // α grid points per scale mode
  // f32 or bf16 products in the scale search's candidate forwards (only there: calibration, the
  // reference outputs, the clip search, GPTQ and the written weights stay f32).
  SearchPrecision search_precision = SearchPrecision::F32;
  // Two-stage scale search (ScaleSearchOptions::screen_seqs): every candidate is scored on this
  // fraction of the calibration sequences (at least 4, every k-th), the `scale_finalists` best and
  // the identity on more (see scale_keep). 1 scores every candidate on everything (the reference's
  // search).
  double scale_screen = 0.04;
  int scale_finalists = 4;
  // Finalists scored on the second half of the sequences too (the rest only on the first half;
  // ScaleSearchOptions::keep). 0: every finalist on all of them.
  int scale_keep = 3;
  // Scaling groups (Architecture::scaling_groups names: "attn.qkv", "attn.o", "mlp.gate_up",
  // "mlp.down") turned off or on against the family's default (ScalingGroup::off_by_default).
  std::vector<std::string> groups_off, groups_on;
  // MoE: an expert that receives fewer calibration tokens than this is calibrated on every token
  // passed through it (moe_search.h); 0 turns the fallback off (an expert with no token is then
  // plain RTN).
  int64_t moe_min_tokens = 16;
  int64_t calib_samples = 128, calib_seqlen = 512;
  // A document longer than calib_seqlen: split (default), skip (AutoAWQ) or truncate (calib.h).
  CalibLong calib_long = CalibLong::Split;
  std::optional<uint64_t> shuffle_seed;
  bool propagate_quantized = false;
  // Storage of the activations kept between steps (the next block's input, the captured linear
  // inputs): f32, or rounded to bf16/f16 to halve a large block's memory (act_store.h).
  ActDtype act_dtype = ActDtype::F32;
  OutputFormat format = OutputFormat::AutoAwq;
  bool no_quantize = false;  // fake-quant only: fold scales and clipping, keep weights unrounded
  int64_t pad_intermediate = 0;  // 0: off; else pad the MLP width up to a multiple of this
  std::string save_search, load_search, report_path;
  // Keep every finished block beside the output and, when a stage of the same command exists,
  // continue from it (resume.h); false (--no-resume): set any stage aside and start over.
  bool resume = true;
  // --shard K/N (shard.h): search only the K-th of N ranges of blocks and write them as a shard
  // directory to out_dir (0/0: the whole model).
  int shard_index = 0, shard_count = 0;
  // awq merge: the shard directories whose blocks are replayed instead of searched.
  std::vector<std::string> merge_shards;
  bool progress = true;  // progress bar on a terminal
  bool quiet = false;    // no summary on stdout
  // Tests: calibration tokens given directly (no tokenizer, no text); null in normal use.
  const CalibBlocks* calib_tokens = nullptr;
};

// Runs the whole pipeline, writes opts.out_dir atomically and returns what happened. Every
// problem with the inputs or options is an awq::Error raised before any output exists. A search
// keeps its finished blocks in "<out>.resume" (resume.h) until the output is committed; a run
// stopped by a signal (awq::Interrupted, inside an InterruptScope) says what it kept.
QuantizeReport quantize_model(const QuantizeOptions& opts);

// The scaling groups the search skips: the family's default-off groups and opts.groups_off, minus
// opts.groups_on. An unknown name (or one in both lists) is an awq::Error listing the groups.
std::vector<std::string> skipped_groups(const Architecture& arch, const QuantizeOptions& opts);

// Parses "autoawq" / "fake-quant", "awq" / "rtn" / "gptq" / "awq-gptq", "fp" / "quantized".
OutputFormat parse_output_format(const std::string& s);
QuantMethod parse_method(const std::string& s);
const char* method_name(QuantMethod m);
// Methods that search AWQ scales, and those that round with GPTQ.
bool uses_awq_scales(QuantMethod m);
bool uses_gptq(QuantMethod m);
bool parse_propagate(const std::string& s);  // true for "quantized"

}  // namespace awq
