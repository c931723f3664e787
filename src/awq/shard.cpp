#include "awq/shard.h"

#include <fmt/format.h>

#include <filesystem>
#include <map>

#include "awq/pipeline.h"
#include "awq/resume.h"
#include "base/error.h"
#include "base/files.h"

namespace awq {
namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

namespace {

constexpr const char* kManifest = "shard.json";

// NOLINTNEXTLINE(bugprone-exception-escape): the implicit moves of nlohmann::json are not noexcept
struct Manifest {
  std::string dir;
  int k = 0, n = 0;
  ShardRange range;
  std::string model_dir;
  json fingerprint;
};

Manifest read_manifest(const std::string& dir) {
  const std::string path = (fs::path(dir) / kManifest).string();
  AWQ_CHECK(fs::is_regular_file(path),
            "{}: not a shard (no {}; shards are written by awq quantize --shard K/N)", dir,
            kManifest);
  try {
    const json j = json::parse(read_sealed_file(path));
    Manifest m;
    m.dir = dir;
    m.k = j.at("shard").get<int>();
    m.n = j.at("of").get<int>();
    m.range.first = j.at("layers").at(0).get<int64_t>();
    m.range.end = j.at("layers").at(1).get<int64_t>();
    m.model_dir = j.at("model").get<std::string>();
    m.fingerprint = j.at("fingerprint");
    AWQ_CHECK(m.n >= 1 && m.k >= 1 && m.k <= m.n && m.fingerprint.is_object(),
              "{}: shard {}/{} is not a valid shard", path, m.k, m.n);
    return m;
  } catch (const json::exception& e) {
    fail("{}: not a shard manifest: {}", path, e.what());
  }
}

// The fingerprint's field `key`, or an error naming the shard.
const json& field(const Manifest& m, const std::string& key) {
  AWQ_CHECK(m.fingerprint.contains(key), "{}: the shard's fingerprint has no '{}'", m.dir, key);
  return m.fingerprint[key];
}

}  // namespace

std::pair<int, int> parse_shard(const std::string& s) {
  int k = 0, n = 0;
  char slash = 0, extra = 0;
  const int got = std::sscanf(s.c_str(), "%d%c%d%c", &k, &slash, &n, &extra);
  AWQ_CHECK(got == 3 && slash == '/' && n >= 1 && k >= 1 && k <= n,
            "--shard {}: expected K/N with 1 <= K <= N (e.g. 2/4: the second of four)", s);
  return {k, n};
}

ShardRange shard_range(int k, int n, int64_t num_layers) {
  return {num_layers * (k - 1) / n, num_layers * k / n};
}

void write_shard_manifest(const std::string& path, int k, int n, ShardRange r,
                          const std::string& model_dir, const json& fingerprint) {
  json j;
  j["shard"] = k;
  j["of"] = n;
  j["layers"] = {r.first, r.end};
  j["model"] = fs::absolute(model_dir).lexically_normal().string();
  j["fingerprint"] = fingerprint;
  write_sealed_file(path, {j.dump(1) + "\n"});
}

QuantizeOptions merge_options(const std::vector<std::string>& shards, const std::string& model_dir,
                              const std::string& out_dir) {
  AWQ_CHECK(!shards.empty(), "awq merge: no shard directories given");
  const Manifest m = read_manifest(shards.front());
  QuantizeOptions o;
  o.model_dir = model_dir.empty() ? m.model_dir : model_dir;
  o.out_dir = out_dir;
  o.merge_shards = shards;
  // What the replay needs; the rest of the fingerprint (calibration, search settings) decided
  // the kept results and is compared between the shards only.
  const auto str = [&](const char* k) { return field(m, k).get<std::string>(); };
  o.method = parse_method(str("--method"));
  AWQ_CHECK(o.method != QuantMethod::Rtn && str("--propagate") == "fp",
            "{}: not a shard of an AWQ or GPTQ run", m.dir);
  o.format = parse_output_format(str("--format"));
  o.no_quantize = field(m, "--no-quantize").get<bool>();
  o.spec.bits = field(m, "--bits").get<int>();
  o.spec.group_size = field(m, "--group-size").get<int>();
  o.spec.zero_point = !field(m, "--symmetric").get<bool>();
  o.spec.f16_scales = str("--scale-dtype") == "f16";
  o.clip = !field(m, "--no-clip").get<bool>();
  o.clip_opts.n_grid = field(m, "clip grid").get<int>();
  o.clip_opts.max_shrink = field(m, "clip max shrink").get<float>();
  o.clip_opts.asymmetric = str("--clip-bounds") == "asymmetric";
  o.pad_intermediate = field(m, "--pad-intermediate").get<int64_t>();
  if (uses_gptq(o.method)) {  // recorded only; the merge takes the shards' GPTQ results
    o.gptq.damp = field(m, "--gptq-damp").get<double>();
    o.gptq.act_order = field(m, "--act-order").get<bool>();
  }
  return o;
}

std::vector<std::string> shard_dir_of_layers(const std::vector<std::string>& shards,
                                             int64_t num_layers) {
  std::vector<std::string> dirs(static_cast<size_t>(num_layers));
  for (const std::string& d : shards) {
    const Manifest m = read_manifest(d);
    for (int64_t l = m.range.first; l < m.range.end && l < num_layers; ++l) dirs[size_t(l)] = d;
  }
  return dirs;
}

std::vector<BlockResult> load_shards(const std::vector<std::string>& shards,
                                     const SearchHeader& header, const Architecture& arch,
                                     const json& now) {
  std::vector<Manifest> ms;
  for (const std::string& d : shards) ms.push_back(read_manifest(d));
  const Manifest& first = ms.front();
  // One command made them all: the same fingerprint, the same N, each K once.
  std::map<int, const Manifest*> by_k;
  for (const Manifest& m : ms) {
    AWQ_CHECK(m.fingerprint == first.fingerprint,
              "{} and {} come from different commands or inputs ({}); merge the shards of one "
              "`awq quantize --shard K/N` command",
              first.dir, m.dir, fingerprint_difference(first.fingerprint, m.fingerprint));
    AWQ_CHECK(m.n == first.n, "{} is shard {}/{} but {} is shard {}/{}", m.dir, m.k, m.n, first.dir,
              first.k, first.n);
    AWQ_CHECK(by_k.emplace(m.k, &m).second, "shard {}/{} is given twice ({} and {})", m.k, m.n,
              by_k[m.k]->dir, m.dir);
    const ShardRange want = shard_range(m.k, m.n, header.num_layers);
    AWQ_CHECK(m.range.first == want.first && m.range.end == want.end,
              "{}: shard {}/{} holds layers [{}, {}), a {}-layer model's is [{}, {})", m.dir, m.k,
              m.n, m.range.first, m.range.end, header.num_layers, want.first, want.end);
  }
  for (int k = 1; k <= first.n; ++k)
    AWQ_CHECK(by_k.count(k), "shard {}/{} is missing (layers [{}, {})): give every shard", k,
              first.n, shard_range(k, first.n, header.num_layers).first,
              shard_range(k, first.n, header.num_layers).end);
  // The tool and the model read here are the ones the shards searched.
  for (const auto& [key, v] : now.items()) {
    if (key != "tool" && key.rfind("model ", 0) != 0) continue;
    AWQ_CHECK(first.fingerprint.contains(key) && first.fingerprint[key] == v,
              "{}: '{}' is {} here but {} in the shards; merge with the same awq build and "
              "model the shards were made with",
              first.dir, key, v.dump(),
              first.fingerprint.contains(key) ? first.fingerprint[key].dump() : "absent");
  }
  for (const auto& [key, v] : first.fingerprint.items())
    AWQ_CHECK(key.rfind("model ", 0) != 0 || now.contains(key),
              "{}: the shards' model has '{}', the model read here does not", first.dir,
              key.substr(6));
  std::vector<BlockResult> blocks;
  for (const auto& [k, m] : by_k)
    for (int64_t l = m->range.first; l < m->range.end; ++l)
      blocks.push_back(read_block_file(m->dir, l, header, arch));
  return blocks;
}

}  // namespace awq
