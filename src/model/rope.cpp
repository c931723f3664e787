#include "model/rope.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <map>
#include <mutex>
#include <numbers>

#include "base/error.h"

namespace awq {
using json = nlohmann::json;

namespace {

double num(const json& j, const char* key, double def, const std::string& src) {
  if (!j.contains(key) || j[key].is_null()) return def;
  AWQ_CHECK(j[key].is_number(), "{}: rope_scaling.{} must be a number, got {}", src, key,
            j[key].dump());
  return j[key].get<double>();
}

double required(const json& j, const char* key, const std::string& src, const std::string& type) {
  AWQ_CHECK(j.contains(key) && j[key].is_number(),
            "{}: rope_scaling of type '{}' needs a number '{}'", src, type, key);
  return j[key].get<double>();
}

// A position count read as a number: finite and in [0, 2^40] (HF configs hold at most ~10^7),
// checked before the conversion to an integer, which is undefined out of range.
int64_t positions(double v, const char* key, const std::string& src) {
  AWQ_CHECK(std::isfinite(v) && v >= 0 && v <= double(int64_t(1) << 40),
            "{}: rope_scaling.{} = {} is not a plausible number of positions", src, key, v);
  return int64_t(v);
}

std::vector<double> factors(const json& j, const char* key, int64_t n, const std::string& src) {
  AWQ_CHECK(j.contains(key) && j[key].is_array(),
            "{}: rope_scaling of type 'longrope' needs a list '{}'", src, key);
  std::vector<double> v;
  for (const auto& x : j[key]) {
    AWQ_CHECK(x.is_number(), "{}: rope_scaling.{} holds a non-number {}", src, key, x.dump());
    v.push_back(x.get<double>());
  }
  AWQ_CHECK(int64_t(v.size()) == n,
            "{}: rope_scaling.{} has {} entries, expected rotary_dim/2 = {}", src, key, v.size(),
            n);
  return v;
}

}  // namespace

RopeScaling RopeScaling::from_json(const json& j, int64_t rotary_dim,
                                   int64_t top_level_original_max, const std::string& src) {
  RopeScaling r;
  if (j.is_null()) return r;
  AWQ_CHECK(j.is_object(), "{}: rope_scaling must be an object or null, got {}", src, j.dump());
  // rope_type, falling back to the legacy "type" (HF's standardization). Phi-3's legacy "su" and
  // "yarn" both mean longrope there; only "su" is unambiguous, so it alone is rewritten.
  std::string type;
  if (j.contains("rope_type") && j["rope_type"].is_string()) {
    type = j["rope_type"].get<std::string>();
  } else if (j.contains("type") && j["type"].is_string()) {
    type = j["type"].get<std::string>();
  } else {
    fail("{}: rope_scaling has no 'rope_type' (or 'type'): {}", src, j.dump());
  }
  if (type == "su") type = "longrope";
  r.type = type;
  if (type == "default") return r;
  if (type == "linear" || type == "dynamic") {
    r.factor = required(j, "factor", src, type);
  } else if (type == "llama3") {
    r.factor = required(j, "factor", src, type);
    r.low_freq_factor = required(j, "low_freq_factor", src, type);
    r.high_freq_factor = required(j, "high_freq_factor", src, type);
    r.original_max_position_embeddings =
        positions(required(j, "original_max_position_embeddings", src, type),
                  "original_max_position_embeddings", src);
    AWQ_CHECK(r.high_freq_factor > r.low_freq_factor,
              "{}: rope_scaling.high_freq_factor {} must exceed low_freq_factor {}", src,
              r.high_freq_factor, r.low_freq_factor);
  } else if (type == "yarn") {
    r.factor = required(j, "factor", src, type);
    r.original_max_position_embeddings =
        positions(num(j, "original_max_position_embeddings", 0, src),
                  "original_max_position_embeddings", src);
    // HF reads the betas with `x or default`: 0 also means the default.
    r.beta_fast = num(j, "beta_fast", 0, src);
    r.beta_slow = num(j, "beta_slow", 0, src);
    if (r.beta_fast == 0) r.beta_fast = 32;
    if (r.beta_slow == 0) r.beta_slow = 1;
    r.mscale = num(j, "mscale", 0, src);
    r.mscale_all_dim = num(j, "mscale_all_dim", 0, src);
    r.attention_factor = num(j, "attention_factor", 0, src);
  } else if (type == "longrope") {
    r.short_factor = factors(j, "short_factor", rotary_dim / 2, src);
    r.long_factor = factors(j, "long_factor", rotary_dim / 2, src);
    r.factor = num(j, "factor", 0, src);
    r.attention_factor = num(j, "attention_factor", 0, src);
    r.original_max_position_embeddings = top_level_original_max;
  } else {
    fail(
        "{}: rope_scaling type '{}' is not supported (supported: linear, dynamic, llama3, yarn, "
        "longrope)",
        src, type);
  }
  AWQ_CHECK(type == "longrope" || r.factor > 0, "{}: rope_scaling.factor must be positive, got {}",
            src, r.factor);
  return r;
}

json RopeScaling::to_json() const {
  if (is_default()) return nullptr;
  json j = {{"rope_type", type}};
  if (type == "longrope") {
    j["short_factor"] = short_factor;
    j["long_factor"] = long_factor;
    if (factor > 0) j["factor"] = factor;
  } else {
    j["factor"] = factor;
  }
  if (type == "llama3") {
    j["low_freq_factor"] = low_freq_factor;
    j["high_freq_factor"] = high_freq_factor;
  }
  if (type == "yarn") {
    j["beta_fast"] = beta_fast;
    j["beta_slow"] = beta_slow;
    if (mscale != 0) j["mscale"] = mscale;
    if (mscale_all_dim != 0) j["mscale_all_dim"] = mscale_all_dim;
  }
  if (attention_factor != 0) j["attention_factor"] = attention_factor;
  if (original_max_position_embeddings > 0 && type != "longrope")
    j["original_max_position_embeddings"] = original_max_position_embeddings;
  return j;
}

void rope_frequencies(const RopeSpec& spec, int64_t seq_len, std::vector<double>& inv_freq,
                      double& attention_factor) {
  const int64_t dim = spec.rotary_dim, half = dim / 2;
  const RopeScaling& r = spec.scaling;
  const double M = double(spec.max_position_embeddings);
  double base = spec.theta;
  attention_factor = 1.0;
  // dynamic (NTK): the base grows once the sequence outgrows max_position_embeddings.
  if (r.type == "dynamic" && double(seq_len) > M) {
    base *=
        std::pow(r.factor * double(seq_len) / M - (r.factor - 1.0), double(dim) / double(dim - 2));
  }
  inv_freq.resize(size_t(half));
  for (int64_t i = 0; i < half; ++i)
    inv_freq[size_t(i)] = std::pow(base, -double(2 * i) / double(dim));
  if (r.type == "linear") {
    for (double& f : inv_freq) f /= r.factor;
  } else if (r.type == "llama3") {
    // Wavelengths shorter than Lo/high_freq_factor keep their frequency, longer than
    // Lo/low_freq_factor are divided by factor, and the band between is interpolated.
    const double lo = double(r.original_max_position_embeddings);
    const double low_wavelen = lo / r.low_freq_factor, high_wavelen = lo / r.high_freq_factor;
    for (double& f : inv_freq) {
      const double wavelen = 2 * std::numbers::pi / f;
      if (wavelen < high_wavelen) continue;
      if (wavelen > low_wavelen) {
        f /= r.factor;
        continue;
      }
      const double s =
          (lo / wavelen - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
      f = (1 - s) * f / r.factor + s * f;
    }
  } else if (r.type == "yarn") {
    // transformers v4.52: an original_max_position_embeddings in rope_scaling replaces factor by
    // max_position_embeddings / original (families.md §1).
    double factor = r.factor, lo = M;
    if (r.original_max_position_embeddings > 0) {
      lo = double(r.original_max_position_embeddings);
      factor = M / lo;
    }
    auto get_mscale = [](double s, double m) { return s <= 1 ? 1.0 : 0.1 * m * std::log(s) + 1.0; };
    if (r.attention_factor != 0) {
      attention_factor = r.attention_factor;
    } else if (r.mscale != 0 && r.mscale_all_dim != 0) {
      attention_factor = get_mscale(factor, r.mscale) / get_mscale(factor, r.mscale_all_dim);
    } else {
      attention_factor = get_mscale(factor, 1.0);
    }
    auto correction_dim = [&](double rot) {
      return double(dim) * std::log(lo / (rot * 2 * std::numbers::pi)) / (2 * std::log(base));
    };
    const double low = std::max(std::floor(correction_dim(r.beta_fast)), 0.0);
    double high = std::min(std::ceil(correction_dim(r.beta_slow)), double(dim - 1));
    if (low == high) high += 0.001;
    for (int64_t i = 0; i < half; ++i) {
      const double ramp = std::clamp((double(i) - low) / (high - low), 0.0, 1.0);
      const double extrapolation = 1 - ramp;
      double& f = inv_freq[size_t(i)];
      f = f / factor * (1 - extrapolation) + f * extrapolation;
    }
  } else if (r.type == "longrope") {
    double factor = r.factor, lo = M;
    if (r.original_max_position_embeddings > 0) {
      lo = double(r.original_max_position_embeddings);
      factor = M / lo;
    }
    if (r.attention_factor != 0) {
      attention_factor = r.attention_factor;
    } else {
      attention_factor = factor <= 1 ? 1.0 : std::sqrt(1 + std::log(factor) / std::log(lo));
    }
    const std::vector<double>& ext = double(seq_len) > lo ? r.long_factor : r.short_factor;
    AWQ_CHECK(int64_t(ext.size()) == half, "longrope: {} factors for {} frequencies", ext.size(),
              half);
    for (int64_t i = 0; i < half; ++i) inv_freq[size_t(i)] /= ext[size_t(i)];
  }
}

namespace {
// Tables are shared by every layer and call with the same frequencies.
std::mutex g_table_mu;
std::map<std::pair<std::vector<double>, double>, std::shared_ptr<const RotaryTable>> g_tables;
}  // namespace

size_t rotary_table_cache_entries() {
  std::lock_guard lock(g_table_mu);
  return g_tables.size();
}

std::shared_ptr<const RotaryTable> rotary_table(const RopeSpec& spec, int64_t seq_len) {
  std::vector<double> inv_freq;
  double af = 1;
  rope_frequencies(spec, seq_len, inv_freq, af);
  auto& cache = g_tables;
  std::lock_guard lock(g_table_mu);
  // Dynamic NTK scaling changes the frequencies with every token decoded past the original
  // context: without eviction the cache would grow by a whole table per token. Tables no caller
  // holds any more are dropped once a few distinct ones exist.
  if (cache.size() >= 8 && !cache.count({inv_freq, af})) {
    for (auto it = cache.begin(); it != cache.end();)
      it = it->second.use_count() == 1 ? cache.erase(it) : std::next(it);
  }
  auto& slot = cache[{inv_freq, af}];
  if (slot && slot->n_pos >= seq_len) return slot;
  auto t = std::make_shared<RotaryTable>();
  t->rotary_dim = spec.rotary_dim;
  t->inv_freq = inv_freq;
  t->attention_factor = af;
  t->n_pos = std::max<int64_t>({seq_len, slot ? 2 * slot->n_pos : 0, 64});
  const int64_t half = spec.rotary_dim / 2;
  t->cos.resize(size_t(t->n_pos * half));
  t->sin.resize(size_t(t->n_pos * half));
  for (int64_t i = 0; i < half; ++i) {
    for (int64_t p = 0; p < t->n_pos; ++p) {
      const double a = double(p) * inv_freq[size_t(i)];
      t->cos[size_t(p * half + i)] = float(std::cos(a) * af);
      t->sin[size_t(p * half + i)] = float(std::sin(a) * af);
    }
  }
  slot = t;
  return t;
}

}  // namespace awq
