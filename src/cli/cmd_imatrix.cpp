// awq imatrix: llama.cpp importance matrix (legacy .dat) from calibration text, computed with the
// model layer's block forward. Use it with llama-quantize --imatrix on a GGUF exported from the
// same model (e.g. an AWQ fake-quant --no-quantize directory exported with --type f16).
#include <fmt/format.h>

#include "awq/calib.h"
#include "base/error.h"
#include "base/progress.h"
#include "base/sysinfo.h"
#include "cli/commands.h"
#include "gguf/gguf_model.h"
#include "gguf/imatrix.h"
#include "tokenizer/tokenizer.h"

namespace awq::cli {
namespace {

struct ImatrixArgs {
  std::string model, calib, out, calib_long = "split";
  int64_t samples = 128, seqlen = 512, shuffle = -1;
  int threads = 0;
};

void run(const ImatrixArgs& a) {
  apply_threads(a.threads);
  Timer t;
  const bool gguf_in = gguf::is_gguf_file(a.model);
  const Model model = gguf::load_any_model(a.model, LoadOptions{});
  const Tokenizer tok = gguf_in ? gguf::load_gguf_tokenizer(a.model) : Tokenizer::from_dir(a.model);
  const std::vector<std::string> docs = load_calib_documents(a.calib);
  const std::vector<size_t> order = document_order(
      docs.size(), a.shuffle >= 0 ? std::optional<uint64_t>(uint64_t(a.shuffle)) : std::nullopt);
  const CalibBlocks cb = build_calib_blocks(
      docs.size(), [&](size_t i) { return tok.encode(docs[order[i]], true); }, a.samples, a.seqlen,
      parse_calib_long(a.calib_long), a.calib);
  std::vector<std::vector<int32_t>> chunks(static_cast<size_t>(cb.n_blocks));
  for (int64_t b = 0; b < cb.n_blocks; ++b)
    chunks[size_t(b)].assign(cb.tokens.begin() + b * cb.seqlen,
                             cb.tokens.begin() + (b + 1) * cb.seqlen);
  Progress prog("imatrix", cb.n_blocks);
  const gguf::Imatrix im = gguf::compute_imatrix(model, chunks, a.calib,
                                                 [&](int64_t i) { prog.update(i + 1, "chunk"); });
  prog.finish();
  gguf::write_imatrix(a.out, im);
  fmt::print("calibration  {}: {} -> {} chunks of {} tokens\n", a.calib, describe_calibration(cb),
             cb.n_blocks, cb.seqlen);
  fmt::print("wrote {} ({} entries, {:.2f} s)\n", a.out, im.entries.size(), t.seconds());
}

Registration reg([](CLI::App& app) {
  auto a = std::make_shared<ImatrixArgs>();
  auto* sub =
      app.add_subcommand("imatrix", "Importance matrix for llama-quantize --imatrix (legacy .dat)");
  sub->add_option("--model", a->model, "Model directory or GGUF file")->required();
  sub->add_option("--calib", a->calib, "Calibration text: FILE, DIR or FILE.jsonl[:field]")
      ->required();
  sub->add_option("--out", a->out, "Output .dat file (written atomically)")->required();
  sub->add_option("--calib-samples", a->samples,
                  "Documents to take, each piece of a split one counted (default 128)");
  sub->add_option("--calib-seqlen", a->seqlen, "Tokens per chunk (default 512)");
  sub->add_option("--calib-long", a->calib_long,
                  "A document longer than --calib-seqlen: split (default) | skip | truncate, as "
                  "for awq quantize")
      ->check(CLI::IsMember({"split", "skip", "truncate"}));
  sub->add_option("--shuffle", a->shuffle, "Take documents in a random order with this seed");
  add_threads_option(sub, &a->threads);
  set_run(sub, [a] { run(*a); });
});

}  // namespace
}  // namespace awq::cli
