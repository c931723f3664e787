// The element-wise and per-row pieces of the Llama block: RMSNorm, RoPE (Hugging Face's
// rotate-half form), SiLU and GELU-tanh, and the causal attention core (with sliding windows and
// logit soft-capping). All f32, all deterministic for any thread count (each output row is produced
// by one thread with a fixed summation order).
#pragma once
#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "base/mat.h"

namespace awq {

// out = x / sqrt(mean(x^2) + eps) * w, per row. out may be x.
void rmsnorm(const Mat& x, const std::vector<float>& w, float eps, Mat& out);
void rmsnorm_row(const float* x, const float* w, int64_t n, float eps, float* out);

// cos/sin of pos * theta^(-2i/head_dim) for i < head_dim/2, computed in double and stored as f32.
struct RopeTable {
  int64_t head_dim = 0, n_pos = 0;
  double theta = 0;
  std::vector<float> cos, sin;  // [n_pos, head_dim/2]
  const float* cos_at(int64_t pos) const { return cos.data() + pos * (head_dim / 2); }
  const float* sin_at(int64_t pos) const { return sin.data() + pos * (head_dim / 2); }
};
// A shared, immutable table covering at least positions [0, n_pos) (cached per head_dim and theta).
std::shared_ptr<const RopeTable> rope_table(int64_t head_dim, float theta, int64_t n_pos);

// Rotate-half RoPE on one head vector x[head_dim]: the pair (x[i], x[i + head_dim/2]) is rotated by
// the angle of frequency i.
void rope_rotate_half(float* x, int64_t head_dim, const float* cos, const float* sin);
// llama2.c / GGML interleaved-pair RoPE: the pair (x[2i], x[2i+1]) is rotated by frequency i.
void rope_interleaved(float* x, int64_t head_dim, const float* cos, const float* sin);

inline float silu(float x) {
  return x / (1.0f + std::exp(-x));
}

// gate[i] = silu(gate[i]) * up[i] for i < n, vectorized for kernels::active_isa() (a polynomial
// exp, within a few ulp of silu() above, which stays the scalar reference; NaN stays NaN).
void swiglu(float* gate, const float* up, int64_t n);

// GELU, tanh approximation (PyTorch's gelu(approximate='tanh'), Hugging Face's
// gelu_pytorch_tanh): 0.5·x·(1 + tanh(sqrt(2/pi)·(x + 0.044715·x^3))). The scalar reference.
inline float gelu_tanh(float x) {
  return 0.5f * x * (1.0f + std::tanh(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}

// gate[i] = gelu_tanh(gate[i]) * up[i] for i < n (Gemma's GeGLU), vectorized for
// kernels::active_isa() as swiglu: 0.5·(1 + tanh(u)) = 1 / (1 + exp(-2u)), so x / (1 + exp(-2u))
// with the polynomial exp, which has no cancellation where tanh(u) is near -1 (within a few f32
// roundings of the formula in double; NaN stays NaN).
void geglu(float* gate, const float* up, int64_t n);

// Variants of the attention scores (Hugging Face's semantics). window W > 0: sliding-window
// attention, the query at position i sees keys j with i - W < j <= i (W keys, itself included;
// Mistral, Qwen2, Gemma-2/3's local layers); 0: every key 0..i. softcap c > 0: each score
// s = q·k·scale becomes c·tanh(s / c) before the mask and the softmax (Gemma-2's attention-logit
// soft-capping, c = 50); 0: none. The default is plain causal attention.
struct AttnVariant {
  int64_t window = 0;
  float softcap = 0;
};

// Causal attention for one sequence and one query head. Queries are at positions p0 .. p0+nq-1; the
// keys and values of positions 0 .. p0+nq-1 are rows of k and v (row stride ldkv, already offset to
// this head's columns). Writes out[i] = softmax(q_i·K^T·scale over positions <= p0+i)·V.
// Scratch memory is O(keys · head_dim), never O(keys^2). Runs the variant for
// kernels::active_isa(). Four or more queries take the prefill path (keys transposed, four queries
// per pass), fewer the decode path: the two agree to rounding, not bit for bit. variant: a sliding
// window and/or soft-capping (AttnVariant); with a window, keys before p0 - W + 1 are not read.
void attend_causal(const float* q, int64_t ldq, int64_t nq, int64_t p0, const float* k,
                   const float* v, int64_t ldkv, int64_t head_dim, float scale, float* out,
                   int64_t ldo, const AttnVariant& variant = {});

// One sequence's key/value cache for one block, head-major: each key/value head's positions
// 0..capacity-1 are one contiguous run, so a decode step streams them (position-major rows would
// put a head's 64 floats at a 1 KiB stride: a quarter of each row's cache lines, on a quarter of
// the cache's sets). Values are rows [position][head_dim]. Keys are stored transposed in tiles of
// kKeyTile positions, [position / 16][head_dim][16], so that scores come out 16 positions per
// vector with no horizontal sums (as prefill computes them after transposing). Keys and values
// share one allocation, in huge pages from 4 MiB up as the weights are
// (kernels/weight_memory.h): decode reads all of it once per token.
class KvCache {
 public:
  static constexpr int64_t kKeyTile = 16;
  void resize(int64_t kv_heads, int64_t capacity, int64_t head_dim);  // zeroed
  int64_t kv_heads() const { return kv_heads_; }
  int64_t capacity() const { return capacity_; }
  int64_t head_dim() const { return head_dim_; }
  const float* k_tiles(int64_t g) const { return k_ + g * padded_ * head_dim_; }
  const float* v_head(int64_t g) const { return v_ + g * capacity_ * head_dim_; }
  float key(int64_t g, int64_t pos, int64_t d) const {
    return k_tiles(g)[pos / kKeyTile * kKeyTile * head_dim_ + d * kKeyTile + pos % kKeyTile];
  }
  float value(int64_t g, int64_t pos, int64_t d) const { return v_head(g)[pos * head_dim_ + d]; }
  int64_t bytes() const { return (padded_ + capacity_) * kv_heads_ * head_dim_ * 4; }
  // Stores rows [kv_heads * head_dim] of k_new / v_new (n of them) at positions pos .. pos+n-1.
  void store(const Mat& k_new, const Mat& v_new, int64_t pos);

 private:
  int64_t kv_heads_ = 0, capacity_ = 0, padded_ = 0, head_dim_ = 0;  // padded_: whole key tiles
  std::shared_ptr<uint8_t> mem_;
  float* k_ = nullptr;
  float* v_ = nullptr;
};

// Causal attention of T new tokens of one sequence (queries q [T, ldq], nh heads side by side) at
// positions p0..p0+T-1, whose keys and values are already in the cache, over the cache's positions
// 0..p0+T-1; out [T, ldo]. Decode (T = 1): the query heads that share a key/value head
// (grouped-query attention) are computed together, so their keys and values are read from memory
// once for all of them instead of once per head. On the pool; equal to attend_causal per head to
// rounding, and the same bits for any thread count. variant as attend_causal: with a window, only
// the cache's positions from p0 - W + 1 (rounded down to a key tile) are read.
void attend_cached(const float* q, int64_t ldq, int64_t T, int64_t nh, int64_t p0,
                   const KvCache& cache, float scale, float* out, int64_t ldo,
                   const AttnVariant& variant = {});

}  // namespace awq
