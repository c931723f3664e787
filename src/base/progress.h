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
  void finish();

 private:
  std::string label_;
  int64_t total_;
  Timer timer_;
  double last_draw_ = -1;
  bool tty_;
  bool finished_ = false;
};

}  // namespace awq
