// awq quantize: calibrate, search AWQ scales and clipping, quantize, write a checkpoint.
#include <fmt/format.h>

#include <filesystem>
#include <tuple>
#include <vector>

#include "awq/pipeline.h"
#include "awq/shard.h"
#include "base/error.h"
#include "base/interrupt.h"
#include "cli/commands.h"
#include "cli/mpi_world.h"

namespace awq::cli {
namespace {

// --mpi: shard rank+1 of size into "<out>.mpi/<rank+1>", wait for every rank, merge on rank 0.
void quantize_mpi(const QuantizeOptions& o) {
  AWQ_CHECK(o.shard_count == 0, "--mpi shares the blocks out itself; drop --shard");
  const MpiWorld world;
  std::string base = o.out_dir;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  base += ".mpi";
  std::vector<std::string> shards;
  for (int k = 1; k <= world.size(); ++k) shards.push_back(fmt::format("{}/{}", base, k));
  QuantizeOptions s = o;
  s.shard_index = world.rank() + 1;
  s.shard_count = world.size();
  s.out_dir = shards[size_t(world.rank())];
  s.report_path.clear();
  s.save_search.clear();
  s.quiet = world.rank() != 0;
  s.progress = o.progress && world.rank() == 0;
  bool ok = true;
  try {
    quantize_model(s);
  } catch (const Error& e) {
    fmt::print(stderr, "awq: error: rank {} (shard {}/{}): {}\n", world.rank(), s.shard_index,
               s.shard_count, e.what());
    ok = false;
  }
  if (!world.all(ok))
    fail("--mpi: a shard failed (its message is above); {} is not written", o.out_dir);
  ok = true;
  if (world.rank() == 0) {
    try {
      QuantizeOptions m = merge_options(shards, o.model_dir, o.out_dir);
      m.report_path = o.report_path;
      m.save_search = o.save_search;
      m.quiet = o.quiet;
      m.progress = o.progress;
      const QuantizeReport r = quantize_model(m);
      std::error_code ec;
      std::filesystem::remove_all(base, ec);
      fmt::print("{}", r.format_table());
      fmt::print("wrote {} from {} ranks ({}, {}-bit, group {}{})\n", o.out_dir, world.size(),
                 r.format, r.bits, r.group_size, r.zero_point ? "" : ", symmetric");
    } catch (const Error& e) {
      fmt::print(stderr, "awq: error: rank 0 (merge): {}\n", e.what());
      ok = false;
    }
  }
  if (!world.all(ok)) fail("--mpi: the merge failed (its message is above)");
}

struct QuantizeArgs {
  QuantizeOptions opt;
  std::string scale_dtype = "auto";
  std::string method = "awq", scale_mode = "both", propagate = "fp", format = "autoawq",
              scale_loss = "clipped", calib_long = "split", search_precision = "f32";
  std::string clip_bounds = "asymmetric";
  std::string act_dtype = "f32";
  bool symmetric = false, no_clip = false, no_resume = false, mpi = false;
  int64_t shuffle = -1;
  std::string shard;
  int threads = 0;
};

Registration reg([](CLI::App& app) {
  auto a = std::make_shared<QuantizeArgs>();
  auto* sub = app.add_subcommand("quantize", "Quantize a model with AWQ (or round-to-nearest)");
  sub->add_option("--model", a->opt.model_dir,
                  "Hugging Face model directory (input, never modified)")
      ->required();
  sub->add_option("--out", a->opt.out_dir, "Output directory (written atomically)")->required();
  sub->add_option(
      "--calib", a->opt.calib,
      "Calibration text: FILE, DIR or FILE.jsonl[:field]; documents split on <|endoftext|>, "
      "blank lines or JSON lines");
  sub->add_option("--method", a->method,
                  "awq (default) | rtn (round-to-nearest baseline) | gptq (GPTQ's "
                  "error-compensating rounding) | awq-gptq (AWQ's scales and clipping, then GPTQ)")
      ->check(CLI::IsMember({"awq", "rtn", "gptq", "awq-gptq"}));
  sub->add_option("--gptq-damp", a->opt.gptq.damp,
                  "GPTQ: fraction of the mean Hessian diagonal added to it (default 0.01)")
      ->check(CLI::Range(0.0, 1.0));
  sub->add_flag("--act-order", a->opt.gptq.act_order,
                "GPTQ: quantize input channels in order of decreasing activation energy, with "
                "static groups (so the AutoAWQ layout, which has no g_idx, holds the result)");
  sub->add_option("--bits", a->opt.spec.bits, "Weight bits, 2..8 (default 4)");
  sub->add_option(
      "--group-size", a->opt.spec.group_size,
      "Inputs per quantization group: 32, 64, 128 (default), any divisor of every width, or -1 "
      "(one group per row)");
  sub->add_flag("--symmetric", a->symmetric, "Symmetric quantization (no zero point)");
  sub->add_option("--scale-mode", a->scale_mode,
                  "x (llm-awq) | duo (AutoAWQ) | both (default: both grids, the best of either)")
      ->check(CLI::IsMember({"x", "duo", "both"}));
  sub->add_option("--search-precision", a->search_precision,
                  "Products of the scale search's candidates: f32 (default) | bf16 (x and W "
                  "rounded to bfloat16, f32 sums; needs AVX512-BF16, else f32 with a warning)")
      ->check(CLI::IsMember({"f32", "bf16"}));
  sub->add_option("--scale-screen", a->opt.scale_screen,
                  "Score every scale candidate on this fraction of the calibration sequences "
                  "first (at least 4), then the best --scale-finalists and the identity on more "
                  "(see --scale-keep) (default 0.04; 1: every candidate on everything, as the "
                  "reference)");
  sub->add_option("--scale-finalists", a->opt.scale_finalists,
                  "Candidates that pass the screening, scored on the first half of the "
                  "calibration sequences (default 4)");
  sub->add_option("--scale-keep", a->opt.scale_keep,
                  "Finalists scored on the first half of the sequences, then only the best this "
                  "many and the identity on the second (default 3; 0: every finalist on all the "
                  "data)");
  sub->add_option("--scale-dtype", a->scale_dtype,
                  "Precision of the group scales the codes are chosen with: auto (default: f16 for "
                  "--format autoawq, which stores f16 scales; f32 for fake-quant, as the reference "
                  "computes) | f16 | f32")
      ->check(CLI::IsMember({"auto", "f16", "f32"}));
  sub->add_option("--group-off", a->opt.groups_off,
                  "Scaling group not to search or scale (repeatable): attn.qkv, attn.o, "
                  "mlp.gate_up, mlp.down (e.g. attn.qkv for Gemma-3, as llm-compressor does)");
  sub->add_option("--group-on", a->opt.groups_on,
                  "Scaling group to search although the family leaves it off by default "
                  "(repeatable)");
  sub->add_flag("--no-clip", a->no_clip, "Skip the clipping search");
  sub->add_option("--clip-bounds", a->clip_bounds,
                  "Clipping candidates: asymmetric (default: each side of a group shrunk on its "
                  "own, [min·f, max·f']; with a zero point) | symmetric (±max|w|·f, as AutoAWQ)")
      ->check(CLI::IsMember({"symmetric", "asymmetric"}));
  sub->add_option("--clip-tokens", a->opt.clip_tokens,
                  "Calibration tokens the clipping search samples, every k-th (default 0: all of "
                  "them for groups up to 1024 wide, 512 for wider; the reference samples 512)");
  sub->add_option("--scale-grid", a->opt.scale_grid,
                  "Points of the alpha grid per scale mode (default 20: alpha = 0, 0.05 .. 0.95)")
      ->check(CLI::Range(1, 1000));
  sub->add_option(
         "--scale-loss", a->scale_loss,
         "How scale candidates are scored: clipped (default: Q(clip(W·s))/s, the weights that are "
         "written) | plain (Q(W·s)/s, exactly AutoAWQ / llm-awq)")
      ->check(CLI::IsMember({"clipped", "plain"}));
  sub->add_option("--calib-samples", a->opt.calib_samples,
                  "Documents to take, each piece of a split one counted (default 128)");
  sub->add_option("--calib-seqlen", a->opt.calib_seqlen,
                  "Tokens per calibration block (default 512)");
  sub->add_option("--calib-long", a->calib_long,
                  "A document longer than --calib-seqlen: split (default: consecutive pieces of "
                  "that length, each counted as a sample) | skip (AutoAWQ, llm-awq) | truncate "
                  "(its first --calib-seqlen tokens, llm-compressor)")
      ->check(CLI::IsMember({"split", "skip", "truncate"}));
  sub->add_option("--shuffle", a->shuffle,
                  "Take documents in a random order with this seed (default: file order)");
  sub->add_option("--propagate", a->propagate,
                  "Next block's calibration input: fp (unmodified block, the reference's choice) | "
                  "quantized")
      ->check(CLI::IsMember({"fp", "quantized"}));
  sub->add_option("--act-dtype", a->act_dtype,
                  "Storage of the calibration activations kept between steps (block inputs and "
                  "outputs, every linear's captured input): f32 (default) | bf16 | f16; 16 bits "
                  "halve a large block's memory, the arithmetic stays f32")
      ->check(CLI::IsMember({"f32", "bf16", "f16"}));
  sub->add_option("--format", a->format,
                  "autoawq (GEMM layout for transformers/vLLM, 4-bit) | fake-quant (f16 with "
                  "dequantized weights)")
      ->check(CLI::IsMember({"autoawq", "fake-quant"}));
  sub->add_flag("--no-quantize", a->opt.no_quantize,
                "With --format fake-quant: fold scales and clipping but keep the weights unrounded "
                "(input for "
                "another quantizer, e.g. llama.cpp's)");
  sub->add_option("--pad-intermediate", a->opt.pad_intermediate,
                  "Zero-pad the MLP width to a multiple of M (function-preserving)");
  sub->add_option("--moe-min-tokens", a->opt.moe_min_tokens,
                  "MoE: experts with fewer routed calibration tokens than this are calibrated on "
                  "every token passed through them (default 16; 0 = plain RTN for experts with no "
                  "token)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--save-search", a->opt.save_search, "Write the chosen scales and clips (JSON)");
  sub->add_option("--load-search", a->opt.load_search,
                  "Apply saved scales and clips instead of searching");
  sub->add_flag("--no-resume", a->no_resume,
                "Start over: set aside the blocks an interrupted run of this output kept "
                "(<out>.resume), instead of continuing from them");
  sub->add_option("--shard", a->shard,
                  "K/N: search only the K-th of N ranges of blocks and write a shard directory to "
                  "--out (run the N shards anywhere, then awq merge)");
  sub->add_flag("--mpi", a->mpi,
                "Under mpirun: every rank searches its share of the blocks (as --shard), rank 0 "
                "merges; --out and the model on a file system every rank shares");
  sub->add_option("--report", a->opt.report_path,
                  "Write a JSON report (choices, losses, timings, memory)");
  add_threads_option(sub, &a->threads);
  set_run(sub, [a] {
    apply_threads(a->threads);
    QuantizeOptions& o = a->opt;
    o.method = parse_method(a->method);
    o.scale_mode = parse_scale_mode(a->scale_mode);
    o.search_precision = parse_search_precision(a->search_precision);
    o.propagate_quantized = parse_propagate(a->propagate);
    o.act_dtype = parse_act_dtype(a->act_dtype);
    o.calib_long = parse_calib_long(a->calib_long);
    o.format = parse_output_format(a->format);
    o.spec.zero_point = !a->symmetric;
    o.spec.f16_scales =
        a->scale_dtype == "f16" || (a->scale_dtype == "auto" && o.format == OutputFormat::AutoAwq);
    o.clip = !a->no_clip;
    o.clip_aware_search = a->scale_loss == "clipped";
    // With --symmetric the quantizer's range is symmetric anyway: the candidates fall back to
    // symmetric ones (clip_asymmetric()).
    o.clip_opts.asymmetric = a->clip_bounds == "asymmetric";
    if (a->shuffle >= 0) o.shuffle_seed = uint64_t(a->shuffle);
    o.resume = !a->no_resume;
    if (!a->shard.empty()) std::tie(o.shard_index, o.shard_count) = parse_shard(a->shard);
    if (a->mpi) {
      quantize_mpi(o);
      return;
    }
    // Ctrl-C / SIGTERM end the run at the next safe point, keeping what can be resumed.
    const InterruptScope interrupts;
    const QuantizeReport r = quantize_model(o);
    fmt::print("{}", r.format_table());
    if (o.shard_count > 0)
      fmt::print("wrote shard {}/{} to {} (merge every shard with awq merge)\n", o.shard_index,
                 o.shard_count, o.out_dir);
    else
      fmt::print("wrote {} ({}, {}-bit, group {}{})\n", o.out_dir, r.format, r.bits, r.group_size,
                 r.zero_point ? "" : ", symmetric");
  });
});

}  // namespace
}  // namespace awq::cli
