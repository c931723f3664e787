// awq synth: write a random-weight Hugging Face checkpoint of a supported family's shape.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "base/error.h"
#include "base/sysinfo.h"
#include "cli/commands.h"
#include "tools/synth.h"

namespace awq::cli {
namespace {

struct SynthArgs {
  SynthOptions opt;
  std::string dtype = "f16";
  std::string outliers;
  int threads = 0;
};

Registration reg([](CLI::App& app) {
  auto args = std::make_shared<SynthArgs>();
  auto* sub = app.add_subcommand("synth", "Write a random-weight HF checkpoint of a supported family's shape");
  auto* shape = sub->add_option("--shape", args->opt.shape, fmt::format("Preset: {}", fmt::join(synth_presets(), ", ")));
  auto* config = sub->add_option("--config", args->opt.config_path, "Take the shape from this config.json");
  shape->excludes(config);
  sub->add_option("--out", args->opt.out_dir, "Output directory")->required();
  sub->add_option("--dtype", args->dtype, "f16 | bf16 | f32")->check(CLI::IsMember({"f16", "bf16", "f32"}));
  sub->add_option("--seed", args->opt.seed, "Random seed");
  sub->add_option("--outliers", args->outliers, "K:G — K activation-outlier channels per norm with gain G");
  sub->add_option("--weight-std", args->opt.weight_std, "Standard deviation of linears and embeddings (default 0.02)");
  sub->add_option("--norm-noise", args->opt.norm_noise, "Norm multipliers 1 ± this (default 0: exactly 1)");
  sub->add_option("--layers", args->opt.layers, "Only this many decoder layers (each of the real shape)");
  sub->add_option("--vocab", args->opt.vocab, "Override the vocabulary size (embeddings and lm_head)");
  sub->add_option("--tokenizer", args->opt.tokenizer_dir, "Copy the tokenizer from this directory");
  add_threads_option(sub, &args->threads);
  set_run(sub, [args] {
    apply_threads(args->threads);
    args->opt.dtype = args->dtype == "f16" ? DType::F16 : args->dtype == "bf16" ? DType::BF16 : DType::F32;
    if (!args->outliers.empty()) {
      int k = 0;
      float g = 0;
      AWQ_CHECK(std::sscanf(args->outliers.c_str(), "%d:%f", &k, &g) == 2, "--outliers expects K:G, e.g. 4:20 (got '{}')",
                args->outliers);
      args->opt.outlier_channels = k;
      args->opt.outlier_gain = g;
    }
    Timer t;
    write_synthetic_model(args->opt);
    fmt::print("wrote {} ({:.1f} s)\n", args->opt.out_dir, t.seconds());
  });
});

}  // namespace
}  // namespace awq::cli
