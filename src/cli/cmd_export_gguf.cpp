// awq export-gguf: a Hugging Face directory (AWQ checkpoint, full precision or fake-quant) -> one
// GGUF file for llama.cpp. AWQ's integer codes are carried over (Q4_1 / Q4_0), never re-quantized.
#include <fmt/format.h>

#include "base/thread_pool.h"
#include "cli/commands.h"
#include "gguf/export.h"

namespace awq::cli {
namespace {

struct ExportArgs {
  gguf::ExportOptions opt;
  int threads = 0;
};

Registration reg([](CLI::App& app) {
  auto a = std::make_shared<ExportArgs>();
  auto* sub =
      app.add_subcommand("export-gguf", "Write a GGUF file for llama.cpp (AWQ -> exact Q4_1/Q4_0)");
  sub->add_option("--model", a->opt.model_dir,
                  "Hugging Face model directory (AWQ, full precision or fake-quant)")
      ->required();
  sub->add_option("--out", a->opt.out_path, "Output .gguf file (written atomically)")->required();
  sub->add_option(
         "--type", a->opt.type,
         "auto (AWQ: q4_1 asymmetric / q4_0 symmetric; float: f16) | q4_1 | q4_0 | f16 | f32")
      ->check(CLI::IsMember({"auto", "q4_1", "q4_0", "f16", "f32"}));
  sub->add_option("--embeddings", a->opt.embeddings,
                  "Type of token_embd and output: f16 (default; f32 with --type f32) | f32 | q8_0")
      ->check(CLI::IsMember({"f16", "f32", "q8_0"}));
  sub->add_option("--name", a->opt.name, "general.name (default: the directory's name)");
  add_threads_option(sub, &a->threads);
  set_run(sub, [a] {
    apply_threads(a->threads);
    const gguf::ExportReport r = gguf::export_gguf(a->opt);
    for (const auto& w : r.warnings) fmt::print(stderr, "warning: {}\n", w);
    fmt::print("architecture  {} ({} tensors)\n", r.arch, r.tensors);
    fmt::print("linears       {}: {} from AWQ integer codes, {} float\n", r.linear_type,
               r.quantized_linears, r.float_linears);
    if (r.linear_type == "Q4_1")
      fmt::print("min rounding  at most {:.5f} of a quantization step (m = -z*s stored as f16)\n",
                 r.max_min_rounding_steps);
    fmt::print("embeddings    {}\n", r.embedding_type);
    fmt::print("tokenizer     {} (pre {})\n", r.tokenizer_model, r.tokenizer_pre);
    fmt::print("wrote {} ({:.1f} MiB, {:.2f} s)\n", a->opt.out_path,
               double(r.file_bytes) / (1024.0 * 1024.0), r.seconds);
  });
});

}  // namespace
}  // namespace awq::cli
