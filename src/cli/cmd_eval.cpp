// awq eval: perplexity (paper or llama.cpp convention) and, with --base, KL divergence against
// another model on the same windows.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <vector>

#include "base/files.h"
#include "base/sysinfo.h"
#include "base/thread_pool.h"
#include "cli/commands.h"
#include "eval/perplexity.h"
#include "eval/tokenizer_loader.h"
#include "gguf/gguf_model.h"
#include "kernels/bandwidth.h"

namespace awq::cli {
namespace {

struct EvalArgs {
  std::string model, text, base, convention = "paper", weights = "auto", lm_head = "auto";
  int64_t ctx = 0, max_windows = -1, batch_tokens = 2048;
  bool json = false;
  int threads = 0;
};

void run(const EvalArgs& a) {
  apply_threads(a.threads);
  Timer load_timer;
  LoadOptions lo = gguf::weight_form_for_any(a.model, a.weights);
  if (a.lm_head != "auto") lo.lm_head_q8 = a.lm_head == "q8";  // auto: q8 with w4a8
  const PplConvention conv = parse_ppl_convention(a.convention);
  const Model model = gguf::load_any_model(a.model, lo);
  std::optional<Model> base;
  // The reference is full precision: its float linears as stored (LoadOptions{} is Native).
  if (!a.base.empty()) base.emplace(gguf::load_any_model(a.base, LoadOptions{}));
  const Tokenizer tok = gguf::is_gguf_file(a.model) ? gguf::load_gguf_tokenizer(a.model)
                                                    : load_model_tokenizer(a.model);
  const double load_s = load_timer.seconds();

  Timer tok_timer;
  const auto tokens = tok.encode(read_text_file(a.text), /*add_special=*/true);
  const double tok_s = tok_timer.seconds();

  PerplexityOptions o;
  o.convention = conv;
  // Defaults: llama.cpp's 512; the paper's 2048, capped by the model's trained context.
  o.ctx = a.ctx > 0 ? a.ctx
                    : (conv == PplConvention::LlamaCpp
                           ? 512
                           : std::min<int64_t>(2048, model.config().max_position_embeddings));
  if (o.ctx > model.config().max_position_embeddings)
    fmt::print(stderr,
               "awq: warning: --ctx {} is longer than the model's max_position_embeddings {}\n",
               o.ctx, model.config().max_position_embeddings);
  o.max_windows = a.max_windows;
  o.batch_tokens = a.batch_tokens;
  o.progress = !a.json;
  const int32_t bos = tok.adds_bos() ? tok.bos_id() : -1;
  const PerplexityResult r = perplexity(model, tokens, bos, o, base ? &*base : nullptr);
  // Peak RSS before the probe's 12 MiB, so it is the evaluation's own.
  const double rss_mib = double(peak_rss_bytes()) / (1024.0 * 1024.0);
  const double sgemm = kernels::measure_sgemm_gflops();
  const double fraction = sgemm > 0 ? r.prefill_gflops / sgemm : 0.0;

  if (a.json) {
    nlohmann::ordered_json j = {{"model", a.model},
                                {"weights", weight_form_name(lo)},
                                {"lm_head", lo.lm_head_q8 ? "q8" : "as stored"},
                                {"text", a.text},
                                {"convention", ppl_convention_name(conv)},
                                {"ctx", r.ctx},
                                {"tokens", r.n_tokens},
                                {"windows", r.n_windows},
                                {"scored", r.n_scored},
                                {"nll", r.nll},
                                {"perplexity", r.ppl},
                                {"perplexity_err", r.ppl_err},
                                {"seconds", r.seconds},
                                {"tokenize_seconds", tok_s},
                                {"load_seconds", load_s},
                                {"tokens_per_s", r.tokens_per_s},
                                {"prefill_gflops", r.prefill_gflops},
                                {"sgemm_gflops", sgemm},
                                {"prefill_fraction_of_sgemm", fraction},
                                {"threads", num_threads()},
                                {"peak_rss_mib", rss_mib}};
    if (r.kld) {
      j["base"] = a.base;
      j["base_perplexity"] = r.kld->base_ppl;
      j["delta_perplexity"] = r.kld->delta_ppl;
      j["kld_mean"] = r.kld->mean;
      j["kld_err"] = r.kld->std_err;
      j["same_top"] = r.kld->same_top;
    }
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print("model       {} (weights {}, lm_head {})\n", a.model, weight_form_name(lo),
             lo.lm_head_q8 ? "q8" : "as stored");
  fmt::print("text        {}: {} tokens (tokenized in {:.2f} s)\n", a.text, r.n_tokens, tok_s);
  fmt::print("convention  {}, ctx {}: {} windows, {} predictions scored\n",
             ppl_convention_name(conv), r.ctx, r.n_windows, r.n_scored);
  fmt::print("NLL         {:.6f} nats/token\n", r.nll);
  if (conv == PplConvention::LlamaCpp) {
    fmt::print("perplexity  {:.4f} +/- {:.5f}\n", r.ppl, r.ppl_err);
  } else {
    fmt::print("perplexity  {:.5f}\n", r.ppl);
  }
  if (r.kld) {
    fmt::print("base        {}: perplexity {:.5f}, delta {:+.5f}\n", a.base, r.kld->base_ppl,
               r.kld->delta_ppl);
    fmt::print("KLD         {:.6f} +/- {:.6f} nats; same top token {:.3f}%\n", r.kld->mean,
               r.kld->std_err, 100.0 * r.kld->same_top);
  }
  fmt::print("time        {:.2f} s, {:.1f} tokens/s, {} threads (load {:.2f} s)\n", r.seconds,
             r.tokens_per_s, num_threads(), load_s);
  fmt::print(
      "prefill     {:.2f} GFLOP/s = {:.1f}% of sgemm 1024^3 on this machine ({:.1f} GFLOP/s)\n",
      r.prefill_gflops, 100.0 * fraction, sgemm);
  fmt::print("peak RSS    {:.1f} MiB\n", rss_mib);
}

Registration reg([](CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  auto* sub = app.add_subcommand(
      "eval", "Perplexity (paper or llama.cpp convention), KL divergence vs a base");
  sub->add_option("--model", a->model, "Model directory")->required();
  sub->add_option("--text", a->text, "Text file to score (tokenized whole, with BOS)")->required();
  sub->add_option("--ctx", a->ctx,
                  "Tokens per window (default: 512 for llamacpp; min(2048, "
                  "max_position_embeddings) for paper)");
  sub->add_option("--convention", a->convention,
                  "paper: every prediction of non-overlapping windows | llamacpp: BOS-led chunks, "
                  "second half "
                  "scored")
      ->check(CLI::IsMember({"paper", "llamacpp"}));
  sub->add_option("--max-windows", a->max_windows, "Score at most N windows (default: all)");
  sub->add_option("--batch-tokens", a->batch_tokens,
                  "Tokens per forward pass (windows batched; default 2048)");
  sub->add_option("--base", a->base,
                  "Reference model directory: also report KL divergence and delta PPL");
  sub->add_option(
         "--weights", a->weights,
         "auto (default: w4a8 for AWQ checkpoints and Q4_0/Q4_1 GGUF files, else native) | "
         "f32 | native | w4 (W4A16, exact) | w4a8")
      ->check(CLI::IsMember({"auto", "f32", "native", "w4", "w4a8"}));
  sub->add_option("--lm-head", a->lm_head,
                  "auto (default: q8 with w4a8, else as stored) | f16 (the rows as stored) | q8 "
                  "(an int8 copy made at load, int8 activations)")
      ->check(CLI::IsMember({"auto", "f16", "q8"}));
  sub->add_flag("--json", a->json, "Machine-readable output");
  add_threads_option(sub, &a->threads);
  set_run(sub, [a] { run(*a); });
});

}  // namespace
}  // namespace awq::cli
