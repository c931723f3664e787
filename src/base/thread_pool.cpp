#include "base/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace awq {
namespace {

int default_threads() {
  if (const char* env = std::getenv("AWQ_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

// How long an idle worker spins on the job word before it sleeps on the condition variable.
// Decoding one token issues ~150 parallel_for calls separated by a few to a few hundred
// microseconds of serial work; a condition-variable wake-up costs ~8 us per call and side
// (measured on the 2-core Xeon), so spinning through those gaps is what makes small jobs cheap.
// Bounded, so an idle process goes back to sleep within a fraction of a millisecond.
// AWQ_SPIN_US overrides it (0: always sleep, the old behaviour).
int64_t spin_ns() {
  if (const char* env = std::getenv("AWQ_SPIN_US")) {
    const long v = std::atol(env);
    if (v >= 0) return int64_t(v) * 1000;
  }
  return 200 * 1000;
}

// The caller's spins (pause instructions, ~40-140 cycles each) before it starts yielding.
constexpr int64_t kCallerSpins = 4000;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The job protocol. One 64-bit word holds (generation << 16) | joined, where `joined` counts the
// workers currently inside the job. An odd generation means a job is open for joining:
//   - the caller (holding run_mutex_) writes the job's fields while the generation is even and
//     no worker is inside, then opens it (generation + 1, joined = 0);
//   - a worker joins with a compare-exchange that succeeds only on the same open generation (so
//     it never reads fields of a job that is being rewritten), pulls chunks from `next_` and
//     leaves (joined - 1);
//   - the caller runs chunks too, waits until every chunk is done (`done_`, an atomic count: no
//     mutex per chunk), then closes the job with a compare-exchange from (open, joined = 0) to
//     the next even generation, which no worker can join.
// Idle workers spin on the word for spin_ns(), then sleep on cv_; the caller notifies only when
// some worker is asleep (sleepers_, checked after opening: both sides use seq_cst, so either the
// caller sees the sleeper or the sleeper sees the open job before it waits).
class Pool {
 public:
  explicit Pool(int n) : spin_ns_(spin_ns()) { resize(n); }
  ~Pool() { stop(); }

  int size() const { return int(workers_.size()) + 1; }

  void resize(int n) {
    std::lock_guard run(run_mutex_);  // never while a job runs
    stop();
    stopping_.store(false);
    // No job is open now (we hold run_mutex_): a new worker has seen everything before it.
    const uint64_t gen = word_.load() >> 16;
    for (int i = 1; i < n; ++i) workers_.emplace_back([this, gen] { worker_loop(gen); });
  }

  void run(int64_t n_chunks, const std::function<void(int64_t)>& chunk_fn) {
    std::lock_guard run(run_mutex_);  // one job at a time; nested calls run inline (below)
    job_ = &chunk_fn;
    n_chunks_ = n_chunks;
    next_.store(0, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    error_ = nullptr;
    const uint64_t open_gen = (word_.load() >> 16) + 1;  // even -> odd
    word_.store(open_gen << 16);                         // seq_cst: publishes the fields above
    if (sleepers_.load() > 0) {
      std::lock_guard g(m_);
      cv_.notify_all();
    }
    work();
    // Wait for the chunks other threads took. Spin briefly (they are usually running), then yield:
    // on an oversubscribed machine the thread we wait for may need our core.
    for (int64_t spins = 0; done_.load(std::memory_order_acquire) != n_chunks_; ++spins) {
      if (spins < kCallerSpins) {
        cpu_relax();
      } else {
        std::this_thread::yield();
      }
    }
    // Close: wait until no worker is inside (a late joiner finds no chunk and leaves at once).
    for (int64_t spins = 0;; ++spins) {
      uint64_t expected = open_gen << 16;  // open, nobody inside
      if (word_.compare_exchange_weak(expected, (open_gen + 1) << 16)) break;
      if (spins < kCallerSpins) {
        cpu_relax();
      } else {
        std::this_thread::yield();
      }
    }
    job_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

  bool busy_in_this_thread() const { return in_job_; }

 private:
  void work() {
    in_job_ = true;
    for (;;) {
      const int64_t i = next_.fetch_add(1, std::memory_order_relaxed);
      if (i >= n_chunks_) break;
      try {
        (*job_)(i);
      } catch (...) {
        std::lock_guard g(error_mutex_);
        if (!error_) error_ = std::current_exception();
      }
      done_.fetch_add(1, std::memory_order_release);
    }
    in_job_ = false;
  }

  // Joins the open job of word w if it is still open; true when joined.
  bool try_join(uint64_t w) {
    while ((w >> 16) & 1) {
      if (word_.compare_exchange_weak(w, w + 1)) return true;
      // w now holds the current word: retry while the same generation stays open.
    }
    return false;
  }

  void worker_loop(uint64_t seen_gen) {
    for (;;) {
      // Spin for a job, then sleep.
      const int64_t t0 = now_ns();
      uint64_t w = word_.load();
      for (int64_t i = 0; (w >> 16) == seen_gen || !((w >> 16) & 1); ++i) {
        if (stopping_.load(std::memory_order_relaxed)) return;
        if ((i & 63) == 63 && now_ns() - t0 > spin_ns_) {
          std::unique_lock g(m_);
          sleepers_.fetch_add(1);
          cv_.wait(g, [&] {
            w = word_.load();
            return stopping_.load() || ((w >> 16) != seen_gen && ((w >> 16) & 1));
          });
          sleepers_.fetch_sub(1);
          if (stopping_.load()) return;
          break;
        }
        cpu_relax();
        w = word_.load();
      }
      seen_gen = w >> 16;
      if (!try_join(w)) continue;  // closed before we got in: nothing left to do
      work();
      word_.fetch_sub(1);
    }
  }

  void stop() {
    {
      std::lock_guard g(m_);
      stopping_.store(true);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  const int64_t spin_ns_;
  std::vector<std::thread> workers_;
  std::mutex run_mutex_, m_, error_mutex_;
  std::condition_variable cv_;
  std::atomic<uint64_t> word_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stopping_{false};
  // The job's fields: written by the caller only while no worker can be inside.
  const std::function<void(int64_t)>* job_ = nullptr;
  int64_t n_chunks_ = 0;
  std::atomic<int64_t> next_{0};
  std::atomic<int64_t> done_{0};
  std::exception_ptr error_;
  static thread_local bool in_job_;
};

thread_local bool Pool::in_job_ = false;

Pool& pool() {
  static Pool p(default_threads());
  return p;
}

}  // namespace

void set_num_threads(int n) {
  n = std::max(1, n);
  if (n != pool().size()) pool().resize(n);
}
int num_threads() {
  return pool().size();
}

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
