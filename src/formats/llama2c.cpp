#include "formats/llama2c.h"

#include <cstdint>
#include <cstring>

#include "base/error.h"
#include "base/mapped_file.h"

namespace awq {
namespace {

struct Reader {
  const MappedFile& f;
  size_t pos;
  void take(std::vector<float>& dst, int64_t n, const char* what) {
    const size_t bytes = size_t(n) * 4;
    AWQ_CHECK(pos + bytes <= f.size(),
              "{}: truncated while reading {} (needs {} more bytes at offset {}, file has {})",
              f.path(), what, bytes, pos, f.size());
    dst.resize(size_t(n));
    std::memcpy(dst.data(), f.data() + pos, bytes);
    pos += bytes;
  }
};

}  // namespace

Llama2cModel read_llama2c(const std::string& path) {
  MappedFile f(path);
  Llama2cModel m;
  AWQ_CHECK(f.size() >= 28, "{}: too small for a llama2.c checkpoint ({} bytes)", path, f.size());
  uint32_t magic;
  std::memcpy(&magic, f.data(), 4);
  size_t header_bytes;
  int32_t h[7];
  if (magic == 0x616b3432) {  // "ak42": version-1 export
    AWQ_CHECK(f.size() >= 256, "{}: truncated version-1 header", path);
    int32_t version;
    std::memcpy(&version, f.data() + 4, 4);
    AWQ_CHECK(
        version == 1,
        "{}: llama2.c export version {} is not supported (only the legacy layout and version 1)",
        path, version);
    std::memcpy(h, f.data() + 8, sizeof(h));
    const uint8_t shared = f.data()[8 + 28];
    m.shared_classifier = shared != 0;
    header_bytes = 256;
  } else {
    std::memcpy(h, f.data(), sizeof(h));
    m.shared_classifier = h[5] > 0;
    // A negative vocab_size flags an unshared classifier; INT32_MIN has no positive twin (its
    // negation overflows): it stays negative and is refused below.
    if (h[5] < 0 && h[5] != INT32_MIN) h[5] = -h[5];
    header_bytes = 28;
  }
  m.dim = h[0], m.hidden_dim = h[1], m.n_layers = h[2], m.n_heads = h[3], m.n_kv_heads = h[4],
  m.vocab_size = h[5], m.seq_len = h[6];
  AWQ_CHECK(m.dim > 0 && m.hidden_dim > 0 && m.n_layers > 0 && m.n_heads > 0 && m.n_kv_heads > 0 &&
                m.vocab_size > 0 && m.seq_len > 0 && m.dim % m.n_heads == 0 &&
                m.n_heads % m.n_kv_heads == 0 && m.dim <= (1 << 16) && m.hidden_dim <= (1 << 18) &&
                m.n_layers <= 1024 && m.vocab_size <= (1 << 22) && m.seq_len <= (1 << 20),
            "{}: implausible llama2.c header (dim {}, hidden {}, layers {}, heads {}, kv heads {}, "
            "vocab {}, seq_len {})",
            path, m.dim, m.hidden_dim, m.n_layers, m.n_heads, m.n_kv_heads, m.vocab_size,
            m.seq_len);
  const int64_t d = m.dim, hd = m.hidden_dim, L = m.n_layers, kv = m.kv_dim(), V = m.vocab_size,
                hs = m.head_size();
  const int64_t weights =
      V * d + L * d + L * d * d + 2 * L * kv * d + L * d * d + L * d + 3 * L * hd * d + d;
  const int64_t legacy_rope =
      header_bytes == 28 ? m.seq_len * hs : 0;  // two [seq, hs/2] tables, unused
  const int64_t cls = m.shared_classifier ? 0 : V * d;
  const size_t expect = header_bytes + size_t(weights + legacy_rope + cls) * 4;
  AWQ_CHECK(f.size() == expect,
            "{}: file is {} bytes but a llama2.c checkpoint with dim {}, hidden {}, layers {}, "
            "heads {}/{}, vocab {}, "
            "seq_len {} ({} classifier) must be {} bytes",
            path, f.size(), d, hd, L, m.n_heads, m.n_kv_heads, V, m.seq_len,
            m.shared_classifier ? "shared" : "separate", expect);
  Reader r{f, header_bytes};
  if (header_bytes == 256) {
    // version 1 order: norms first, then embedding and matrices
    r.take(m.rms_att, L * d, "rms_att");
    r.take(m.rms_ffn, L * d, "rms_ffn");
    r.take(m.rms_final, d, "rms_final");
    r.take(m.token_embedding, V * d, "token_embedding");
    r.take(m.wq, L * d * d, "wq");
    r.take(m.wk, L * kv * d, "wk");
    r.take(m.wv, L * kv * d, "wv");
    r.take(m.wo, L * d * d, "wo");
    r.take(m.w1, L * hd * d, "w1");
    r.take(m.w2, L * d * hd, "w2");
    r.take(m.w3, L * hd * d, "w3");
  } else {
    r.take(m.token_embedding, V * d, "token_embedding");
    r.take(m.rms_att, L * d, "rms_att");
    r.take(m.wq, L * d * d, "wq");
    r.take(m.wk, L * kv * d, "wk");
    r.take(m.wv, L * kv * d, "wv");
    r.take(m.wo, L * d * d, "wo");
    r.take(m.rms_ffn, L * d, "rms_ffn");
    r.take(m.w1, L * hd * d, "w1");
    r.take(m.w2, L * d * hd, "w2");
    r.take(m.w3, L * hd * d, "w3");
    r.take(m.rms_final, d, "rms_final");
    r.pos += size_t(legacy_rope) * 4;
  }
  if (m.shared_classifier) {
    m.wcls = m.token_embedding;
  } else {
    r.take(m.wcls, V * d, "wcls");
  }
  return m;
}

}  // namespace awq
