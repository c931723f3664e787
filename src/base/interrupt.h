// How a long run stops early. By the user: while an InterruptScope lives, the first SIGINT
// (Ctrl-C) or SIGTERM only raises a flag that the work polls at safe points
// (throw_if_interrupted), so that destructors run, temporaries go and what can be resumed stays;
// a second signal ends the process at once. By a test: kill_point(name) ends the process with
// SIGKILL (no clean-up code runs, as in an OOM kill or a power loss) when the environment
// variable AWQ_TEST_KILL_AT equals `name` (AWQ_TEST_KILL_SIGNAL, a number, sends another
// signal); the resume tests use it to stop a run at an exact place. The names: "search:L" (block
// L's scales searched, its clipping not yet), "kept:L" (block L kept in the resume stage), "write"
// (the output written but not yet moved into place).
#pragma once
#include <string>

#include "base/error.h"

namespace awq {

class Interrupted : public Error {
 public:
  explicit Interrupted(int signal);
  Interrupted(int signal, const std::string& message);
  int signal() const { return signal_; }

 private:
  int signal_;
};

class InterruptScope {
 public:
  InterruptScope();  // installs the handlers (the outermost scope does; nested ones share them)
  ~InterruptScope();
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;
};

// Throws Interrupted once a signal arrived inside an InterruptScope.
void throw_if_interrupted();

void kill_point(const std::string& name);

}  // namespace awq
