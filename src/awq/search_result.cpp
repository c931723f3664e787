#include "awq/search_result.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/files.h"

namespace awq {
using json = nlohmann::ordered_json;

namespace {

constexpr int kFormatVersion = 1;

char digit36(int v) {
  return v < 10 ? char('0' + v) : char('a' + v - 10);
}

int from_digit36(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'z') return c - 'a' + 10;
  return -1;
}

LinearRole role_from_name(const std::string& name, const std::string& path) {
  for (LinearRole r : kAllLinearRoles)
    if (name == linear_role_name(r)) return r;
  fail("{}: unknown linear '{}'", path, name);
}

// A sparse layer's expert in the file: its index, or "shared".
json expert_json(int expert) {
  return expert == kSharedExpert ? json("shared") : json(expert);
}

int expert_from_json(const json& e, const std::string& path) {
  if (!e.contains("expert")) return kNoExpert;
  const json& v = e["expert"];
  if (v.is_string() && v.get<std::string>() == "shared") return kSharedExpert;
  AWQ_CHECK(v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() < (1 << 20),
            "{}: 'expert' must be an expert index or \"shared\" (got {})", path, v.dump());
  return int(v.get<int64_t>());
}

}  // namespace

json block_to_json(const BlockResult& b, bool full) {
  json l;
  l["layer"] = b.layer;
  json scales = json::array();
  std::vector<const GroupResult*> groups;
  for (const auto& g : b.groups) groups.push_back(&g);
  for (const auto& g : b.moe_groups) groups.push_back(&g);
  for (const GroupResult* gp : groups) {
    const GroupResult& g = *gp;
    if (!g.applied && !full) continue;
    json e;
    e["group"] = g.name;
    if (g.expert != kNoExpert) e["expert"] = expert_json(g.expert);
    e["prev"] = g.prev;
    if (!g.applied) e["applied"] = false;
    e["choice"] = g.choice.label();
    e["duo"] = g.choice.duo;
    e["alpha"] = g.choice.alpha;
    e["loss"] = g.loss;
    e["rtn_loss"] = g.rtn_loss;
    if (full) e["flops"] = g.flops;
    // f32 → double is exact and nlohmann prints doubles with 17 significant digits, so the
    // values read back are the same floats.
    json s = json::array();
    for (float v : g.scales) s.push_back(double(v));
    e["s"] = std::move(s);
    scales.push_back(std::move(e));
  }
  l["scales"] = std::move(scales);
  json clips = json::array();
  std::vector<const ClipResult*> all_clips;
  for (const auto& c : b.clips) all_clips.push_back(&c);
  for (const auto& c : b.moe_clips) all_clips.push_back(&c);
  for (const ClipResult* cp : all_clips) {
    const ClipResult& c = *cp;
    json e;
    e["linear"] = linear_role_name(c.role);
    if (c.expert != kNoExpert) e["expert"] = expert_json(c.expert);
    e["out"] = c.out;
    e["groups"] = c.n_groups;
    auto digits = [](const std::vector<uint8_t>& index) {
      std::string d(index.size(), '0');
      for (size_t i = 0; i < d.size(); ++i) d[i] = digit36(index[i]);
      return d;
    };
    e["shrink"] = digits(c.choice.hi);
    if (!c.choice.lo.empty()) e["shrink_lo"] = digits(c.choice.lo);
    clips.push_back(std::move(e));
  }
  l["clips"] = std::move(clips);
  if (full && !b.expert_tokens.empty()) l["expert_tokens"] = b.expert_tokens;
  if (full && !b.gptq.empty()) {
    json g = json::array();
    for (const auto& r : b.gptq) {
      json e;
      e["linear"] = linear_role_name(r.role);
      if (r.expert != kNoExpert) e["expert"] = expert_json(r.expert);
      e["rtn_loss"] = r.rtn_loss;
      e["loss"] = r.loss;
      e["damp"] = r.damp;
      e["dead"] = r.dead;
      g.push_back(std::move(e));
    }
    l["gptq"] = std::move(g);
  }
  return l;
}

BlockResult block_from_json(const json& l, const SearchHeader& h, const Architecture& arch,
                            const std::string& path) {
  BlockResult b;
  b.layer = l.at("layer").get<int64_t>();
  for (const auto& e : l.at("scales")) {
    GroupResult g;
    g.name = e.at("group").get<std::string>();
    const bool moe = g.name.rfind("moe.", 0) == 0;
    if (moe) {
      AWQ_CHECK(g.name == "moe.gate_up" || g.name == "moe.down",
                "{}: layer {}: unknown scaling group '{}'", path, b.layer, g.name);
      g.expert = expert_from_json(e, path);
      g.layers = g.name == "moe.gate_up" ? std::vector<LinearRole>{LinearRole::Gate, LinearRole::Up}
                                         : std::vector<LinearRole>{LinearRole::Down};
    } else {
      const ScalingGroup* sg = nullptr;
      for (const auto& cand : arch.scaling_groups)
        if (cand.name == g.name) sg = &cand;
      AWQ_CHECK(sg != nullptr, "{}: layer {}: unknown scaling group '{}'", path, b.layer, g.name);
      g.layers = sg->layers;
    }
    g.prev = e.value("prev", "");
    g.applied = e.value("applied", true);
    g.choice.duo = e.value("duo", false);
    g.choice.alpha = e.value("alpha", 0.0f);
    g.choice.identity = e.value("choice", "") == "identity";
    g.loss = e.value("loss", 0.0);
    g.rtn_loss = e.value("rtn_loss", 0.0);
    g.flops = e.value("flops", 0.0);
    for (const auto& v : e.at("s")) g.scales.push_back(float(v.get<double>()));
    (moe ? b.moe_groups : b.groups).push_back(std::move(g));
  }
  for (const auto& e : l.at("clips")) {
    ClipResult c;
    c.role = role_from_name(e.at("linear").get<std::string>(), path);
    c.expert = expert_from_json(e, path);
    c.out = e.at("out").get<int64_t>();
    c.n_groups = e.at("groups").get<int64_t>();
    auto indices = [&](const char* key) {
      const std::string digits = e.at(key).get<std::string>();
      AWQ_CHECK(int64_t(digits.size()) == c.out * c.n_groups,
                "{}: layer {} {}: {} '{}' digits for [{}, {}]", path, b.layer,
                linear_role_name(c.role), digits.size(), key, c.out, c.n_groups);
      std::vector<uint8_t> index(digits.size());
      for (size_t i = 0; i < digits.size(); ++i) {
        const int v = from_digit36(digits[i]);
        AWQ_CHECK(v >= 0 && v < h.clip_grid, "{}: layer {} {}: bad '{}' digit '{}'", path, b.layer,
                  linear_role_name(c.role), key, digits[i]);
        index[i] = uint8_t(v);
      }
      return index;
    };
    c.choice.hi = indices("shrink");
    if (e.contains("shrink_lo")) c.choice.lo = indices("shrink_lo");
    (e.contains("expert") ? b.moe_clips : b.clips).push_back(std::move(c));
  }
  if (l.contains("expert_tokens")) b.expert_tokens = l["expert_tokens"].get<std::vector<int64_t>>();
  return b;
}

void save_search(const std::string& path, const SearchHeader& h,
                 const std::vector<BlockResult>& blocks) {
  json j;
  j["awq_cpp_search"] = kFormatVersion;
  j["model_type"] = h.model_type;
  j["num_hidden_layers"] = h.num_layers;
  j["hidden_size"] = h.hidden_size;
  j["intermediate_size"] = h.intermediate_size;
  j["bits"] = h.bits;
  j["group_size"] = h.group_size;
  j["zero_point"] = h.zero_point;
  j["f16_scales"] = h.f16_scales;
  j["clip_grid"] = h.clip_grid;
  json layers = json::array();
  for (const auto& b : blocks) layers.push_back(block_to_json(b, false));
  j["layers"] = std::move(layers);
  write_text_file_atomic(path, j.dump(1) + "\n");
}

std::vector<BlockResult> load_search(const std::string& path, const SearchHeader& h,
                                     const Architecture& arch) {
  json j;
  try {
    j = json::parse(read_text_file(path));
  } catch (const json::exception& e) {
    fail("{}: invalid JSON: {}", path, e.what());
  }
  try {
    AWQ_CHECK(j.is_object() && j.value("awq_cpp_search", 0) == kFormatVersion,
              "{}: not an awq.cpp search file (version {})", path, kFormatVersion);
    auto expect = [&](const char* key, const auto& want) {
      AWQ_CHECK(j.contains(key) && j[key] == json(want),
                "{}: field '{}' is {}, but this run has {} (the search must be replayed with the "
                "model and quantizer settings it was made with)",
                path, key, j.contains(key) ? j[key].dump() : "missing", json(want).dump());
    };
    expect("model_type", h.model_type);
    expect("num_hidden_layers", h.num_layers);
    expect("hidden_size", h.hidden_size);
    expect("intermediate_size", h.intermediate_size);
    expect("bits", h.bits);
    expect("group_size", h.group_size);
    expect("zero_point", h.zero_point);
    // Files written before the field existed used f16 scales.
    AWQ_CHECK(j.value("f16_scales", true) == h.f16_scales,
              "{}: the search was made with {} scales, this run quantizes with {} scales "
              "(--scale-dtype)",
              path, j.value("f16_scales", true) ? "f16" : "f32", h.f16_scales ? "f16" : "f32");
    expect("clip_grid", h.clip_grid);
    const json& layers = j.at("layers");
    AWQ_CHECK(layers.is_array() && int64_t(layers.size()) == h.num_layers, "{}: expected {} layers",
              path, h.num_layers);
    std::vector<BlockResult> out;
    for (const auto& l : layers) {
      BlockResult b = block_from_json(l, h, arch, path);
      AWQ_CHECK(b.layer == int64_t(out.size()), "{}: layers out of order at {}", path, b.layer);
      out.push_back(std::move(b));
    }
    return out;
  } catch (const json::exception& e) {
    fail("{}: malformed search file: {}", path, e.what());
  }
}

}  // namespace awq
