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
  std::string outliers, mlp_outliers;
  int threads = 0;
};

Registration reg([](CLI::App& app) {
  auto args = std::make_shared<SynthArgs>();
  auto* sub = app.add_subcommand(
      "synth", "Write a random-weight HF checkpoint of a supported family's shape");
  auto* shape = sub->add_option("--shape", args->opt.shape,
                                fmt::format("Preset: {}", fmt::join(synth_presets(), ", ")));
  auto* config =
      sub->add_option("--config", args->opt.config_path, "Take the shape from this config.json");
  shape->excludes(config);
  sub->add_option("--out", args->opt.out_dir, "Output directory")->required();
  sub->add_option("--dtype", args->dtype, "f16 | bf16 | f32")
      ->check(CLI::IsMember({"f16", "bf16", "f32"}));
  sub->add_option("--seed", args->opt.seed, "Random seed");
  sub->add_option("--outliers", args->outliers,
                  "K:G — K activation-outlier channels with gain G per norm");
  sub->add_option(
      "--mlp-outliers", args->mlp_outliers,
      "K:G — K rows of every up projection G times larger (outliers in down_proj's input)");
  sub->add_option("--weight-std", args->opt.weight_std,
                  "Standard deviation of linears and embeddings (default 0.02)");
  sub->add_option("--norm-noise", args->opt.norm_noise,
                  "Norm multipliers 1 ± this (default 0: exactly 1)");
  sub->add_option("--post-norm-gain", args->opt.post_norm_gain,
                  "Multiplier of the post-attention/feed-forward norms (Gemma-2/3; default 1)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--layers", args->opt.layers,
                  "Only this many decoder layers (each of the real shape)");
  sub->add_option("--vocab", args->opt.vocab,
                  "Override the vocabulary size (embeddings and lm_head)");
  sub->add_option("--tokenizer", args->opt.tokenizer_dir, "Copy the tokenizer from this directory");
  add_threads_option(sub, &args->threads);
  set_run(sub, [args] {
    apply_threads(args->threads);
    args->opt.dtype = args->dtype == "f16"    ? DType::F16
                      : args->dtype == "bf16" ? DType::BF16
                                              : DType::F32;
    auto parse_kg = [](const std::string& v, const char* option, int& k, float& g) {
      AWQ_CHECK(std::sscanf(v.c_str(), "%d:%f", &k, &g) == 2,
                "{} expects K:G, e.g. 4:20 (got '{}')", option, v);
    };
    if (!args->outliers.empty())
      parse_kg(args->outliers, "--outliers", args->opt.outlier_channels, args->opt.outlier_gain);
    if (!args->mlp_outliers.empty())
      parse_kg(args->mlp_outliers, "--mlp-outliers", args->opt.mlp_outlier_channels,
               args->opt.mlp_outlier_gain);
    Timer t;
    write_synthetic_model(args->opt);
    fmt::print("wrote {} ({:.1f} s)\n", args->opt.out_dir, t.seconds());
  });
});

}  // namespace
}  // namespace awq::cli
