// awq convert llama2c --model X.bin --tokenizer tok.bin --out DIR: a llama2.c checkpoint as a
// Hugging Face Llama directory (what every other command reads).
#include <fmt/format.h>

#include "base/sysinfo.h"
#include "cli/commands.h"
#include "tools/llama2c_convert.h"

namespace awq::cli {
namespace {

struct ConvertArgs {
  std::string model, tokenizer, out;
};

Registration reg([](CLI::App& app) {
  auto a = std::make_shared<ConvertArgs>();
  auto* sub = app.add_subcommand("convert",
                                 "Convert another checkpoint format to a Hugging Face directory");
  sub->require_subcommand(1);
  auto* l2c =
      sub->add_subcommand("llama2c", "llama2.c model.bin + tokenizer.bin -> HF Llama directory");
  l2c->add_option("--model", a->model, "llama2.c checkpoint (.bin)")->required();
  l2c->add_option("--tokenizer", a->tokenizer, "llama2.c tokenizer (.bin)")->required();
  l2c->add_option("--out", a->out, "Output directory (replaced atomically)")->required();
  set_run(sub, [a, l2c] {
    if (l2c->parsed()) {
      Timer t;
      convert_llama2c(a->model, a->tokenizer, a->out);
      fmt::print("wrote {} ({:.2f} s)\n", a->out, t.seconds());
    }
  });
});

}  // namespace
}  // namespace awq::cli
