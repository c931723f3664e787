// How the decode kernels stream weights from DRAM faster than the hardware prefetchers alone
// fetch them: they issue a software prefetch for every 64 bytes they read. With NT row tiles read
// side by side (NT streams one tile_stride apart), the prefetch goes to the same offset of the
// tile NT ahead (the one this stream reads next) plus 4 KiB: w4a8 decode on the 2-core Xeon (huge
// pages) measured ~17-18 GB/s on one core with that, against ~15.5-16.5 for a fixed 32 KiB
// (mostly into other streams' tiles). decode_tiles() picks NT so that one round of NT tiles is
// ~64-96 KiB: 4 W4 tiles of 2048 inputs, 2 of 5632 (4 x 48 KiB, prefetching 190 KiB ahead,
// measured slower); a 2048-wide Q8 tile is 34 KiB: 2 streams.
//
// Internal linkage on purpose: each ISA file compiles this with its own -m flags (isa.cpp's ODR
// note).
#pragma once
#include <cstdint>

namespace awq::kernels::detail {

constexpr int64_t kPrefetchExtra = 4096;
constexpr int64_t kDecodeRoundBytes = 96 * 1024;

static inline int decode_tiles(int64_t tile_stride) {
  const int64_t nt = kDecodeRoundBytes / tile_stride;
  return nt >= 4 ? 4 : nt >= 2 ? 2 : 1;
}

}  // namespace awq::kernels::detail
