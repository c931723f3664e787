// One process-wide pool of worker threads. parallel_for splits [0, n) into chunks whose boundaries
// depend only on n and the grain, never on the thread count, so any computation whose chunks write
// disjoint outputs gives bit-identical results for 1 or N threads (DESIGN.md: determinism).
#pragma once
#include <cstdint>
#include <functional>

namespace awq {

// Number of threads used by parallel_for; set once from -t / AWQ_THREADS (default: all cores).
void set_num_threads(int n);
int num_threads();

// Calls fn(begin, end) for consecutive chunks of at most `grain` items covering [0, n). Chunks run
// concurrently on the pool; the call returns when all are done. Exceptions propagate (the first).
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace awq
