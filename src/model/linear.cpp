#include "model/linear.h"

#include <algorithm>
#include <cstring>

#include "base/error.h"
#include "kernels/q8.h"
#include "kernels/w4.h"
#include "model/matmul.h"

namespace awq {

int64_t Linear::weight_bytes() const {
  if (!w.empty() || w32) return in * out * 4;
  if (w16) return in * out * 2;
  if (w4) return int64_t(w4->bytes());
  if (q8) return int64_t(q8->bytes());
  return 0;
}

void Linear::forward(const float* x, int64_t n, float* y) const {
  const float* b = bias.empty() ? nullptr : bias.data();
  if ((!w.empty() || w32) && bf16_products) {
    model_detail::matmul_f32_in_bf16(x, n, w.empty() ? w32 : w.data.data(), out, in, b, y);
  } else if (!w.empty()) {
    model_detail::matmul_f32(x, n, w.data.data(), out, in, b, y);
  } else if (w32) {
    model_detail::matmul_f32(x, n, w32, out, in, b, y);
  } else if (w16) {
    model_detail::matmul_half(x, n, w16, w16_type, out, in, b, y);
  } else if (w4) {
    if (w4a8) {
      kernels::gemm_w4a8(x, n, *w4, b, y);
    } else {
      kernels::gemm_w4a16(x, n, *w4, b, y);
    }
  } else if (q8) {
    kernels::gemm_q8a8(x, n, *q8, b, y);
  } else {
    fail("Linear [{} x {}]: no weight loaded", out, in);
  }
}

void Linear::forward(const Mat& x, Mat& y) const {
  AWQ_CHECK(x.cols == in, "Linear: input has {} columns, expected {}", x.cols, in);
  y.resize_for_overwrite(x.rows, out);  // every element is written
  forward(x.data.data(), x.rows, y.data.data());
}

Linear linear_in_place(const void* data, DType dtype, int64_t out, int64_t in) {
  Linear l;
  l.out = out;
  l.in = in;
  const auto addr = reinterpret_cast<uintptr_t>(data);
  if ((dtype == DType::F16 || dtype == DType::BF16) && addr % 2 == 0) {
    l.w16 = static_cast<const uint16_t*>(data);
    l.w16_type = dtype;
  } else if (dtype == DType::F32 && addr % 4 == 0) {
    l.w32 = static_cast<const float*>(data);
  } else {
    l.w.resize(out, in);
    convert_to_f32(dtype, data, out * in, l.w.data.data());
  }
  return l;
}

Linear to_q8(const Linear& l, const std::string& name) {
  const void* rows = nullptr;
  kernels::Q8RowType type = kernels::Q8RowType::F32;
  if (!l.w.empty()) {
    rows = l.w.data.data();
  } else if (l.w32) {
    rows = l.w32;
  } else if (l.w16) {
    rows = l.w16;
    type = l.w16_type == DType::BF16 ? kernels::Q8RowType::BF16 : kernels::Q8RowType::F16;
  }
  AWQ_CHECK(rows != nullptr, "int8 copy of '{}' [{} x {}]: the linear has no float rows ({})", name,
            l.out, l.in, l.w4 ? "it is W4" : "no weight loaded");
  Linear q;
  q.out = l.out;
  q.in = l.in;
  q.bias = l.bias;
  q.q8 = std::make_shared<const kernels::Q8Matrix>(
      kernels::Q8Matrix::pack(rows, type, l.out, l.in, name));
  return q;
}

Mat Linear::weight_f32() const {
  Mat m(out, in);
  if (!w.empty()) {
    m = w;
  } else if (w32) {
    std::copy(w32, w32 + out * in, m.data.begin());
  } else if (w16) {
    convert_to_f32(w16_type, w16, out * in, m.data.data());
  } else if (w4) {
    for (int64_t o = 0; o < out; ++o) w4->dequantize_row(o, m.row(o));
  } else if (q8) {
    for (int64_t o = 0; o < out; ++o) q8->dequantize_row(o, m.row(o));
  } else {
    fail("Linear [{} x {}]: no weight loaded", out, in);
  }
  return m;
}

}  // namespace awq

namespace awq {

namespace {

// True when `parts` are exactly one fused group, in order.
bool is_whole_group(std::span<const Linear* const> parts) {
  const auto& f = parts[0]->fused;
  if (!f) return false;
  int64_t row0 = 0;
  for (const Linear* p : parts) {
    if (p->fused != f || p->fused_row0 != row0) return false;
    row0 += p->out;
  }
  return row0 == f->w4->out();
}

}  // namespace

bool is_fused_group(std::span<const Linear* const> parts) {
  return !parts.empty() && is_whole_group(parts);
}

bool fuse_w4(std::span<Linear* const> parts) {
  if (parts.size() < 2) return false;
  std::vector<const Linear*> cparts(parts.begin(), parts.end());
  if (is_whole_group(cparts)) return true;  // already one group
  const Linear& first = *parts[0];
  std::vector<const kernels::W4Matrix*> mats;
  for (size_t i = 0; i < parts.size(); ++i) {
    const Linear& p = *parts[i];
    if (!p.w4 || p.in != first.in || p.w4->group() != first.w4->group() ||
        p.bias.empty() != first.bias.empty())
      return false;
    if (i + 1 < parts.size() && p.out % 16 != 0) return false;  // tiles are copied whole
    mats.push_back(p.w4.get());
  }
  auto fused = std::make_shared<W4Fused>();
  fused->w4 = std::make_shared<const kernels::W4Matrix>(
      kernels::W4Matrix::concat(mats.data(), int(mats.size())));
  int64_t row0 = 0;
  for (Linear* p : parts) {
    fused->bias.insert(fused->bias.end(), p->bias.begin(), p->bias.end());
    p->w4 = std::make_shared<const kernels::W4Matrix>(fused->w4->rows_view(row0, p->out));
    p->fused_row0 = row0;
    row0 += p->out;
  }
  for (Linear* p : parts) p->fused = fused;
  return true;
}

void forward_group(std::span<const Linear* const> parts, const Mat& x, std::span<Mat* const> ys) {
  AWQ_CHECK(parts.size() == ys.size() && !parts.empty(), "forward_group: {} linears but {} outputs",
            parts.size(), ys.size());
  bool fused = x.rows <= kFusedMaxTokens && is_whole_group(parts);
  for (const Linear* p : parts) fused = fused && p->w4a8 == parts[0]->w4a8;
  if (!fused) {
    for (size_t i = 0; i < parts.size(); ++i) parts[i]->forward(x, *ys[i]);
    return;
  }
  const W4Fused& f = *parts[0]->fused;
  const int64_t n = x.rows, total = f.w4->out();
  AWQ_CHECK(x.cols == f.w4->in(), "Linear: input has {} columns, expected {}", x.cols, f.w4->in());
  thread_local std::vector<float> y;
  y.resize(size_t(n * total));
  const float* b = f.bias.empty() ? nullptr : f.bias.data();
  if (parts[0]->w4a8) {
    kernels::gemm_w4a8(x.data.data(), n, *f.w4, b, y.data());
  } else {
    kernels::gemm_w4a16(x.data.data(), n, *f.w4, b, y.data());
  }
  for (size_t i = 0; i < parts.size(); ++i) {
    const Linear& p = *parts[i];
    Mat& out = *ys[i];
    out.resize_for_overwrite(n, p.out);
    for (int64_t t = 0; t < n; ++t)
      std::memcpy(out.row(t), y.data() + t * total + p.fused_row0, size_t(p.out) * sizeof(float));
  }
}

}  // namespace awq
