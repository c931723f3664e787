// Subcommand registry. Each cmd_*.cpp defines a static Registration that adds its CLI11
// subcommand and a run callback; main() parses and runs whichever was selected.
#pragma once
#include <CLI/CLI.hpp>

#include <functional>
#include <vector>

namespace awq::cli {

using Registrar = std::function<void(CLI::App&)>;
std::vector<Registrar>& registry();

struct Registration {
  explicit Registration(Registrar r) { registry().push_back(std::move(r)); }
};

// Runs the callback that a registrar attached to `sub` (via set_run).
void run_selected(CLI::App* sub);
void set_run(CLI::App* sub, std::function<void()> fn);

// Common options.
void add_threads_option(CLI::App* sub, int* threads);  // -t/--threads, applies set_num_threads
void apply_threads(int threads);

}  // namespace awq::cli
