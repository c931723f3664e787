#include "base/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace awq {
namespace {

int default_threads() {
  if (const char* env = std::getenv("AWQ_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

// Workers sleep on a condition variable between jobs; a job is a chunk counter that every worker
// (and the caller) pulls from until it runs out.
class Pool {
 public:
  explicit Pool(int n) { resize(n); }
  ~Pool() { stop(); }

  int size() const { return int(workers_.size()) + 1; }

  void resize(int n) {
    stop();
    stopping_ = false;
    for (int i = 1; i < n; ++i) workers_.emplace_back([this] { worker_loop(); });
  }

  void run(int64_t n_chunks, const std::function<void(int64_t)>& chunk_fn) {
    std::unique_lock lock(run_mutex_);  // one job at a time; nested calls run inline (below)
    {
      std::lock_guard g(m_);
      job_ = &chunk_fn;
      n_chunks_ = n_chunks;
      next_.store(0);
      done_ = 0;
      error_ = nullptr;
      ++generation_;
    }
    cv_.notify_all();
    work();
    std::unique_lock g(m_);
    done_cv_.wait(g, [&] { return done_ == n_chunks_; });
    job_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

  bool busy_in_this_thread() const { return in_job_; }

 private:
  void work() {
    in_job_ = true;
    for (;;) {
      const int64_t i = next_.fetch_add(1);
      if (i >= n_chunks_) break;
      try {
        (*job_)(i);
      } catch (...) {
        std::lock_guard g(m_);
        if (!error_) error_ = std::current_exception();
      }
      std::lock_guard g(m_);
      if (++done_ == n_chunks_) done_cv_.notify_all();
    }
    in_job_ = false;
  }

  void worker_loop() {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock g(m_);
        cv_.wait(g, [&] { return stopping_ || (generation_ != seen && job_ != nullptr); });
        if (stopping_) return;
        seen = generation_;
      }
      work();
    }
  }

  void stop() {
    {
      std::lock_guard g(m_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  std::vector<std::thread> workers_;
  std::mutex run_mutex_, m_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int64_t)>* job_ = nullptr;
  int64_t n_chunks_ = 0;
  std::atomic<int64_t> next_{0};
  int64_t done_ = 0;
  uint64_t generation_ = 0;
  bool stopping_ = false;
  std::exception_ptr error_;
  static thread_local bool in_job_;
};

thread_local bool Pool::in_job_ = false;

Pool& pool() {
  static Pool p(default_threads());
  return p;
}

}  // namespace

void set_num_threads(int n) { pool().resize(std::max(1, n)); }
int num_threads() { return pool().size(); }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t n_chunks = (n + grain - 1) / grain;
  auto chunk = [&](int64_t c) { fn(c * grain, std::min(n, (c + 1) * grain)); };
  Pool& p = pool();
  if (n_chunks == 1 || p.size() == 1 || p.busy_in_this_thread()) {
    for (int64_t c = 0; c < n_chunks; ++c) chunk(c);
    return;
  }
  p.run(n_chunks, chunk);
}

}  // namespace awq
