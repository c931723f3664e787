// awq generate: stream a continuation of a prompt (greedy or temperature/top-p sampling).
#include <fmt/format.h>

#include <cstdio>

#include "base/sysinfo.h"
#include "cli/commands.h"
#include "eval/generate.h"
#include "eval/tokenizer_loader.h"
#include "gguf/gguf_model.h"

namespace awq::cli {
namespace {

struct GenerateArgs {
  std::string model, prompt, weights = "auto", lm_head = "auto";
  int64_t n = 128;
  float temperature = 0.0f, top_p = 1.0f;
  uint64_t seed = 0;
  bool ignore_eos = false;
  int threads = 0;
};

void run(const GenerateArgs& a) {
  apply_threads(a.threads);
  LoadOptions lo = gguf::weight_form_for_any(a.model, a.weights);
  if (a.lm_head != "auto") lo.lm_head_q8 = a.lm_head == "q8";  // auto: q8 with w4a8
  const Model model = gguf::load_any_model(a.model, lo);
  const Tokenizer tok = gguf::is_gguf_file(a.model) ? gguf::load_gguf_tokenizer(a.model)
                                                    : load_model_tokenizer(a.model);
  const auto prompt = tok.encode(a.prompt, /*add_special=*/true);
  GenerateOptions o;
  o.max_new_tokens = a.n;
  o.sampling = {a.temperature, a.top_p, a.seed};
  o.eos_id = tok.eos_id();
  o.stop_at_eos = !a.ignore_eos;
  // The prompt goes through the stream decoder first, so the continuation's leading space (a
  // SentencePiece '▁') is kept and the output reads as one text.
  StreamDecoder stream(tok, /*skip_special=*/true);
  std::string text;
  for (int32_t id : prompt) text += stream.push(id);
  std::fputs(text.c_str(), stdout);
  std::fflush(stdout);
  const GenerateResult r = generate(model, prompt, o, [&](int32_t id) {
    const std::string piece = stream.push(id);
    std::fputs(piece.c_str(), stdout);
    std::fflush(stdout);
  });
  std::fputs((stream.flush() + "\n").c_str(), stdout);
  std::fflush(stdout);
  const double gbs = double(model.weight_bytes()) * r.decode_tokens_per_s() * 1e-9;
  fmt::print(stderr,
             "{} prompt tokens in {:.3f} s ({:.1f} tokens/s); {} generated in {:.3f} s ({:.2f} "
             "tokens/s, weights "
             "{:.2f} GB/s); peak RSS {:.1f} MiB\n",
             r.prompt_tokens, r.prefill_seconds,
             double(r.prompt_tokens) / std::max(r.prefill_seconds, 1e-9), r.tokens.size(),
             r.decode_seconds, r.decode_tokens_per_s(), gbs,
             double(peak_rss_bytes()) / (1024.0 * 1024.0));
}

Registration reg([](CLI::App& app) {
  auto a = std::make_shared<GenerateArgs>();
  auto* sub = app.add_subcommand("generate", "Generate text from a prompt (streamed)");
  sub->add_option("--model", a->model, "Model directory")->required();
  sub->add_option("--prompt", a->prompt, "Prompt text (BOS added as the tokenizer does)")
      ->required();
  sub->add_option("-n,--max-tokens", a->n, "Tokens to generate (default 128)");
  sub->add_option("--temperature", a->temperature, "0 = greedy (default); > 0 samples");
  sub->add_option("--top-p", a->top_p, "Nucleus sampling mass, (0, 1] (default 1)");
  sub->add_option("--seed", a->seed, "Sampling seed (default 0)");
  sub->add_flag("--ignore-eos", a->ignore_eos, "Keep generating after the end-of-sequence token");
  sub->add_option(
         "--weights", a->weights,
         "auto (default: w4a8 for AWQ checkpoints and Q4_0/Q4_1 GGUF files, else native) | "
         "f32 | native | w4 (W4A16, exact) | w4a8")
      ->check(CLI::IsMember({"auto", "f32", "native", "w4", "w4a8"}));
  sub->add_option("--lm-head", a->lm_head,
                  "auto (default: q8 with w4a8, else as stored) | f16 (the rows as stored) | q8 "
                  "(an int8 copy made at load, int8 activations)")
      ->check(CLI::IsMember({"auto", "f16", "q8"}));
  add_threads_option(sub, &a->threads);
  set_run(sub, [a] { run(*a); });
});

}  // namespace
}  // namespace awq::cli
