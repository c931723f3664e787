// awq inspect: architecture, shapes, dtypes, parameter count, file sizes, quantization config.
#include <fmt/format.h>

#include "cli/commands.h"
#include "gguf/gguf_model.h"
#include "gguf/inspect_gguf.h"
#include "tools/inspect.h"

namespace awq::cli {
namespace {

Registration reg([](CLI::App& app) {
  auto path = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  auto* sub = app.add_subcommand("inspect", "Describe a model directory or GGUF file");
  sub->add_option("model", *path, "Model directory or .gguf file")->required();
  sub->add_flag("--json", *json, "Machine-readable output (includes every tensor)");
  set_run(sub, [path, json] {
    const bool is_gguf = gguf::is_gguf_file(*path);
    const auto j = is_gguf ? gguf::inspect_gguf(*path) : inspect_model(*path);
    if (*json) {
      fmt::print("{}\n", j.dump(2));
    } else {
      fmt::print("{}", is_gguf ? gguf::format_gguf_inspection(j) : format_inspection(j));
    }
  });
});

}  // namespace
}  // namespace awq::cli
