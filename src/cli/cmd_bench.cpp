// awq bench: prompt and decode tokens/s of a model (a checkpoint or a known shape with random
// weights built in memory) in f16 and W4 forms, beside the memory bandwidth measured in the same
// run: achieved GB/s, % of the roofline and the roofline's tokens/s.
#include <fmt/format.h>

#include <cstdio>

#include "cli/commands.h"
#include "eval/bench.h"
#include "gguf/gguf_bench.h"
#include "gguf/gguf_model.h"
#include "tools/synth.h"

namespace awq::cli {
namespace {

struct BenchArgs {
  BenchOptions opt;
  std::vector<std::string> weights;
  bool json = false;
  bool quiet = false;
  std::string lm_head = "auto";
};

void run(BenchArgs& a) {
  apply_threads(a.opt.threads);
  for (const auto& w : a.weights) a.opt.forms.push_back(parse_bench_form(w));
  a.opt.progress = !a.quiet;
  a.opt.lm_head_q8 = a.lm_head == "q8"    ? BenchOptions::HeadQ8::Always
                     : a.lm_head == "f16" ? BenchOptions::HeadQ8::Never
                                          : BenchOptions::HeadQ8::WithW4A8;
  if (!a.opt.model_dir.empty() && gguf::is_gguf_file(a.opt.model_dir))
    gguf::set_gguf_bench_source(a.opt, a.opt.model_dir);
  const BenchReport r = run_bench(a.opt);
  if (a.json) {
    std::fputs((bench_report_json(r).dump(2) + "\n").c_str(), stdout);
  } else {
    std::fputs(format_bench_report(r).c_str(), stdout);
  }
  std::fflush(stdout);
}

Registration reg([](CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  std::string presets;
  for (const auto& p : synth_presets()) presets += (presets.empty() ? "" : ", ") + p;
  auto* sub = app.add_subcommand(
      "bench", "Prompt and decode speed (f16 vs W4) against the measured memory bandwidth");
  auto* model = sub->add_option(
      "--model", a->opt.model_dir,
      "Model directory (HF checkpoint) or GGUF file (W4 forms run its Q4_0/Q4_1 codes)");
  auto* shape = sub->add_option("--shape", a->opt.shape,
                                "Random weights of a known shape, built in memory: " + presets);
  model->excludes(shape);
  sub->add_option(
         "--layers", a->opt.layers,
         "With --shape: only the first N decoder layers, each of the real shape (so that a "
         "48-layer MoE shape fits in memory); the report says so")
      ->check(CLI::PositiveNumber)
      ->needs(shape);
  sub->add_option("-p,--prompt", a->opt.prompt, "Prompt (prefill) tokens; 0 skips (default 512)");
  sub->add_option("-n,--decode", a->opt.decode, "Decoded tokens; 0 skips (default 128)");
  sub->add_option("-d,--depth", a->opt.depth,
                  "Decode after this many tokens of context (prefilled, not timed; default 0)");
  sub->add_option(
         "--weights", a->weights,
         "Forms to run, comma-separated: f16, f32, w4 (W4A16, exact), w4a8 (default: f16,w4a8)")
      ->delimiter(',')
      ->check(CLI::IsMember({"f16", "f32", "w4", "w4a8"}));
  sub->add_option("--group-size", a->opt.group_size,
                  "W4 group size for RTN quantization (default 128; -1 = one group per row)");
  sub->add_flag("--lm-head-w4", a->opt.lm_head_w4,
                "W4 rows: quantize the lm_head too (a what-if; AWQ checkpoints keep it f16)");
  sub->add_option("--lm-head", a->lm_head,
                  "auto (default: the w4a8 rows read an int8 copy, as awq eval/generate do; "
                  "other rows the rows as stored) | f16 (as stored everywhere) | q8 (every row)")
      ->check(CLI::IsMember({"auto", "f16", "q8"}));
  sub->add_option("-r,--repeats", a->opt.repeats,
                  "Runs per test; the median is reported (default 3)");
  sub->add_option("--seed", a->opt.seed, "Seed of the random weights (--shape)");
  sub->add_option("--bw-bytes", a->opt.bandwidth_bytes,
                  "Buffer of the bandwidth probe in bytes (default 1 GiB or AWQ_BW_BYTES)");
  sub->add_flag("--breakdown", a->opt.breakdown,
                "Also time each linear role and the lm_head per decoded token (where time goes)");
  sub->add_flag("--json", a->json, "Print the report as JSON");
  sub->add_flag("-q,--quiet", a->quiet, "No progress lines on stderr");
  add_threads_option(sub, &a->opt.threads);
  set_run(sub, [a] { run(*a); });
});

}  // namespace
}  // namespace awq::cli
