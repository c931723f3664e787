#include "base/interrupt.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace awq {
namespace {

std::atomic<int> g_signal{0};
int g_depth = 0;  // InterruptScopes alive (created and destroyed on the main thread)
struct sigaction g_old_int, g_old_term;

extern "C" void on_signal(int sig) {
  int expected = 0;
  if (!g_signal.compare_exchange_strong(expected, sig)) {
    // The second signal: the user insists. Default action, now.
    ::signal(sig, SIG_DFL);
    ::raise(sig);
  }
}

}  // namespace

Interrupted::Interrupted(int signal)
    : Error(signal == SIGTERM ? "terminated (SIGTERM)" : "interrupted (SIGINT)"), signal_(signal) {}

Interrupted::Interrupted(int signal, const std::string& message)
    : Error(message), signal_(signal) {}

InterruptScope::InterruptScope() {
  if (g_depth++ > 0) return;
  g_signal = 0;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &g_old_int);
  sigaction(SIGTERM, &sa, &g_old_term);
}

InterruptScope::~InterruptScope() {
  if (--g_depth > 0) return;
  sigaction(SIGINT, &g_old_int, nullptr);
  sigaction(SIGTERM, &g_old_term, nullptr);
  g_signal = 0;  // served: work after the scope is not interrupted by it
}

void throw_if_interrupted() {
  const int sig = g_signal.load(std::memory_order_relaxed);
  if (sig != 0) throw Interrupted(sig);
}

void kill_point(const std::string& name) {
  const char* at = std::getenv("AWQ_TEST_KILL_AT");
  if (at == nullptr || name != at) return;
  // AWQ_TEST_KILL_SIGNAL: another signal than SIGKILL (SIGINT: a Ctrl-C at an exact place).
  const char* sig = std::getenv("AWQ_TEST_KILL_SIGNAL");
  ::kill(::getpid(), sig != nullptr ? std::atoi(sig) : SIGKILL);
}

}  // namespace awq
