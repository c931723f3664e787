// A memory read-bandwidth probe: the roofline that decode speed is measured against.
#pragma once
#include <cstdint>
#include <memory>

namespace awq::kernels {

// The probe as an object that keeps its buffer, so that it can be measured again between timed
// runs (awq bench interleaves probes with its decode runs and takes their median: a VM's
// bandwidth moves by tens of percent within minutes, and one reading taken before the runs
// made the roofline fraction move with it). The constructor allocates and faults the buffer in.
class BandwidthProbe {
 public:
  explicit BandwidthProbe(int threads, int64_t buffer_bytes = 0);
  // The median GB/s of `passes` full reads of the buffer with the probe's thread count.
  double measure(int passes = 3) const;
  int64_t buffer_bytes() const { return floats_ * 4; }

 private:
  int threads_ = 1;
  int64_t per_thread_ = 0, floats_ = 0;  // floats per thread slice, in all
  std::shared_ptr<uint8_t> buf_;
};

// Sums a buffer much larger than the last-level cache with `threads` threads (each its own
// contiguous slice) and returns the median over a few runs, in GB/s (1e9 bytes/s). The buffer
// is `buffer_bytes` (default 1 GiB, or AWQ_BW_BYTES), in the same kind of memory as packed
// weights (weight_memory.h), read with the software prefetch the decode kernels use: the
// fastest read a core was measured to make, so that decode's "% of roofline" cannot flatter.
// One BandwidthProbe measured once (5 passes).
double measure_memory_bandwidth_gbs(int threads, int64_t buffer_bytes = 0);

// The machine's f32 matrix-product rate: one 1024³ gemm_f32 on the current thread pool (the
// kernel the f32 path, prefill panels and the AWQ search run on), best of three, ~0.1 s and
// 12 MiB. The reference that `awq quantize` and `awq eval` report their own GFLOP/s against.
double measure_sgemm_gflops();

}  // namespace awq::kernels
