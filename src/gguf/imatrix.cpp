#include "gguf/imatrix.h"

#include <array>
#include <cstring>
#include <fstream>

#include "base/error.h"
#include "base/files.h"
#include "base/thread_pool.h"
#include "gguf/llama_layout.h"
#include "model/block.h"

namespace awq::gguf {

namespace {

// Per-channel sums of squares of a [rows, cols] activation, added into acc (double). Channels are
// split across threads; each channel sums its rows in order, so the result is thread-independent.
void add_squares(const Mat& x, std::vector<double>& acc) {
  if (acc.empty()) acc.assign(size_t(x.cols), 0.0);
  AWQ_CHECK(int64_t(acc.size()) == x.cols, "imatrix: activation width {} changed to {}", acc.size(),
            x.cols);
  parallel_for(x.cols, 64, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      double s = 0;
      for (int64_t r = 0; r < x.rows; ++r) {
        const double v = x.at(r, c);
        s += v * v;
      }
      acc[size_t(c)] += s;
    }
  });
}

}  // namespace

Imatrix compute_imatrix(const Model& model, const std::vector<std::vector<int32_t>>& chunks,
                        const std::string& dataset, const std::function<void(int64_t)>& on_chunk) {
  AWQ_CHECK(!chunks.empty(), "imatrix: no calibration chunks");
  const ModelConfig& cfg = model.config();
  // A sparse layer's capture has no dense down_in but per-expert inputs (BlockCapture::moe),
  // which this accumulation does not know yet.
  AWQ_CHECK(!cfg.is_moe(), "{}: imatrix of MoE models is not supported yet (model_type '{}')",
            model.dir(), cfg.model_type);
  const int64_t L = model.n_layers();
  // sums[layer][0..3]: inputs of q/k/v, o, gate/up, down.
  std::vector<std::array<std::vector<double>, 4>> sums(static_cast<size_t>(L));
  int64_t rows = 0;
  for (size_t i = 0; i < chunks.size(); ++i) {
    const auto& tok = chunks[i];
    AWQ_CHECK(!tok.empty(), "imatrix: chunk {} is empty", i);
    const int64_t T = int64_t(tok.size());
    Mat x;
    model.embed(tok.data(), T, x);
    BlockCapture cap;
    for (int64_t l = 0; l < L; ++l) {
      block_forward(cfg, model.block(l), x, 1, T, x, &cap);
      auto& s = sums[size_t(l)];
      add_squares(cap.attn_in, s[0]);
      add_squares(cap.o_in, s[1]);
      add_squares(cap.mlp_in, s[2]);
      add_squares(cap.down_in, s[3]);
    }
    rows += T;
    if (on_chunk) on_chunk(int64_t(i));
  }
  Imatrix m;
  m.chunks = int32_t(chunks.size());
  m.dataset = dataset;
  const int which[kNumLinearRoles] = {0, 0, 0, 1, 2, 2, 3};  // role -> captured input
  for (int64_t l = 0; l < L; ++l) {
    for (LinearRole r : kAllLinearRoles) {
      const auto& s = sums[size_t(l)][size_t(which[int(r)])];
      ImatrixEntry e;
      e.ncall = m.chunks;
      e.values.resize(s.size());
      for (size_t c = 0; c < s.size(); ++c)
        e.values[c] = float(s[c] / double(rows) * double(e.ncall));
      m.entries[gguf_linear_tensor(l, r)] = std::move(e);
    }
  }
  return m;
}

namespace {
template <typename T>
void put(std::ofstream& out, T v) {
  out.write(reinterpret_cast<const char*>(&v), sizeof(T));
}
}  // namespace

void write_imatrix(const std::string& path, const Imatrix& m) {
  write_file_atomic(path, [&](std::ofstream& out) {
    put<int32_t>(out, int32_t(m.entries.size()));
    for (const auto& [name, e] : m.entries) {
      put<int32_t>(out, int32_t(name.size()));
      out.write(name.data(), std::streamsize(name.size()));
      put<int32_t>(out, e.ncall);
      put<int32_t>(out, int32_t(e.values.size()));
      out.write(reinterpret_cast<const char*>(e.values.data()),
                std::streamsize(e.values.size() * sizeof(float)));
    }
    put<int32_t>(out, m.chunks);
    put<int32_t>(out, int32_t(m.dataset.size()));
    out.write(m.dataset.data(), std::streamsize(m.dataset.size()));
  });
}

Imatrix read_imatrix(const std::string& path) {
  const std::string b = read_text_file(path);
  size_t pos = 0;
  auto i32 = [&](const char* what) {
    AWQ_CHECK(pos + 4 <= b.size(), "{}: truncated imatrix file: {} at offset {}", path, what, pos);
    int32_t v;
    std::memcpy(&v, b.data() + pos, 4);
    pos += 4;
    return v;
  };
  auto bytes = [&](int32_t n, const std::string& what) {
    AWQ_CHECK(n >= 0 && size_t(n) <= b.size() - pos,
              "{}: {} claims {} bytes at offset {}, the file has {}", path, what, n, pos, b.size());
    std::string s = b.substr(pos, size_t(n));
    pos += size_t(n);
    return s;
  };
  Imatrix m;
  const int32_t n = i32("entry count");
  AWQ_CHECK(n >= 0 && size_t(n) <= b.size() / 12, "{}: implausible entry count {}", path, n);
  for (int32_t i = 0; i < n; ++i) {
    const std::string name = bytes(i32("name length"), fmt::format("the name of entry {}", i));
    ImatrixEntry e;
    e.ncall = i32("ncall");
    const int32_t nval = i32("value count");
    AWQ_CHECK(nval >= 0 && size_t(nval) <= (b.size() - pos) / 4,
              "{}: entry '{}' claims {} values past the end", path, name, nval);
    e.values.resize(size_t(nval));
    std::memcpy(e.values.data(), b.data() + pos, size_t(nval) * 4);
    pos += size_t(nval) * 4;
    AWQ_CHECK(m.entries.emplace(name, std::move(e)).second, "{}: entry '{}' appears twice", path,
              name);
  }
  m.chunks = i32("last chunk");
  m.dataset = bytes(i32("dataset name length"), "the dataset name");
  AWQ_CHECK(pos == b.size(), "{}: {} unexpected bytes after the dataset name", path,
            b.size() - pos);
  return m;
}

}  // namespace awq::gguf
