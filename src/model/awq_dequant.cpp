#include "model/awq_dequant.h"

#include <cstring>

#include "base/error.h"
#include "quant/awq_gemm_pack.h"

namespace awq {
namespace {

const TensorInfo& typed(const Checkpoint& ck, const std::string& name,
                        const std::vector<int64_t>& shape, DType dtype) {
  const TensorInfo& t = ck.get(name, shape);
  AWQ_CHECK(t.dtype == dtype, "{}: tensor '{}' has dtype {}, expected {} (AutoAWQ GEMM layout)",
            t.file, name, dtype_name(t.dtype), dtype_name(dtype));
  return t;
}

template <typename T>
std::vector<T> copy_of(const TensorInfo& t) {
  std::vector<T> v(t.nbytes / sizeof(T));
  std::memcpy(v.data(), t.data, t.nbytes);
  return v;
}

}  // namespace

QuantizedMatrix read_awq_linear(const Checkpoint& ck, const std::string& name,
                                const AwqQuantConfig& q, int64_t out, int64_t in) {
  AWQ_CHECK(q.bits == 4, "{}: '{}' is {}-bit AWQ; only 4-bit checkpoints are supported", ck.dir(),
            name, q.bits);
  const int64_t g = q.group_size == -1 ? in : q.group_size;
  AWQ_CHECK(g > 0 && in % g == 0, "{}: '{}': group size {} does not divide in_features {}",
            ck.dir(), name, q.group_size, in);
  AWQ_CHECK(out % 8 == 0,
            "{}: '{}': out_features {} is not a multiple of 8 (AutoAWQ GEMM packs 8 per int32)",
            ck.dir(), name, out);
  AwqGemmTensors t;
  t.K = in;
  t.N = out;
  t.group = int(g);
  t.qweight = copy_of<int32_t>(typed(ck, name + ".qweight", {in, out / 8}, DType::I32));
  t.qzeros = copy_of<int32_t>(typed(ck, name + ".qzeros", {in / g, out / 8}, DType::I32));
  t.scales_f16 = copy_of<uint16_t>(typed(ck, name + ".scales", {in / g, out}, DType::F16));
  return unpack_awq_gemm(t, q.zero_point, name);
}

Mat dequantize_awq_linear(const Checkpoint& ck, const std::string& name, const AwqQuantConfig& q,
                          int64_t out, int64_t in) {
  const QuantizedMatrix m = read_awq_linear(ck, name, q, out, in);
  Mat w(out, in);
  m.dequantize(w.data.data());
  return w;
}

}  // namespace awq
