// A one-line progress bar with ETA on stderr, drawn only when stderr is a terminal (CI logs and
// pipes get nothing but the final summary lines the commands print themselves).
#pragma once
#include <cstdint>
#include <string>

#include "base/sysinfo.h"

namespace awq {

class Progress {
 public:
  Progress(std::string label, int64_t total);
  ~Progress();
  void update(int64_t done, const std::string& stage = "");
  // The ETA extrapolates the rate since the last call: steps before `done` (a resumed run's
  // replayed blocks, a shard's forward-only prefix) are much cheaper than the ones still to come.
  void restart_rate(int64_t done);
  // Seconds left at the current rate (negative: no step measured yet); what the bar shows.
  double eta(int64_t done) const;
  void finish();

 private:
  std::string label_;
  int64_t total_;
  Timer timer_;
  double rate_t0_ = 0;      // timer_ reading when the rate's measurement began
  int64_t rate_done0_ = 0;  // steps done then
  double last_draw_ = -1;
  bool tty_;
  bool finished_ = false;
};

}  // namespace awq
