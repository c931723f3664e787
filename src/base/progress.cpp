#include "base/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>

namespace awq {

Progress::Progress(std::string label, int64_t total)
    : label_(std::move(label)), total_(total), tty_(::isatty(2) != 0) {}

Progress::~Progress() {
  finish();
}

static std::string format_secs(double s) {
  if (s < 0 || s > 1e7) return "--:--";
  const int t = int(std::lround(s));
  return t >= 3600 ? fmt::format("{}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60)
                   : fmt::format("{:02}:{:02}", t / 60, t % 60);
}

void Progress::update(int64_t done, const std::string& stage) {
  if (!tty_ || finished_) return;
  const double now = timer_.seconds();
  if (done < total_ && now - last_draw_ < 0.1) return;  // at most 10 redraws a second
  last_draw_ = now;
  const double frac = total_ > 0 ? double(done) / double(total_) : 1.0;
  const int width = 30;
  const int filled = int(frac * width);
  const double eta = this->eta(done);
  fmt::print(stderr, "\r{} [{}{}] {}/{} {:5.1f}% elapsed {} eta {} {}\033[K", label_,
             std::string(size_t(filled), '#'), std::string(size_t(width - filled), '.'), done,
             total_, 100.0 * frac, format_secs(now), format_secs(eta), stage);
  std::fflush(stderr);
}

void Progress::restart_rate(int64_t done) {
  rate_t0_ = timer_.seconds();
  rate_done0_ = done;
}

double Progress::eta(int64_t done) const {
  const int64_t measured = done - rate_done0_;
  if (measured <= 0) return -1;
  return (timer_.seconds() - rate_t0_) / double(measured) * double(total_ - done);
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (tty_ && last_draw_ >= 0) fmt::print(stderr, "\r\033[K");
}

}  // namespace awq
