// awq inspect: architecture, shapes, dtypes, parameter count, file sizes, quantization config.
#include <fmt/format.h>

#include "cli/commands.h"
#include "tools/inspect.h"

namespace awq::cli {
namespace {

Registration reg([](CLI::App& app) {
  auto path = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  auto* sub = app.add_subcommand("inspect", "Describe a model directory");
  sub->add_option("model", *path, "Model directory")->required();
  sub->add_flag("--json", *json, "Machine-readable output (includes every tensor)");
  set_run(sub, [path, json] {
    const auto j = inspect_model(*path);
    if (*json) {
      fmt::print("{}\n", j.dump(2));
    } else {
      fmt::print("{}", format_inspection(j));
    }
  });
});

}  // namespace
}  // namespace awq::cli
