// The `awq` command line: one subcommand per file (cmd_*.cpp), registered here.
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <cstdio>

#include "base/error.h"
#include "cli/commands.h"

int main(int argc, char** argv) {
  try {
    CLI::App app{"awq: activation-aware weight quantization for Llama-family models, in C++"};
    app.require_subcommand(1);
    app.set_help_all_flag("--help-all", "Show help for every subcommand");
    for (const auto& reg : awq::cli::registry()) reg(app);
    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      return app.exit(e);
    }
    for (auto* sub : app.get_subcommands()) awq::cli::run_selected(sub);
  } catch (const awq::Error& e) {
    fmt::print(stderr, "awq: error: {}\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "awq: internal error: {}\n", e.what());
    return 2;
  }
  return 0;
}
