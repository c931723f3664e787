#include "base/thread_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

namespace awq {

TEST(ThreadPool, CoversRangeOnceAndRethrows) {
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    std::vector<std::atomic<int>> hits(1001);
    parallel_for(1001, 7, [&](int64_t b, int64_t e) {
      EXPECT_LE(e - b, 7);
      for (int64_t i = b; i < e; ++i) hits[size_t(i)]++;
    });
    for (auto& h : hits) ASSERT_EQ(h.load(), 1);
    EXPECT_THROW(parallel_for(10, 1,
                              [](int64_t b, int64_t) {
                                if (b == 5) throw std::runtime_error("x");
                              }),
                 std::runtime_error);
  }
  set_num_threads(2);
}

TEST(ThreadPool, NestedCallsRunInline) {
  for (int threads : {2, 4}) {
    set_num_threads(threads);
    std::atomic<int> n{0};
    parallel_for(4, 1,
                 [&](int64_t, int64_t) { parallel_for(4, 1, [&](int64_t, int64_t) { n++; }); });
    EXPECT_EQ(n.load(), 16);
  }
  set_num_threads(2);
}

// Chunk boundaries are a function of n and grain only, whatever the thread count.
TEST(ThreadPool, ChunksDependOnlyOnNAndGrain) {
  std::set<std::pair<int64_t, int64_t>> expected;
  for (int64_t b = 0; b < 1000; b += 33) expected.insert({b, std::min<int64_t>(1000, b + 33)});
  for (int threads : {1, 2, 3, 5}) {
    set_num_threads(threads);
    std::mutex m;
    std::set<std::pair<int64_t, int64_t>> got;
    parallel_for(1000, 33, [&](int64_t b, int64_t e) {
      std::lock_guard g(m);
      got.insert({b, e});
    });
    EXPECT_EQ(got, expected) << threads << " threads";
  }
  set_num_threads(2);
}

// Thousands of tiny jobs back to back: the spinning hand-off must not lose a chunk, run one twice
// or let a late worker touch the next job's fields.
TEST(ThreadPool, ManySmallJobs) {
  for (int threads : {2, 3}) {
    set_num_threads(threads);
    std::vector<int64_t> out(64);
    for (int job = 0; job < 20000; ++job) {
      const int64_t n = 1 + job % 64;
      parallel_for(n, 1 + job % 3, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) out[size_t(i)] = job * 1000 + i;
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(out[size_t(i)], job * 1000 + i) << "job " << job;
    }
  }
  set_num_threads(2);
}

// Exceptions: the first is rethrown, every chunk still runs, and the pool stays usable.
TEST(ThreadPool, ExceptionsDoNotBreakThePool) {
  set_num_threads(3);
  for (int round = 0; round < 200; ++round) {
    std::atomic<int> ran{0};
    EXPECT_THROW(parallel_for(50, 1,
                              [&](int64_t b, int64_t) {
                                ran++;
                                if (b % 7 == 3) throw std::runtime_error("chunk");
                              }),
                 std::runtime_error);
    EXPECT_EQ(ran.load(), 50);
    std::atomic<int64_t> sum{0};
    parallel_for(100, 3, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) sum += i;
    });
    EXPECT_EQ(sum.load(), 4950);
  }
  set_num_threads(2);
}

// Workers that went to sleep (after the spin period) still wake for the next job, and resizing
// while workers spin or sleep neither hangs nor loses work.
TEST(ThreadPool, SleepWakeAndResize) {
  for (int threads : {2, 3, 1, 4, 2}) {
    set_num_threads(threads);
    EXPECT_EQ(num_threads(), threads);
    for (int pause_us : {0, 2000}) {
      // With 64 chunks of 200 us, more than one thread takes part (one alone needs >12 ms); on a
      // busy machine a worker may get no core in time, so a few attempts are allowed.
      int most_threads = 0;
      for (int attempt = 0; attempt < 5 && most_threads < std::min(threads, 2); ++attempt) {
        std::this_thread::sleep_for(std::chrono::microseconds(pause_us));  // let workers sleep
        std::mutex m;
        std::set<std::thread::id> ids;
        std::atomic<int64_t> sum{0};
        parallel_for(64, 1, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) sum += i;
          std::this_thread::sleep_for(std::chrono::microseconds(200));
          std::lock_guard g(m);
          ids.insert(std::this_thread::get_id());
        });
        EXPECT_EQ(sum.load(), 64 * 63 / 2);
        EXPECT_LE(int(ids.size()), threads);
        most_threads = std::max(most_threads, int(ids.size()));
      }
      EXPECT_GE(most_threads, std::min(threads, 2)) << threads << " threads, pause " << pause_us;
    }
  }
  set_num_threads(2);
}

// Calls from several outside threads at once are serialized, each sees all of its own chunks.
TEST(ThreadPool, ConcurrentCallers) {
  set_num_threads(2);
  std::vector<std::thread> callers;
  std::atomic<int> bad{0};
  for (int c = 0; c < 3; ++c)
    callers.emplace_back([&] {
      for (int job = 0; job < 500; ++job) {
        std::atomic<int64_t> sum{0};
        parallel_for(40, 2, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) sum += i;
        });
        if (sum.load() != 780) bad++;
      }
    });
  for (auto& t : callers) t.join();
  EXPECT_EQ(bad.load(), 0);
}

}  // namespace awq
