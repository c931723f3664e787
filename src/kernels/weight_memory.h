// Memory for the weights that decode streams once per token (internal to the kernels and their
// callers that build weights in memory).
#pragma once
#include <cstddef>
#include <memory>

namespace awq::kernels {

// `bytes` of zeroed memory, 64-byte aligned. From 4 MiB up it is 2 MiB aligned and advised as
// transparent huge pages (madvise, before the first touch): a decode pass streams hundreds of MB,
// and with 4 KiB pages every page costs a TLB miss and a restart of the hardware prefetcher; the
// bandwidth probe read 10-25% faster from huge pages on the 2-core Xeon. Where the kernel does
// not grant them, this is ordinary memory.
std::shared_ptr<uint8_t> alloc_weight_bytes(size_t bytes);

}  // namespace awq::kernels
