#include "cli/commands.h"

#include <map>

#include "base/thread_pool.h"

namespace awq::cli {

std::vector<Registrar>& registry() {
  static std::vector<Registrar> r;
  return r;
}

static std::map<CLI::App*, std::function<void()>>& runs() {
  static std::map<CLI::App*, std::function<void()>> m;
  return m;
}

void set_run(CLI::App* sub, std::function<void()> fn) {
  runs()[sub] = std::move(fn);
}

void run_selected(CLI::App* sub) {
  auto it = runs().find(sub);
  if (it != runs().end()) it->second();
}

void add_threads_option(CLI::App* sub, int* threads) {
  sub->add_option("-t,--threads", *threads, "Worker threads (default: all cores, or AWQ_THREADS)");
}

void apply_threads(int threads) {
  if (threads > 0) set_num_threads(threads);
}

}  // namespace awq::cli
