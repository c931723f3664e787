#include "base/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
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
    EXPECT_THROW(parallel_for(10, 1, [](int64_t b, int64_t) {
                   if (b == 5) throw std::runtime_error("x");
                 }),
                 std::runtime_error);
  }
  set_num_threads(2);
}

TEST(ThreadPool, NestedCallsRunInline) {
  std::atomic<int> n{0};
  parallel_for(4, 1, [&](int64_t, int64_t) { parallel_for(4, 1, [&](int64_t, int64_t) { n++; }); });
  EXPECT_EQ(n.load(), 16);
}

}  // namespace awq
