// Unit pieces of the block: RMSNorm, RoPE (rotate-half vs interleaved after the converter's row
// permutation), SwiGLU and GeGLU, the attention core (both of its paths, GQA, causal masking,
// sliding windows and logit soft-capping).
#include <gtest/gtest.h>

#include <cmath>
#include <iterator>
#include <limits>
#include <random>

#include "base/error.h"
#include "base/thread_pool.h"
#include "kernels/isa.h"
#include "model/block.h"
#include "model/config.h"
#include "model/ops.h"
#include "model/rope.h"
#include "test_util.h"

namespace awq {
namespace {
using kernels::Isa;

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// m's elements from randn (the Mat keeps its shape).
void fill_randn(Mat& m, uint32_t seed, float scale = 1.0f) {
  const std::vector<float> r = randn(size_t(m.size()), seed, scale);
  m.data.assign(r.begin(), r.end());
}

TEST(Ops, RmsNormMatchesDefinition) {
  Mat x(3, 40);
  fill_randn(x, 1, 3.0f);
  const std::vector<float> w = randn(40, 2);
  Mat y;
  rmsnorm(x, w, 1e-5f, y);
  for (int64_t r = 0; r < 3; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < 40; ++i) ss += double(x.at(r, i)) * x.at(r, i);
    const double inv = 1.0 / std::sqrt(ss / 40 + 1e-5);
    for (int64_t i = 0; i < 40; ++i) EXPECT_NEAR(y.at(r, i), x.at(r, i) * inv * w[size_t(i)], 1e-5);
  }
  // In place gives the same.
  Mat z = x;
  rmsnorm(z, w, 1e-5f, z);
  EXPECT_EQ(z.data, y.data);
  // eps matters for a zero row instead of dividing by zero.
  Mat zero(1, 40);
  rmsnorm(zero, w, 1e-5f, y);
  for (float v : y.data) EXPECT_EQ(v, 0.0f);
}

TEST(Ops, RopeRotateHalfEqualsInterleavedAfterPermutation) {
  const int64_t hd = 16, half = hd / 2;
  const auto table = rope_table(hd, 10000.0f, 300);
  const std::vector<float> x = randn(size_t(hd), 3);
  for (int64_t pos : {0, 1, 7, 299}) {
    // Interleaved layout: pairs (2i, 2i+1). Rotate-half layout: pairs (i, i+half), i.e. the
    // converter's row permutation new[c*half + i] = old[2i + c].
    std::vector<float> inter = x, rh(static_cast<size_t>(hd));
    for (int64_t i = 0; i < half; ++i) {
      rh[size_t(i)] = x[size_t(2 * i)];
      rh[size_t(i + half)] = x[size_t(2 * i + 1)];
    }
    rope_interleaved(inter.data(), hd, table->cos_at(pos), table->sin_at(pos));
    rope_rotate_half(rh.data(), hd, table->cos_at(pos), table->sin_at(pos));
    for (int64_t i = 0; i < half; ++i) {
      EXPECT_EQ(rh[size_t(i)], inter[size_t(2 * i)]);
      EXPECT_EQ(rh[size_t(i + half)], inter[size_t(2 * i + 1)]);
    }
    // A rotation: norms are kept; position 0 is the identity.
    double n0 = 0, n1 = 0;
    for (int64_t i = 0; i < hd; ++i)
      n0 += double(x[size_t(i)]) * x[size_t(i)], n1 += double(rh[size_t(i)]) * rh[size_t(i)];
    EXPECT_NEAR(n0, n1, 1e-4);
    if (pos == 0) {
      for (int64_t i = 0; i < hd; ++i) EXPECT_EQ(inter[size_t(i)], x[size_t(i)]);
    }
  }
}

// Dynamic NTK scaling gives every decoded position past max_position_embeddings new
// frequencies; the table cache must not keep one table per token.
TEST(Ops, RotaryTableCacheStaysBoundedUnderDynamicScaling) {
  RopeSpec spec;
  spec.rotary_dim = 16;
  spec.max_position_embeddings = 32;
  spec.scaling.type = "dynamic";
  spec.scaling.factor = 2.0;
  const auto first = rotary_table(spec, 33);
  for (int64_t len = 34; len < 300; ++len) {
    const auto t = rotary_table(spec, len);
    ASSERT_GE(t->n_pos, len);
    EXPECT_LE(rotary_table_cache_entries(), 9u) << "at length " << len;
  }
  // A table still held by a caller is not freed under it, and later lengths see new frequencies.
  EXPECT_EQ(first->n_pos, std::max<int64_t>(33, 64));
  EXPECT_NE(first->inv_freq, rotary_table(spec, 300)->inv_freq);
}

TEST(Ops, RopeAnglesFollowTheta) {
  const auto t = rope_table(8, 500000.0f, 10);
  // frequency i is theta^(-2i/hd): for i = 1, hd = 8: theta^-0.25
  EXPECT_NEAR(t->cos_at(3)[1], std::cos(3.0 * std::pow(500000.0, -0.25)), 1e-7);
  EXPECT_NEAR(t->sin_at(9)[3], std::sin(9.0 * std::pow(500000.0, -0.75)), 1e-7);
  EXPECT_GE(rope_table(8, 500000.0f, 1000)->n_pos, 1000);
}

// Attention of one query q[hd] at position pos over the keys and values of positions j, rows
// k + j * ld and v + j * ld, in double, as Hugging Face computes it: scores (q·k)·scale, capped to
// c·tanh(s / c) (variant.softcap c > 0), masked to positions pos - W < j <= pos (variant.window
// W > 0; else j <= pos), softmax, weighted sum of values.
std::vector<double> ref_attend(const float* q, const float* k, const float* v, int64_t ld,
                               int64_t hd, int64_t pos, double scale,
                               const AttnVariant& variant = {}) {
  const int64_t lo = variant.window > 0 ? std::max<int64_t>(0, pos - variant.window + 1) : 0;
  std::vector<double> s(size_t(pos + 1), 0.0);
  double mx = -1e300;
  for (int64_t j = lo; j <= pos; ++j) {
    double d = 0;
    for (int64_t c = 0; c < hd; ++c) d += double(q[c]) * k[j * ld + c];
    d *= scale;
    if (variant.softcap > 0) d = variant.softcap * std::tanh(d / variant.softcap);
    s[size_t(j)] = d;
    mx = std::max(mx, d);
  }
  double sum = 0;
  for (int64_t j = lo; j <= pos; ++j) sum += (s[size_t(j)] = std::exp(s[size_t(j)] - mx));
  std::vector<double> o(size_t(hd), 0.0);
  for (int64_t j = lo; j <= pos; ++j)
    for (int64_t c = 0; c < hd; ++c) o[size_t(c)] += s[size_t(j)] / sum * v[j * ld + c];
  return o;
}

// The variants the attention tests run: none, soft-capping alone, and windows of 1, 3, 16, 17 keys
// (one key, a few, exactly one and one more than a 16-key tile) and 100 (longer than the
// sequences), each without and with a soft-cap of 5 (scores of std ~2-4 here: the cap bends most
// of them).
std::vector<AttnVariant> attn_variants() {
  std::vector<AttnVariant> all;
  for (const int64_t w : {0, 1, 3, 16, 17, 100})
    for (const float c : {0.0f, 5.0f}) all.push_back({w, c});
  return all;
}

std::string variant_name(const AttnVariant& var) {
  return " window " + std::to_string(var.window) + " softcap " + std::to_string(var.softcap);
}

// Every compiled variant the CPU can run (generic, AVX2, AVX-512), every attention variant
// (attn_variants), against the double-precision reference.
TEST(Ops, AttendCausalMatchesNaiveOnEveryIsa) {
  const int64_t T = 37;
  const Isa before = kernels::active_isa();
  for (const int64_t hd : {8, 12, 64, 128, 256}) {  // 8, 64, 128, 256: compile-time widths
    const auto q = randn(size_t(T * hd), 4, 2.0f), k = randn(size_t(T * hd), 5, 2.0f),
               v = randn(size_t(T * hd), 6);
    const float scale = float(1.0 / std::sqrt(double(hd)));
    // Tolerance: at head_dim 64 the raw scores reach ~100 (q, k of std 2), so the f32 rounding of
    // one score (6e-6) moves its softmax weight by ~1e-6 relative; outputs are O(1). A score is a
    // sum over d in order: its rounding grows with the head width.
    const double tol = 4e-6 * double(std::max<int64_t>(hd, 64)) / 64.0;
    for (const Isa isa : kernels::available_isas()) {
      kernels::force_isa(isa);
      std::vector<float> plain;  // the variant {0, 0}'s prefill
      for (const AttnVariant& var : attn_variants()) {
        SCOPED_TRACE(std::string(kernels::isa_name(isa)) + " head_dim " + std::to_string(hd) +
                     variant_name(var));
        auto check = [&](const float* got, int64_t pos) {  // one query's output against ref_attend
          const auto ref =
              ref_attend(q.data() + pos * hd, k.data(), v.data(), hd, hd, pos, scale, var);
          for (int64_t c = 0; c < hd; ++c)
            ASSERT_NEAR(got[c], ref[size_t(c)], tol) << "position " << pos << ", " << c;
        };
        // Whole sequence at once (the prefill path: transposed keys, four queries per pass).
        std::vector<float> all(size_t(T * hd));
        attend_causal(q.data(), hd, T, 0, k.data(), v.data(), hd, hd, scale, all.data(), hd, var);
        for (int64_t i = 0; i < T; ++i) {
          check(all.data() + i * hd, i);
          if (HasFatalFailure()) return;
        }
        // A window longer than the sequence is no window: the same bits.
        if (var.window == 0 && var.softcap == 0) plain = all;
        if (var.window >= T && var.softcap == 0) {
          ASSERT_EQ(all, plain);
        }
        // One query at a time against the keys so far (the decode path): equal to rounding.
        for (int64_t i = 0; i < T; ++i) {
          std::vector<float> one(static_cast<size_t>(hd));
          attend_causal(q.data() + i * hd, hd, 1, i, k.data(), v.data(), hd, hd, scale, one.data(),
                        hd, var);
          for (int64_t c = 0; c < hd; ++c)
            ASSERT_NEAR(one[size_t(c)], all[size_t(i * hd + c)],
                        tol * (1 + std::abs(all[size_t(i * hd + c)])))
                << i;
        }
        // Chunks of queries at offsets (chunked prefill with a cache), across the 16-key tiles:
        // 2 and 3 queries take the decode path, 4 or more the prefill path, whose sums are the
        // same as the whole sequence's, bit for bit (with a window too: keys before a query's
        // window add exact zeros, wherever its block starts).
        for (const auto& [nq, p0] :
             {std::pair<int64_t, int64_t>{2, 15}, {3, 14}, {4, 13}, {5, 14}, {10, 20}, {19, 18}}) {
          std::vector<float> chunk(size_t(nq * hd));
          attend_causal(q.data() + p0 * hd, hd, nq, p0, k.data(), v.data(), hd, hd, scale,
                        chunk.data(), hd, var);
          for (int64_t i = 0; i < nq; ++i) check(chunk.data() + i * hd, p0 + i);
          if (nq >= 4) {
            for (int64_t i = 0; i < nq * hd; ++i)
              ASSERT_EQ(chunk[size_t(i)], all[size_t(p0 * hd + i)]) << nq << " at " << p0;
          }
        }
      }
    }
  }
  kernels::force_isa(before);
}

// The vectorized SwiGLU against silu() in double on every ISA: random values over the range
// activations take, the clamp edges (|x| around 87, where exp would overflow), signed zeros,
// infinities and NaN, at lengths that are not multiples of the vector width.
TEST(Ops, SwigluMatchesSiluOnEveryIsa) {
  const Isa before = kernels::active_isa();
  std::vector<float> gate = randn(1000, 11, 6.0f), up = randn(1000, 12, 2.0f);
  const float specials[] = {0.0f,  -0.0f,  1e-30f, -1e-30f, 86.9f,  87.0f, 87.5f,
                            88.8f, -86.9f, -87.0f, -87.5f,  -88.8f, 500.f, -500.f,
                            1e30f, -1e30f, 20.0f,  -20.0f,  1.0f,   -1.0f};
  for (size_t i = 0; i < std::size(specials); ++i) gate[i * 7] = specials[i];
  for (const Isa isa : kernels::available_isas()) {
    kernels::force_isa(isa);
    for (const int64_t n : {int64_t(1), int64_t(15), int64_t(17), int64_t(1000)}) {
      std::vector<float> got(gate.begin(), gate.begin() + n);
      swiglu(got.data(), up.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        const double x = gate[size_t(i)], u = up[size_t(i)];
        const double want = x / (1.0 + std::exp(-x)) * u;
        // A few f32 roundings of the polynomial exp, the division and the product; below -87
        // the clamp gives ~x·e^-87 instead of x·e^x, both below 1e-34 (zero next to any
        // activation).
        ASSERT_NEAR(got[size_t(i)], want, 4e-7 * std::fabs(want) + 1e-34)
            << kernels::isa_name(isa) << " n=" << n << " x=" << x;
      }
    }
    const float inf = std::numeric_limits<float>::infinity();
    std::vector<float> g = {inf, -inf, std::nanf("")}, u = {2.0f, 2.0f, 1.0f};
    swiglu(g.data(), u.data(), 3);
    EXPECT_EQ(g[0], inf) << kernels::isa_name(isa);
    EXPECT_TRUE(std::isnan(g[1])) << kernels::isa_name(isa);  // -inf / inf, as silu() gives
    EXPECT_TRUE(std::isnan(g[2])) << kernels::isa_name(isa);
  }
  kernels::force_isa(before);
}

// A cache of `heads` key/value heads x cap positions x hd holding random keys (std key_scale) and
// values (std 1) at positions pos..pos+rows-1; k and v receive those rows [rows, heads * hd].
KvCache random_cache(int64_t heads, int64_t cap, int64_t hd, int64_t rows, int64_t pos,
                     uint32_t seed, Mat& k, Mat& v, float key_scale = 1.0f) {
  k.resize(rows, heads * hd);
  v.resize(rows, heads * hd);
  fill_randn(k, seed, key_scale);
  fill_randn(v, seed + 1);
  KvCache c;
  c.resize(heads, cap, hd);
  c.store(k, v, pos);
  return c;
}

// The cache's layout: per key/value head, keys in tiles [position / 16][head_dim][16] (capacity
// padded to whole tiles), then values as rows [position][head_dim]; one zeroed allocation.
TEST(Ops, KvCacheStoresKeyTilesAndValueRowsAndRejectsOverflow) {
  Mat k, v;
  KvCache c = random_cache(3, 5, 4, 2, 3, 31, k, v);
  for (int64_t t = 0; t < 2; ++t)
    for (int64_t g = 0; g < 3; ++g)
      for (int64_t d = 0; d < 4; ++d) {
        ASSERT_EQ(c.k_tiles(g)[d * 16 + 3 + t], k.row(t)[g * 4 + d]);
        ASSERT_EQ(c.key(g, 3 + t, d), k.row(t)[g * 4 + d]);
        ASSERT_EQ(c.v_head(g)[(3 + t) * 4 + d], v.row(t)[g * 4 + d]);
        ASSERT_EQ(c.value(g, 3 + t, d), v.row(t)[g * 4 + d]);
      }
  EXPECT_THROW(c.store(k, v, 4), Error);  // positions 4, 5: one past the capacity
  Mat narrow(1, 8);
  EXPECT_THROW(c.store(narrow, narrow, 0), Error);
  EXPECT_EQ(c.bytes(), (16 + 5) * 3 * 4 * 4);
  EXPECT_EQ(c.k_tiles(1), c.k_tiles(0) + 16 * 4);  // one padded tile per head here
  EXPECT_EQ(c.v_head(0), c.k_tiles(2) + 16 * 4);   // values after the keys
  EXPECT_EQ(c.v_head(1), c.v_head(0) + 5 * 4);
  EXPECT_EQ(c.key(2, 2, 1), 0.0f);  // zeroed; position 2 was never stored
  EXPECT_EQ(c.value(2, 2, 1), 0.0f);
  // Positions past one tile land in the next: 20 positions of head width 2.
  Mat k20, v20;
  const KvCache w = random_cache(1, 20, 2, 20, 0, 33, k20, v20);
  EXPECT_EQ(w.k_tiles(0)[2 * 16 + 1 * 16 + 3], k20.row(19)[1]);  // tile 1, d 1, lane 3
}

// Attention of T = 1 (decode: query heads sharing key/value heads together; group sizes 1, 2, 3,
// 5, 8: whole and partial passes of 4 and 8; 16/2 with 3 threads splits a group of 8) and T = 2, 3,
// 37 (prefill chunks at p0 > 0: per head; blocks of 1 to 4 queries) new tokens against the cache,
// ending at positions around the 16-key tiles, for every attention variant (attn_variants), against
// the double-precision attention per head, on every ISA; the same bits for 1, 2 and 3 threads (the
// split into tasks depends on the thread count) for the plain variant and window 17 with softcap 5.
TEST(Ops, AttendCachedMatchesPerHeadAttentionOnEveryIsa) {
  const Isa before = kernels::active_isa();
  const int saved_threads = num_threads();
  struct Heads {
    int64_t nh, nkv;
  };
  // 8: no shared-head decode kernel (per head); 64, 128, 256: decode_heads.
  for (const int64_t hd : {8, 64, 128, 256}) {
    for (const Heads h :
         {Heads{4, 4}, Heads{8, 4}, Heads{12, 4}, Heads{10, 2}, Heads{16, 2}, Heads{32, 4}}) {
      if (hd == 256 && h.nh == 32) continue;  // (time: 16/2 runs its group of 8)
      const int64_t cap = 40, qd = h.nh * hd;
      Mat k, v;
      const KvCache cache = random_cache(h.nkv, cap, hd, cap, 0, 41, k, v, 2.0f);
      const std::vector<float> q = randn(size_t(37 * qd), 43, 2.0f);
      const float scale = float(1.0 / std::sqrt(double(hd)));
      // Tolerance as AttendCausalMatchesNaiveOnEveryIsa (scores up to ~100 at std 2), scaled with
      // the head width: a score is a sum over d in order, whose rounding grows with the number of
      // terms; 6e-6 at hd 64, where the worst of these 37-query chunks measured 4.7e-6 (the
      // variants' worst is no larger).
      const double tol = 6e-6 * double(std::max<int64_t>(hd, 64)) / 64.0;
      for (const AttnVariant& var : attn_variants()) {
        for (const int64_t T : {1, 2, 3, 37}) {  // 37: blocks of 4 queries and one more
          for (const int64_t last : {2, 15, 16, 37, 39}) {
            const int64_t p0 = last - T + 1;
            if (p0 < 0 || (T > 5 && p0 == 0)) continue;
            // Reference: query (i, head) against positions 0..p0+i of its key/value head.
            std::vector<double> want(size_t(T * qd));
            for (int64_t i = 0; i < T; ++i)
              for (int64_t head = 0; head < h.nh; ++head) {
                const int64_t g = head / (h.nh / h.nkv);
                const auto o = ref_attend(q.data() + i * qd + head * hd, k.data.data() + g * hd,
                                          v.data.data() + g * hd, k.cols, hd, p0 + i, scale, var);
                std::copy(o.begin(), o.end(), want.begin() + i * qd + head * hd);
              }
            for (const Isa isa : kernels::available_isas()) {
              SCOPED_TRACE(std::string(kernels::isa_name(isa)) + " hd " + std::to_string(hd) +
                           " heads " + std::to_string(h.nh) + "/" + std::to_string(h.nkv) + " T " +
                           std::to_string(T) + " p0 " + std::to_string(p0) + variant_name(var));
              kernels::force_isa(isa);
              std::vector<float> first;
              // Threads: the decode split (and the per-head chunks) for the plain variant and one
              // with both features; 1 thread for the others (3 on 2 cores: slow).
              const bool all_threads = (T == 1 || T == 3) &&
                                       (var.window == 0 || var.window == 17) &&
                                       (var.window == 0) == (var.softcap == 0);
              for (const int threads : {1, 2, 3}) {
                if (threads > 1 && !all_threads) break;
                set_num_threads(threads);
                std::vector<float> got(size_t(T * qd), std::nanf(""));
                attend_cached(q.data(), qd, T, h.nh, p0, cache, scale, got.data(), qd, var);
                for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], tol) << i;
                if (first.empty()) first = got;
                ASSERT_EQ(got, first) << threads << " threads";
              }
            }
          }
        }
      }
    }
  }
  KvCache small;
  small.resize(2, 4, 8);
  std::vector<float> qs(48), os(48);
  EXPECT_THROW(attend_cached(qs.data(), 48, 1, 6, 0, KvCache{}, 1.0f, os.data(), 48), Error);
  EXPECT_THROW(attend_cached(qs.data(), 48, 1, 5, 0, small, 1.0f, os.data(), 48), Error);  // 5/2
  EXPECT_THROW(attend_cached(qs.data(), 48, 2, 6, 3, small, 1.0f, os.data(), 48), Error);  // 3..4
  EXPECT_THROW(attend_cached(qs.data(), 48, 1, 6, 0, small, 1.0f, os.data(), 48, {-1, 0}), Error);
  EXPECT_THROW(attend_cached(qs.data(), 48, 1, 6, 0, small, 1.0f, os.data(), 48, {0, -1}), Error);
  set_num_threads(saved_threads);
  kernels::force_isa(before);
}

// A softmax over scores far apart (exp underflow) and equal (ties) stays exact.
TEST(Ops, AttendCausalExtremeScores) {
  const int64_t T = 6, hd = 4;
  std::vector<float> q(size_t(T * hd), 0.0f), k(size_t(T * hd), 0.0f), v(size_t(T * hd));
  for (int64_t j = 0; j < T; ++j)
    for (int64_t c = 0; c < hd; ++c) v[size_t(j * hd + c)] = float(j + 1);
  // Query 5 scores key 2 at +1000, the others at 0: all weight on key 2.
  for (int64_t c = 0; c < hd; ++c) q[size_t(5 * hd + c)] = 1.0f, k[size_t(2 * hd + c)] = 250.0f;
  std::vector<float> out(size_t(T * hd));
  attend_causal(q.data(), hd, T, 0, k.data(), v.data(), hd, hd, 1.0f, out.data(), hd);
  EXPECT_NEAR(out[size_t(5 * hd)], 3.0f, 1e-6f);
  // Query 3 has all-zero scores: the mean of values 1..4.
  EXPECT_NEAR(out[size_t(3 * hd)], 2.5f, 1e-6f);
}

TEST(Ops, CausalMaskLaterKeysNeverChangeEarlierOutputs) {
  const int64_t T = 16, hd = 8;
  auto q = randn(size_t(T * hd), 7), k = randn(size_t(T * hd), 8), v = randn(size_t(T * hd), 9);
  std::vector<float> a(size_t(T * hd)), b(size_t(T * hd));
  attend_causal(q.data(), hd, T, 0, k.data(), v.data(), hd, hd, 0.3f, a.data(), hd);
  for (int64_t c = 0; c < hd; ++c) k[size_t(10 * hd + c)] += 5.0f, v[size_t(10 * hd + c)] -= 3.0f;
  attend_causal(q.data(), hd, T, 0, k.data(), v.data(), hd, hd, 0.3f, b.data(), hd);
  for (int64_t i = 0; i < 10 * hd; ++i) ASSERT_EQ(a[size_t(i)], b[size_t(i)]);
  bool changed = false;
  for (int64_t i = 10 * hd; i < T * hd; ++i) changed |= a[size_t(i)] != b[size_t(i)];
  EXPECT_TRUE(changed);
}

// Keys before a query's sliding window contribute exactly nothing: changing them (scores far above
// the others: they would take all of the softmax's weight if they were seen) leaves the outputs the
// same bits, and changing the window's oldest key does change them. Over 300 positions with
// window 17 (the work starts at the window's tile, not at position 0): prefill of the whole
// sequence, a chunk of 5 late queries and one decode step on the cache (head width 64:
// decode_heads), against the reference, on every ISA.
TEST(Ops, SlidingWindowIgnoresKeysBeforeItOnEveryIsa) {
  const int64_t n = 300, hd = 64, W = 17;
  const Isa before = kernels::active_isa();
  const float scale = 0.125f;
  const std::vector<float> q = randn(size_t(n * hd), 51, 2.0f);
  Mat k, v;
  const KvCache cache = random_cache(1, n, hd, n, 0, 52, k, v, 2.0f);
  for (const Isa isa : kernels::available_isas())
    for (const float cap : {0.0f, 50.0f}) {
      SCOPED_TRACE(std::string(kernels::isa_name(isa)) + " softcap " + std::to_string(cap));
      kernels::force_isa(isa);
      const AttnVariant var{W, cap};
      std::vector<float> all(static_cast<size_t>(n * hd)), chunk(static_cast<size_t>(5 * hd)),
          step(static_cast<size_t>(hd));
      attend_causal(q.data(), hd, n, 0, k.data.data(), v.data.data(), hd, hd, scale, all.data(), hd,
                    var);
      attend_cached(q.data() + 290 * hd, hd, 5, 1, 290, cache, scale, chunk.data(), hd, var);
      attend_cached(q.data() + 299 * hd, hd, 1, 1, 299, cache, scale, step.data(), hd, var);
      for (const int64_t pos : {0, 5, 16, 17, 31, 32, 33, 150, 290, 294, 299}) {
        const auto ref =
            ref_attend(q.data() + pos * hd, k.data.data(), v.data.data(), hd, hd, pos, scale, var);
        for (int64_t c = 0; c < hd; ++c)
          ASSERT_NEAR(all[size_t(pos * hd + c)], ref[size_t(c)], 4e-6);
      }
      for (int64_t i = 0; i < 5 * hd; ++i) ASSERT_EQ(chunk[size_t(i)], all[size_t(290 * hd + i)]);
      const auto ref =
          ref_attend(q.data() + 299 * hd, k.data.data(), v.data.data(), hd, hd, 299, scale, var);
      for (int64_t c = 0; c < hd; ++c) ASSERT_NEAR(step[size_t(c)], ref[size_t(c)], 4e-6);
      // Keys and values 0..282 are before every window from position 299 on (its window is
      // 283..299); 283 is in it.
      Mat k2 = k, v2 = v;
      for (int64_t j = 0; j < 283; ++j)
        for (int64_t c = 0; c < hd; ++c) {
          k2.row(j)[c] = q[size_t(299 * hd + c)] * 100.0f;
          v2.row(j)[c] += 1000.0f;
        }
      KvCache c2;
      c2.resize(1, n, hd);
      c2.store(k2, v2, 0);
      std::vector<float> step2(static_cast<size_t>(hd)), last2(static_cast<size_t>(hd));
      attend_cached(q.data() + 299 * hd, hd, 1, 1, 299, c2, scale, step2.data(), hd, var);
      attend_causal(q.data() + 299 * hd, hd, 1, 299, k2.data.data(), v2.data.data(), hd, hd, scale,
                    last2.data(), hd, var);
      EXPECT_EQ(step2, step);
      std::vector<float> last1(static_cast<size_t>(hd));
      attend_causal(q.data() + 299 * hd, hd, 1, 299, k.data.data(), v.data.data(), hd, hd, scale,
                    last1.data(), hd, var);
      EXPECT_EQ(last2, last1);
      for (int64_t c = 0; c < hd; ++c) k2.row(283)[c] = k2.row(0)[c];
      c2.store(k2, v2, 0);
      attend_cached(q.data() + 299 * hd, hd, 1, 1, 299, c2, scale, step2.data(), hd, var);
      EXPECT_NE(step2, step);
    }
  kernels::force_isa(before);
}

// The vectorized GeGLU against gelu_tanh in double on every ISA, at lengths around the vector
// width: random values over the range activations take, the clamp edges (-2u around +-87), large
// |x| (x^3 overflows f32 from ~7e12), signed zeros, infinities and NaN. The reference is the
// formula in double as 1 / (1 + exp(-2u)) = 0.5·(1 + tanh(u)), the same function without the
// cancellation of 1 + tanh(u) near u = -inf (at u = -15 that loses 13 of double's 16 digits).
TEST(Ops, GegluMatchesGeluTanhOnEveryIsa) {
  const Isa before = kernels::active_isa();
  std::vector<float> gate = randn(1000, 13, 3.0f), up = randn(1000, 14, 2.0f);
  const float specials[] = {0.0f,  -0.0f, 1e-30f, -1e-30f, 1.0f,   -1.0f,  3.0f,   -3.0f,  5.0f,
                            -5.0f, 8.0f,  -8.0f,  10.0f,   -10.0f, 10.5f,  -10.5f, 11.0f,  -11.0f,
                            20.0f, -20.f, 1e5f,   -1e5f,   1e13f,  -1e13f, 1e30f,  -1e30f, 0.5f};
  for (size_t i = 0; i < std::size(specials); ++i) gate[i * 7] = specials[i];
  auto want = [](double x, double u) {
    const double t = 0.7978845608028654 * (x + 0.044715 * x * x * x);
    return x / (1.0 + std::exp(-2.0 * t)) * u;
  };
  // The scalar reference in f32 agrees where 1 + tanh(u) has no cancellation.
  for (const float x : {-2.0f, -1.0f, -0.1f, 0.0f, 0.3f, 1.0f, 2.5f, 7.0f, 100.0f})
    EXPECT_NEAR(gelu_tanh(x), want(x, 1.0), 2e-6 * std::fabs(want(x, 1.0)) + 1e-7) << x;
  for (const Isa isa : kernels::available_isas()) {
    kernels::force_isa(isa);
    for (const int64_t n : {0, 1, 15, 16, 17, 1000}) {
      std::vector<float> got(gate.begin(), gate.begin() + n);
      geglu(got.data(), up.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        const double x = gate[size_t(i)], w = want(x, up[size_t(i)]);
        // A few f32 roundings of -2u = x·(a + b·x^2) (amplified by |2u|·(1 - sigmoid(2u)): the
        // exponent's relative error becomes the result's), the polynomial exp, the division and
        // the product; below -2u = -87 the clamp gives ~x·e^-87 instead of ~x·e^2u, both below
        // 1e-34 (zero next to any activation).
        const double m2u = -1.5957691216057308 * (x + 0.044715 * x * x * x);
        const double amp = std::min(std::fabs(m2u), 90.0) / (1.0 + std::exp(std::min(-m2u, 90.0)));
        ASSERT_NEAR(got[size_t(i)], w, (4e-7 + 2.5e-7 * amp) * std::fabs(w) + 1e-34)
            << kernels::isa_name(isa) << " n=" << n << " x=" << x;
      }
    }
    const float inf = std::numeric_limits<float>::infinity();
    std::vector<float> g = {inf, -inf, std::nanf(""), -std::nanf(""), 1e38f, -1e38f},
                       u = {2.0f, 2.0f, 1.0f, 1.0f, 1.0f, 1.0f};
    geglu(g.data(), u.data(), int64_t(g.size()));
    EXPECT_EQ(g[0], inf) << kernels::isa_name(isa);
    EXPECT_TRUE(std::isnan(g[1])) << kernels::isa_name(isa);  // -inf / inf, as swiglu gives
    EXPECT_TRUE(std::isnan(g[2])) << kernels::isa_name(isa);
    EXPECT_TRUE(std::isnan(g[3])) << kernels::isa_name(isa);
    EXPECT_EQ(g[4], 1e38f) << kernels::isa_name(isa);
    EXPECT_EQ(g[5], 0.0f) << kernels::isa_name(isa);
  }
  kernels::force_isa(before);
}

}  // namespace
}  // namespace awq

namespace awq {
namespace {

Linear random_linear(int64_t out, int64_t in, uint32_t seed) {
  Linear l;
  l.out = out;
  l.in = in;
  l.w.resize(out, in);
  fill_randn(l.w, seed, 1.0f / std::sqrt(float(in)));
  return l;
}

// GQA is multi-head attention with each key/value head repeated for its group of query heads
// (HF's repeat_kv): the same block with K/V rows duplicated per query head gives the same output.
TEST(Ops, GqaEqualsMhaWithRepeatedKeyValueHeads) {
  ModelConfig gqa;
  gqa.model_type = "llama";
  gqa.hidden_size = 32;
  gqa.intermediate_size = 48;
  gqa.num_hidden_layers = 1;
  gqa.num_attention_heads = 4;
  gqa.num_key_value_heads = 2;
  gqa.head_dim = 8;
  gqa.vocab_size = 16;
  ModelConfig mha = gqa;
  mha.num_key_value_heads = 4;
  BlockWeights wg;
  wg[LinearRole::Q] = random_linear(32, 32, 1);
  wg[LinearRole::K] = random_linear(16, 32, 2);
  wg[LinearRole::V] = random_linear(16, 32, 3);
  wg[LinearRole::O] = random_linear(32, 32, 4);
  BlockWeights wm;
  wm[LinearRole::Q] = wg[LinearRole::Q];
  wm[LinearRole::O] = wg[LinearRole::O];
  for (LinearRole r : {LinearRole::K, LinearRole::V}) {
    wm[r] = random_linear(32, 32, 0);
    for (int64_t h = 0; h < 4; ++h)  // query head h reads KV head h / 2
      std::copy(wg[r].w.row((h / 2) * 8), wg[r].w.row((h / 2) * 8 + 8), wm[r].w.row(h * 8));
  }
  Mat x(2 * 11, 32);
  fill_randn(x, 5);
  Mat a, b;
  attention_forward(gqa, wg, x, 2, 11, a);
  attention_forward(mha, wm, x, 2, 11, b);
  for (int64_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a.data[size_t(i)], b.data[size_t(i)], 1e-6);
  // And grouping matters: pairing query heads with the wrong KV heads changes the output.
  std::swap_ranges(wm[LinearRole::K].w.row(0), wm[LinearRole::K].w.row(8),
                   wm[LinearRole::K].w.row(16));
  attention_forward(mha, wm, x, 2, 11, b);
  double diff = 0;
  for (int64_t i = 0; i < a.size(); ++i)
    diff = std::max(diff, double(std::abs(a.data[size_t(i)] - b.data[size_t(i)])));
  EXPECT_GT(diff, 1e-3);
}

}  // namespace
}  // namespace awq
