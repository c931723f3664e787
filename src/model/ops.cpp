#include "model/ops.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>

#include "base/error.h"
#include "base/thread_pool.h"
#include "kernels/isa.h"
#include "kernels/weight_memory.h"
#include "model/attention_kernels.h"

namespace awq {

void rmsnorm_row(const float* x, const float* w, int64_t n, float eps, float* out) {
  double ss = 0;  // double: the mean of squares of thousands of values, without drift
  for (int64_t i = 0; i < n; ++i) ss += double(x[i]) * x[i];
  const float inv = float(1.0 / std::sqrt(ss / double(n) + double(eps)));
  for (int64_t i = 0; i < n; ++i) out[i] = w[i] * (x[i] * inv);
}

void rmsnorm(const Mat& x, const std::vector<float>& w, float eps, Mat& out) {
  AWQ_CHECK(int64_t(w.size()) == x.cols, "rmsnorm: weight has {} elements, input has {} columns",
            w.size(), x.cols);
  if (&out != &x && (out.rows != x.rows || out.cols != x.cols))
    out.resize_for_overwrite(x.rows, x.cols);
  // Rows are independent: chunks of them on the pool (the calibration's 48k-row inputs), the
  // same bits for any split.
  parallel_for(x.rows, 256, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) rmsnorm_row(x.row(r), w.data(), x.cols, eps, out.row(r));
  });
}

std::shared_ptr<const RopeTable> rope_table(int64_t head_dim, float theta, int64_t n_pos) {
  static std::mutex mu;
  static std::map<std::pair<int64_t, float>, std::shared_ptr<const RopeTable>> cache;
  std::lock_guard lock(mu);
  auto& slot = cache[{head_dim, theta}];
  if (slot && slot->n_pos >= n_pos) return slot;
  auto t = std::make_shared<RopeTable>();
  t->head_dim = head_dim;
  t->theta = theta;
  t->n_pos = std::max<int64_t>({n_pos, slot ? 2 * slot->n_pos : 0, 64});
  const int64_t half = head_dim / 2;
  t->cos.resize(size_t(t->n_pos * half));
  t->sin.resize(size_t(t->n_pos * half));
  for (int64_t i = 0; i < half; ++i) {
    const double inv_freq = std::pow(double(theta), -double(2 * i) / double(head_dim));
    for (int64_t p = 0; p < t->n_pos; ++p) {
      const double a = double(p) * inv_freq;
      t->cos[size_t(p * half + i)] = float(std::cos(a));
      t->sin[size_t(p * half + i)] = float(std::sin(a));
    }
  }
  slot = t;
  return t;
}

void rope_rotate_half(float* x, int64_t head_dim, const float* cos, const float* sin) {
  const int64_t half = head_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    const float a = x[i], b = x[i + half];
    x[i] = a * cos[i] - b * sin[i];
    x[i + half] = b * cos[i] + a * sin[i];
  }
}

void rope_interleaved(float* x, int64_t head_dim, const float* cos, const float* sin) {
  for (int64_t i = 0; i < head_dim / 2; ++i) {
    const float a = x[2 * i], b = x[2 * i + 1];
    x[2 * i] = a * cos[i] - b * sin[i];
    x[2 * i + 1] = b * cos[i] + a * sin[i];
  }
}

void swiglu(float* gate, const float* up, int64_t n) {
  switch (kernels::active_isa()) {
    case kernels::Isa::Avx512:
      model_detail::avx512::swiglu(gate, up, n);
      break;
    case kernels::Isa::Avx2:
      model_detail::avx2::swiglu(gate, up, n);
      break;
    default:
      model_detail::generic::swiglu(gate, up, n);
      break;
  }
}

void geglu(float* gate, const float* up, int64_t n) {
  switch (kernels::active_isa()) {
    case kernels::Isa::Avx512:
      model_detail::avx512::geglu(gate, up, n);
      break;
    case kernels::Isa::Avx2:
      model_detail::avx2::geglu(gate, up, n);
      break;
    default:
      model_detail::generic::geglu(gate, up, n);
      break;
  }
}

namespace {

void check_variant(const AttnVariant& variant) {
  AWQ_CHECK(variant.window >= 0 && variant.softcap >= 0,
            "attention: sliding window {} / soft-cap {} must be >= 0 (0: none)", variant.window,
            variant.softcap);
}

void attend_args(const model_detail::AttnArgs& a) {
  switch (kernels::active_isa()) {
    case kernels::Isa::Avx512:
      model_detail::avx512::attend(a);
      break;
    case kernels::Isa::Avx2:
      model_detail::avx2::attend(a);
      break;
    default:
      model_detail::generic::attend(a);
      break;
  }
}

}  // namespace

void attend_causal(const float* q, int64_t ldq, int64_t nq, int64_t p0, const float* k,
                   const float* v, int64_t ldkv, int64_t hd, float scale, float* out, int64_t ldo,
                   const AttnVariant& variant) {
  check_variant(variant);
  model_detail::AttnArgs a{q, ldq, nq, p0, k, v, ldkv, hd, scale, out, ldo};
  a.window = variant.window;
  a.softcap = variant.softcap;
  attend_args(a);
}

void KvCache::resize(int64_t heads, int64_t cap, int64_t hd) {
  AWQ_CHECK(heads > 0 && cap > 0 && hd > 0, "KvCache: {} heads x {} positions x {} is empty", heads,
            cap, hd);
  kv_heads_ = heads;
  capacity_ = cap;
  padded_ = (cap + kKeyTile - 1) / kKeyTile * kKeyTile;
  head_dim_ = hd;
  mem_ = kernels::alloc_weight_bytes(size_t(bytes()));
  k_ = reinterpret_cast<float*>(mem_.get());
  v_ = k_ + heads * padded_ * hd;
}

void KvCache::store(const Mat& k_new, const Mat& v_new, int64_t pos) {
  AWQ_CHECK(
      k_new.cols == kv_heads_ * head_dim_ && v_new.cols == k_new.cols && v_new.rows == k_new.rows,
      "KV cache: new keys [{} x {}] / values [{} x {}], expected {} columns", k_new.rows,
      k_new.cols, v_new.rows, v_new.cols, kv_heads_ * head_dim_);
  AWQ_CHECK(pos >= 0 && pos + k_new.rows <= capacity_, "KV cache holds {} positions; {} needed",
            capacity_, pos + k_new.rows);
  for (int64_t t = 0; t < k_new.rows; ++t) {
    const int64_t p = pos + t, tile = p / kKeyTile * kKeyTile * head_dim_, lane = p % kKeyTile;
    for (int64_t g = 0; g < kv_heads_; ++g) {
      const float* kr = k_new.row(t) + g * head_dim_;
      float* kt = k_ + g * padded_ * head_dim_ + tile + lane;
      for (int64_t d = 0; d < head_dim_; ++d) kt[d * kKeyTile] = kr[d];
      std::copy_n(v_new.row(t) + g * head_dim_, head_dim_, v_ + (g * capacity_ + p) * head_dim_);
    }
  }
}

void attend_cached(const float* q, int64_t ldq, int64_t T, int64_t nh, int64_t p0,
                   const KvCache& cache, float scale, float* out, int64_t ldo,
                   const AttnVariant& variant) {
  check_variant(variant);
  const int64_t nkv = cache.kv_heads(), hd = cache.head_dim();
  AWQ_CHECK(nkv > 0 && nh % nkv == 0, "attention: {} query heads cannot share {} key/value heads",
            nh, nkv);
  AWQ_CHECK(T >= 1 && p0 >= 0 && p0 + T <= cache.capacity(),
            "attention: positions {}..{} outside the cache's {}", p0, p0 + T - 1, cache.capacity());
  const int64_t group = nh / nkv;
  auto args = [&](int64_t h, int64_t heads) {
    model_detail::AttnArgs a{
        q + h * hd, ldq,          T,  p0, cache.k_tiles(h / group), cache.v_head(h / group), hd, hd,
        scale,      out + h * hd, ldo};
    a.heads = heads;
    a.k_tiled = true;
    a.window = variant.window;
    a.softcap = variant.softcap;
    return a;
  };
  if (T > 1) {  // a chunk of prefill: one task per head
    parallel_for(nh, 1, [&](int64_t h0, int64_t h1) {
      for (int64_t h = h0; h < h1; ++h) attend_args(args(h, 1));
    });
    return;
  }
  // Decode tasks: the query heads of one key/value head together, so that its keys and values
  // come from memory once, split into runs of 4 heads only as far as needed to give every thread
  // work. A head's result is the same in any split.
  constexpr int64_t kHeadsPerSplit = 4;
  const int64_t passes = (group + kHeadsPerSplit - 1) / kHeadsPerSplit;
  const int64_t splits = std::min(passes, (int64_t(num_threads()) + nkv - 1) / nkv);
  const int64_t heads_per_task = (passes + splits - 1) / splits * kHeadsPerSplit;
  parallel_for(nkv * splits, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t g = t / splits, h0 = g * group + (t % splits) * heads_per_task;
      const int64_t heads = std::min(heads_per_task, (g + 1) * group - h0);
      if (heads > 0) attend_args(args(h0, heads));
    }
  });
}

}  // namespace awq
