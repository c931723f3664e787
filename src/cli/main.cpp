// The `awq` command line: one subcommand per file (cmd_*.cpp), registered here.
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "base/error.h"
#include "base/interrupt.h"
#include "cli/commands.h"

int main(int argc, char** argv) {
#if defined(__GLIBC__)
  // The AWQ search allocates and frees the same activation-sized matrices (MBs each) for every
  // candidate. Above glibc's default 128 KiB threshold each one is a fresh mmap: page faults and
  // zeroing on every allocation. Serving them from the heap up to the 32 MiB maximum, and not
  // trimming it, took the stories260K search from 7.71 to 6.59 s (peak RSS 234 -> 245 MiB).
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
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
  } catch (const awq::Interrupted& e) {
    fmt::print(stderr, "awq: {}\n", e.what());
    return 128 + e.signal();  // as the shell reports a process ended by that signal
  } catch (const awq::Error& e) {
    fmt::print(stderr, "awq: error: {}\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "awq: internal error: {}\n", e.what());
    return 2;
  }
  return 0;
}
