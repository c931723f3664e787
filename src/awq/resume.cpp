#include "awq/resume.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "awq/calib.h"
#include "awq/pipeline.h"
#include "awq/writer.h"
#include "base/files.h"
#include "base/hash.h"
#include "formats/checkpoint.h"

namespace awq {
namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

// A new field of QuantizeOptions must be added to resume_fingerprint (if it changes the output)
// or named there as not mattering; this trips when the struct changes so that nobody forgets.
static_assert(sizeof(QuantizeOptions) == 456,
              "QuantizeOptions changed: update resume_fingerprint, then this size");

namespace {

constexpr int kStageFormat = 1;
constexpr char kSealHead[9] = "awq-seal", kSealTail[9] = "end-seal";
constexpr char kActsMagic[9] = "awq-acts";
constexpr size_t kSealBytes = 32;

std::string seal(uint64_t len, uint64_t hash) {
  std::string t(kSealBytes, '\0');
  std::memcpy(t.data(), kSealHead, 8);
  std::memcpy(t.data() + 8, &len, 8);
  std::memcpy(t.data() + 16, &hash, 8);
  std::memcpy(t.data() + 24, kSealTail, 8);
  return t;
}

// Checks a trailer against the content's length and hash; returns what is wrong, or "".
std::string seal_problem(const char* trailer, uint64_t len, uint64_t hash) {
  if (std::memcmp(trailer, kSealHead, 8) != 0 || std::memcmp(trailer + 24, kSealTail, 8) != 0)
    return "no seal at its end (a torn or foreign file)";
  uint64_t l = 0, h = 0;
  std::memcpy(&l, trailer + 8, 8);
  std::memcpy(&h, trailer + 16, 8);
  if (l != len) return fmt::format("sealed for {} bytes, holds {}", l, len);
  if (h != hash) return "content does not match its hash (damaged)";
  return "";
}

std::string file_hash(const fs::path& p) {
  return hex64(hash64(read_text_file(p.string())));
}

// A safetensors file: its size, its header and 64 pages of 4 KiB spread over the data. Headers of
// two checkpoints of one architecture are alike; the samples tell a fine-tune from its base.
std::string safetensors_fingerprint(const std::string& path, uint64_t size) {
  std::ifstream in(path, std::ios::binary);
  AWQ_CHECK(in.good(), "{}: cannot open: {}", path, std::strerror(errno));
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  AWQ_CHECK(in.good() && n <= size - 8, "{}: unreadable header", path);
  std::string head(n, '\0');
  in.read(head.data(), std::streamsize(n));
  Hasher h;
  h.update(head);
  const uint64_t data0 = 8 + n, data_len = size - data0;
  constexpr uint64_t kPage = 4096, kSamples = 64;
  std::string page(kPage, '\0');
  for (uint64_t i = 0; i < kSamples && data_len > 0; ++i) {
    const uint64_t off = data0 + (data_len > kPage ? (data_len - kPage) * i / (kSamples - 1) : 0);
    in.seekg(std::streamoff(off));
    in.read(page.data(), std::streamsize(std::min(kPage, data_len)));
    AWQ_CHECK(in.good(), "{}: read error at byte {}", path, off);
    h.update(page.data(), size_t(std::min(kPage, data_len)));
  }
  return fmt::format("{} bytes, header and samples {}", size, hex64(h.digest()));
}

// The running executable: any rebuild that could change the arithmetic changes it.
const std::string& tool_fingerprint() {
  static const std::string fp = [] {
    std::string id = "awq.cpp";
    std::error_code ec;
    const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) id += ", executable " + file_hash(exe);
    return id;
  }();
  return fp;
}

}  // namespace

std::string fingerprint_difference(const json& kept, const json& now) {
  std::string diff;
  const auto add = [&](const std::string& k, const std::string& a, const std::string& b) {
    diff += fmt::format("{}{} (kept: {}; now: {})", diff.empty() ? "" : ", ", k, a, b);
  };
  for (const auto& [k, v] : now.items())
    if (!kept.contains(k))
      add(k, "absent", v.dump());
    else if (kept[k] != v)
      add(k, kept[k].dump(), v.dump());
  for (const auto& [k, v] : kept.items())
    if (!now.contains(k)) add(k, v.dump(), "absent");
  return diff;
}

void write_sealed_file(const std::string& path, std::initializer_list<std::string_view> parts) {
  write_file_atomic(path, [&](std::ofstream& out) {
    Hasher h;
    uint64_t len = 0;
    for (std::string_view p : parts) {
      out.write(p.data(), std::streamsize(p.size()));
      h.update(p);
      len += p.size();
    }
    const std::string t = seal(len, h.digest());
    out.write(t.data(), std::streamsize(t.size()));
  });
}

std::string read_sealed_file(const std::string& path) {
  std::string s = read_text_file(path);
  AWQ_CHECK(s.size() >= kSealBytes, "{}: {} bytes, too short to be sealed (a torn file)", path,
            s.size());
  const size_t len = s.size() - kSealBytes;
  const std::string why = seal_problem(s.data() + len, len, hash64(s.data(), len));
  AWQ_CHECK(why.empty(), "{}: {}", path, why);
  s.resize(len);
  return s;
}

std::string block_file_name(int64_t layer) {
  return fmt::format("block-{:04}.json", layer);
}

void write_block_file(const std::string& dir, const BlockResult& b) {
  write_sealed_file((fs::path(dir) / block_file_name(b.layer)).string(),
                    {block_to_json(b, true).dump() + "\n"});
}

BlockResult read_block_file(const std::string& dir, int64_t layer, const SearchHeader& header,
                            const Architecture& arch) {
  const std::string p = (fs::path(dir) / block_file_name(layer)).string();
  try {
    BlockResult b = block_from_json(json::parse(read_sealed_file(p)), header, arch, p);
    AWQ_CHECK(b.layer == layer, "{}: holds layer {}", p, b.layer);
    return b;
  } catch (const json::exception& e) {
    fail("{}: not a block result: {}", p, e.what());
  }
}

std::string quantized_file_name(int64_t layer) {
  return fmt::format("block-{:04}.q", layer);
}

// A list of quantized matrices: "awq-q\0\0\0", count, then per matrix out, in, group, bits,
// zero_point, f16_scales (int64 each), codes (u8, out x in), scales (f32), zeros (u8).
constexpr char kQuantMagic[8] = {'a', 'w', 'q', '-', 'q', 0, 0, 0};

void append_pod(std::string& s, const void* p, size_t n) {
  s.append(static_cast<const char*>(p), n);
}

std::string serialize_quantized(const std::vector<QuantizedMatrix>& a,
                                const std::vector<QuantizedMatrix>& b) {
  std::string s(kQuantMagic, 8);
  for (const auto* list : {&a, &b}) {
    const int64_t n = int64_t(list->size());
    append_pod(s, &n, 8);
    for (const QuantizedMatrix& m : *list) {
      const int64_t head[6] = {
          m.out, m.in, m.group, m.spec.bits, m.spec.zero_point, m.spec.f16_scales};
      append_pod(s, head, sizeof head);
      append_pod(s, m.codes.data(), m.codes.size());
      append_pod(s, m.scales.data(), m.scales.size() * 4);
      append_pod(s, m.zeros.data(), m.zeros.size());
    }
  }
  return s;
}

void deserialize_quantized(const std::string& s, const std::string& path,
                           std::vector<QuantizedMatrix>& a, std::vector<QuantizedMatrix>& b) {
  size_t pos = 8;
  const auto take = [&](void* dst, uint64_t n) {
    AWQ_CHECK(n <= s.size() && pos <= s.size() - n, "{}: truncated at byte {}", path, pos);
    if (n == 0) return;  // an empty matrix's vectors have no storage (memcpy needs non-null)
    std::memcpy(dst, s.data() + pos, n);
    pos += n;
  };
  AWQ_CHECK(s.size() >= 8 && std::memcmp(s.data(), kQuantMagic, 8) == 0,
            "{}: not a quantized-block file", path);
  for (auto* list : {&a, &b}) {
    int64_t n = 0;
    take(&n, 8);
    AWQ_CHECK(n >= 0 && n <= (int64_t(1) << 20), "{}: {} matrices", path, n);
    list->resize(size_t(n));
    for (QuantizedMatrix& m : *list) {
      int64_t h[6];
      take(h, sizeof h);
      AWQ_CHECK(h[0] >= 0 && h[1] >= 0 && h[0] <= (int64_t(1) << 24) &&
                    h[1] <= (int64_t(1) << 24) && h[2] >= 0 && h[2] <= h[1] && h[3] >= 2 &&
                    h[3] <= 8 && (h[2] == 0 ? h[1] == 0 : h[1] % h[2] == 0),
                "{}: a matrix of [{} x {}] in groups of {} at {} bits", path, h[0], h[1], h[2],
                h[3]);
      m.out = h[0];
      m.in = h[1];
      m.group = int(h[2]);
      m.spec.bits = int(h[3]);
      m.spec.group_size = m.group == m.in ? -1 : m.group;
      m.spec.zero_point = h[4] != 0;
      m.spec.f16_scales = h[5] != 0;
      const uint64_t cells = uint64_t(m.out) * uint64_t(m.in);
      const uint64_t groups = m.group > 0 ? uint64_t(m.out) * uint64_t(m.in / m.group) : 0;
      AWQ_CHECK(cells <= s.size() && groups <= s.size(), "{}: truncated", path);
      m.codes.resize(cells);
      take(m.codes.data(), cells);
      m.scales.resize(groups);
      take(m.scales.data(), groups * 4);
      m.zeros.resize(groups);
      take(m.zeros.data(), groups);
    }
  }
  AWQ_CHECK(pos == s.size(), "{}: {} bytes after the last matrix", path, s.size() - pos);
}

void write_quantized_file(const std::string& dir, int64_t layer,
                          const std::vector<QuantizedMatrix>& q,
                          const std::vector<QuantizedMatrix>& q_experts) {
  write_sealed_file((fs::path(dir) / quantized_file_name(layer)).string(),
                    {serialize_quantized(q, q_experts)});
}

void read_quantized_file(const std::string& dir, int64_t layer, std::vector<QuantizedMatrix>& q,
                         std::vector<QuantizedMatrix>& q_experts) {
  const std::string p = (fs::path(dir) / quantized_file_name(layer)).string();
  deserialize_quantized(read_sealed_file(p), p, q, q_experts);
}

json resume_fingerprint(const QuantizeOptions& o, const Checkpoint& ck, const CalibBlocks* calib,
                        const std::vector<std::string>& skipped_groups) {
  json f;
  f["stage format"] = kStageFormat;
  f["tool"] = tool_fingerprint();
  for (const auto& file : ck.files())
    f["model " + fs::path(file->path()).filename().string()] =
        safetensors_fingerprint(file->path(), file->file_size());
  std::vector<std::string> small = {"config.json", "model.safetensors.index.json"};
  for (const std::string& t : tokenizer_file_names()) small.push_back(t);
  for (const std::string& name : small) {
    const fs::path p = fs::path(o.model_dir) / name;
    if (fs::is_regular_file(p)) f["model " + name] = file_hash(p);
  }
  if (calib)
    f["calibration tokens"] =
        fmt::format("{} x {}, {}", calib->n_blocks, calib->seqlen,
                    hex64(hash64(calib->tokens.data(), calib->tokens.size() * sizeof(int32_t))));
  // Options that change the output, by their command-line names; --calib by its tokens above,
  // not its path (another machine's shard, or another working directory, may name the same text
  // differently). Not here: --out, --report,
  // --save-search, --threads, progress and verbosity (they change no output byte), --no-resume,
  // and --shard / the merged shards (every shard of one command has the same fingerprint; a shard
  // keeps no resume stage).
  f["--method"] = method_name(o.method);
  f["--gptq-damp"] = o.gptq.damp;
  f["--act-order"] = o.gptq.act_order;
  f["--format"] = o.format == OutputFormat::AutoAwq ? "autoawq" : "fake-quant";
  f["--no-quantize"] = o.no_quantize;
  f["--bits"] = o.spec.bits;
  f["--group-size"] = o.spec.group_size;
  f["--symmetric"] = !o.spec.zero_point;
  f["--scale-dtype"] = o.spec.f16_scales ? "f16" : "f32";
  f["--scale-mode"] = scale_mode_name(o.scale_mode);
  f["--scale-grid"] = o.scale_grid;
  // What runs, not what was asked: a bf16 stage resumed where bf16 falls back to f32 starts over.
  f["--search-precision"] = search_precision_name(effective_search_precision(o.search_precision));
  f["--scale-screen"] = o.scale_screen;
  f["--scale-finalists"] = o.scale_finalists;
  f["--scale-keep"] = o.scale_keep;
  f["scaling groups skipped (--group-off/--group-on)"] = skipped_groups;
  f["--no-clip"] = !o.clip;
  f["--scale-loss"] = o.clip_aware_search ? "clipped" : "plain";
  f["clip grid"] = o.clip_opts.n_grid;
  f["clip max shrink"] = o.clip_opts.max_shrink;
  f["--clip-bounds"] = clip_asymmetric(o.clip_opts, o.spec) ? "asymmetric" : "symmetric";
  f["--clip-tokens"] = o.clip_tokens;
  f["--moe-min-tokens"] = o.moe_min_tokens;
  f["--calib-samples"] = o.calib_samples;
  f["--calib-seqlen"] = o.calib_seqlen;
  f["--calib-long"] = calib_long_name(o.calib_long);
  f["--shuffle"] = o.shuffle_seed ? json(*o.shuffle_seed) : json("off");
  f["--propagate"] = o.propagate_quantized ? "quantized" : "fp";
  f["--act-dtype"] = act_dtype_name(o.act_dtype);
  f["--pad-intermediate"] = o.pad_intermediate;
  f["--load-search"] = o.load_search.empty() ? "" : file_hash(o.load_search);
  return f;
}

ResumeStage::ResumeStage(const std::string& out_dir, const json& fingerprint,
                         const SearchHeader& header, const Architecture& arch, bool resume,
                         bool keeps_quantized)
    : header_(header), arch_(arch), keeps_quantized_(keeps_quantized) {
  std::string d = out_dir;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  dir_ = d + ".resume";
  std::error_code ec;
  if (fs::exists(dir_, ec)) {
    std::string why;
    if (!resume) {
      set_aside("--no-resume");
    } else if (!load(fingerprint, &why)) {
      set_aside(why);
    } else {
      if (kept_blocks() > 0)
        messages_.push_back(fmt::format("resuming: layers 0-{} of {} are kept in {}",
                                        kept_blocks() - 1, header_.num_layers, dir_));
      return;
    }
  }
  start(fingerprint);
}

void ResumeStage::set_aside(const std::string& why) {
  const std::string stale = dir_ + ".stale";
  std::error_code ec;
  fs::remove_all(stale, ec);
  fs::rename(dir_, stale, ec);
  AWQ_CHECK(!ec, "{}: cannot move the old resume stage aside to {}: {}", dir_, stale, ec.message());
  blocks_.clear();
  quantized_.clear();
  quantized_experts_.clear();
  activations_ = Mat();
  messages_.push_back(fmt::format("not resuming from {}: {}; moved it to {}", dir_, why, stale));
}

void ResumeStage::start(const json& fingerprint) {
  std::error_code ec;
  fs::remove_all(dir_, ec);
  fs::create_directories(dir_, ec);
  AWQ_CHECK(!ec, "{}: cannot create the resume stage: {}", dir_, ec.message());
  write_sealed_file((fs::path(dir_) / "fingerprint.json").string(), {fingerprint.dump(1) + "\n"});
}

bool ResumeStage::load(const json& fingerprint, std::string* why) {
  const fs::path dir(dir_);
  try {
    const json kept = json::parse(read_sealed_file((dir / "fingerprint.json").string()));
    if (kept != fingerprint) {
      *why = "it was made by a different command or input: " +
             fingerprint_difference(kept, fingerprint);
      return false;
    }
    // The blocks, in order, up to the first missing one.
    for (int64_t l = 0; l < header_.num_layers; ++l) {
      if (!fs::exists(dir / block_file_name(l))) break;
      blocks_.push_back(read_block_file(dir_, l, header_, arch_));
      if (keeps_quantized_) {
        quantized_.emplace_back();
        quantized_experts_.emplace_back();
        read_quantized_file(dir_, l, quantized_.back(), quantized_experts_.back());
      }
    }
    const int64_t n = kept_blocks();
    if (n == header_.num_layers) return true;  // every block: no activations needed
    const fs::path ap = dir / "activations.bin";
    if (!fs::exists(ap)) {  // killed before the first block's activations were kept
      blocks_.clear();
      quantized_.clear();
      quantized_experts_.clear();
      return true;
    }
    // The activations: a 32-byte head (magic, layer, rows, cols), f32 data, the seal.
    const std::string path = ap.string();
    std::ifstream in(path, std::ios::binary);
    AWQ_CHECK(in.good(), "{}: cannot open: {}", path, std::strerror(errno));
    const uint64_t size = fs::file_size(ap);
    char head[32];
    in.read(head, 32);
    AWQ_CHECK(in.good() && std::memcmp(head, kActsMagic, 8) == 0 && size >= 32 + kSealBytes,
              "{}: not an activations file (torn or foreign)", path);
    int64_t layer = 0, rows = 0, cols = 0;
    std::memcpy(&layer, head + 8, 8);
    std::memcpy(&rows, head + 16, 8);
    std::memcpy(&cols, head + 24, 8);
    AWQ_CHECK(layer >= 1 && layer <= n,
              "{}: activations entering layer {}, but the layers kept before it end at {}", path,
              layer, n - 1);
    AWQ_CHECK(cols == header_.hidden_size && cols > 0 && rows >= 0 && uint64_t(rows) <= size / 4 &&
                  uint64_t(rows) * uint64_t(cols) * 4 + 32 + kSealBytes == size,
              "{}: [{} x {}] activations in {} bytes (expected width {})", path, rows, cols, size,
              header_.hidden_size);
    Mat x(rows, cols);
    in.read(reinterpret_cast<char*>(x.data.data()), std::streamsize(x.data.size() * 4));
    char trailer[kSealBytes];
    in.read(trailer, kSealBytes);
    AWQ_CHECK(in.good(), "{}: read error", path);
    Hasher h;
    h.update(head, 32);
    h.update(x.data.data(), x.data.size() * 4);
    const std::string bad = seal_problem(trailer, size - kSealBytes, h.digest());
    AWQ_CHECK(bad.empty(), "{}: {}", path, bad);
    // Blocks after `layer` were finished but their activations were not kept: done again.
    blocks_.resize(size_t(layer));
    if (keeps_quantized_) {
      quantized_.resize(size_t(layer));
      quantized_experts_.resize(size_t(layer));
    }
    activations_ = std::move(x);
    return true;
  } catch (const json::exception& e) {
    *why = fmt::format("a kept file is not valid JSON ({})", e.what());
  } catch (const Error& e) {
    *why = e.what();
  }
  blocks_.clear();
  quantized_.clear();
  quantized_experts_.clear();
  return false;
}

Mat ResumeStage::take_activations() {
  AWQ_CHECK(activations_.rows > 0, "{}: no activations kept", dir_);
  return std::move(activations_);
}

void ResumeStage::keep_block(const BlockResult& b, const Mat* next_input,
                             const std::vector<QuantizedMatrix>* q,
                             const std::vector<QuantizedMatrix>* q_experts) {
  const fs::path dir(dir_);
  if (keeps_quantized_) {
    AWQ_CHECK(q && q_experts, "{}: layer {}: the quantized linears are not given", dir_, b.layer);
    write_quantized_file(dir_, b.layer, *q, *q_experts);
  }
  write_block_file(dir_, b);
  if (next_input == nullptr) {  // the last block: no one needs activations any more
    std::error_code ec;
    fs::remove(dir / "activations.bin", ec);
    return;
  }
  char head[32];
  const int64_t layer = b.layer + 1, rows = next_input->rows, cols = next_input->cols;
  std::copy_n(kActsMagic, 8, head);  // the magic, without its terminating NUL
  std::memcpy(head + 8, &layer, 8);
  std::memcpy(head + 16, &rows, 8);
  std::memcpy(head + 24, &cols, 8);
  write_sealed_file((dir / "activations.bin").string(),
                    {std::string_view(head, 32),
                     std::string_view(reinterpret_cast<const char*>(next_input->data.data()),
                                      next_input->data.size() * 4)});
}

void ResumeStage::remove() {
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

}  // namespace awq
