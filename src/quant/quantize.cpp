#include "quant/quantize.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "base/error.h"
#include "base/thread_pool.h"
#include "quant/group_kernels.h"

namespace awq {
namespace {

// Runs the kernel over all rows in fixed chunks; on failure reports the first bad row (the
// lowest, whatever the thread count) with the column that made it bad.
void run_rows(qk::RowsJob job, const float* w, int64_t out, const std::string& tensor) {
  const int64_t in = job.in, ng = in / job.group;
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 16) / in);
  std::vector<qk::RowsStatus> status(static_cast<size_t>((out + grain - 1) / grain));
  const qk::KernelTable& k = qk::kernels();
  parallel_for(out, grain, [&](int64_t r0, int64_t r1) {
    qk::RowsJob j = job;
    j.w = w + r0 * in;
    j.rows = r1 - r0;
    if (j.codes) j.codes += r0 * in;
    if (j.deq) j.deq += r0 * in;
    if (j.scales) j.scales += r0 * ng;
    if (j.zeros) j.zeros += r0 * ng;
    qk::RowsStatus s = k.quantize_rows(j);
    if (s.kind != 0) s.row += r0;
    status[size_t(r0 / grain)] = s;
  });
  for (const qk::RowsStatus& s : status) {
    if (s.kind == 0) continue;
    const float* row = w + s.row * in;
    if (s.kind == 1) {
      int64_t col = 0;
      while (col < in && std::isfinite(row[col])) ++col;
      fail("tensor '{}': weight at (row {}, col {}) is {}; cannot quantize a non-finite weight",
           tensor, s.row, col, col < in ? row[col] : 0.0f);
    }
    fail(
        "tensor '{}': row {} has a group whose range needs a scale beyond the f16 range "
        "(|w| up to ~1e6 with {} bits); the weights are not plausible",
        tensor, s.row, job.bits);
  }
}

}  // namespace

QuantizedMatrix quantize(const float* w, int64_t out, int64_t in, const QuantSpec& spec,
                         const std::string& tensor) {
  spec.validate(in, tensor);
  AWQ_CHECK(out >= 0, "tensor '{}': negative row count {}", tensor, out);
  QuantizedMatrix q;
  q.out = out;
  q.in = in;
  q.spec = spec;
  q.group = spec.group_for(in);
  q.codes.resize(size_t(out * in));
  q.scales.resize(size_t(out * (in / q.group)));
  q.zeros.resize(q.scales.size());
  qk::RowsJob job;
  job.in = in;
  job.group = q.group;
  job.bits = spec.bits;
  job.zero_point = spec.zero_point;
  job.f16_scale = spec.f16_scales;
  job.codes = q.codes.data();
  job.scales = q.scales.data();
  job.zeros = q.zeros.data();
  run_rows(job, w, out, tensor);
  return q;
}

void fake_quantize(float* w, int64_t out, int64_t in, const QuantSpec& spec,
                   const std::string& tensor) {
  spec.validate(in, tensor);
  AWQ_CHECK(out >= 0, "tensor '{}': negative row count {}", tensor, out);
  qk::RowsJob job;
  job.in = in;
  job.group = spec.group_for(in);
  job.bits = spec.bits;
  job.zero_point = spec.zero_point;
  job.f16_scale = spec.f16_scales;
  job.deq = w;
  run_rows(job, w, out, tensor);
}

}  // namespace awq
