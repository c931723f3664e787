// Small helpers for reading tokenizer.json components (internal to the tokenizer layer).
#pragma once
#include <nlohmann/json.hpp>

#include <memory>
#include <string>

#include "base/error.h"
#include "tokenizer/regex.h"

namespace awq::tok {

// The "pattern" of Replace and Split: {"String": literal} or {"Regex": pattern}. Exactly one of
// `literal` / `regex` is set.
inline void read_pattern(const nlohmann::json& p, const std::string& what, std::string* literal,
                         std::shared_ptr<const Regex>* regex) {
  if (p.is_object() && p.size() == 1 && p.contains("String") && p["String"].is_string()) {
    *literal = p["String"].get<std::string>();
  } else if (p.is_object() && p.size() == 1 && p.contains("Regex") && p["Regex"].is_string()) {
    *regex = std::make_shared<const Regex>(p["Regex"].get<std::string>(), what);
  } else {
    fail("{}: pattern must be {{\"String\": ...}} or {{\"Regex\": ...}}, got {}", what, p.dump());
  }
}

// The "type" of a component object, or an error naming `what`.
inline std::string component_type(const nlohmann::json& j, const std::string& what) {
  AWQ_CHECK(j.is_object() && j.contains("type") && j["type"].is_string(),
            "{}: component without a \"type\": {}", what, j.dump().substr(0, 200));
  return j["type"].get<std::string>();
}

// Metaspace's "prepend_scheme" (default "always"); the older add_prefix_space=false means "never".
enum class PrependScheme { kAlways, kFirst, kNever };
inline PrependScheme read_prepend_scheme(const nlohmann::json& j, const std::string& what) {
  PrependScheme s = PrependScheme::kAlways;
  if (auto it = j.find("prepend_scheme"); it != j.end() && !it->is_null()) {
    const std::string v = it->get<std::string>();
    if (v == "always") {
      s = PrependScheme::kAlways;
    } else if (v == "first") {
      s = PrependScheme::kFirst;
    } else if (v == "never") {
      s = PrependScheme::kNever;
    } else {
      fail("{}: unknown Metaspace prepend_scheme \"{}\"", what, v);
    }
  }
  if (auto it = j.find("add_prefix_space"); it != j.end() && it->is_boolean() && !it->get<bool>())
    s = PrependScheme::kNever;
  return s;
}

}  // namespace awq::tok
