#include "tokenizer/post_processor.h"

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "tokenizer/json_util.h"

namespace awq::tok {

using json = nlohmann::json;

PostProcessor PostProcessor::from_json(const json& j, const std::string& what) {
  PostProcessor p;
  if (!j.is_null()) p.add(j, what);
  return p;
}

PostProcessor PostProcessor::from_template(std::vector<int32_t> prefix,
                                           std::vector<int32_t> suffix) {
  PostProcessor p;
  p.prefix_ = std::move(prefix);
  p.suffix_ = std::move(suffix);
  return p;
}

// The ids of a [token, id] pair as RobertaProcessing / BertProcessing store "cls" and "sep".
static int32_t pair_id(const json& j, const std::string& what) {
  AWQ_CHECK(j.is_array() && j.size() == 2 && j[1].is_number_integer(),
            "{}: expected [\"token\", id], got {}", what, j.dump());
  return j[1].get<int32_t>();
}

void PostProcessor::add(const json& j, const std::string& what) {
  const std::string type = component_type(j, what + " (post_processor)");
  if (type == "Sequence") {
    for (const json& sub : j.at("processors")) add(sub, what);
  } else if (type == "ByteLevel") {
    // Only trims offsets; adds no tokens.
  } else if (type == "RobertaProcessing" || type == "BertProcessing") {
    // A later processor wraps what the earlier ones produced.
    prefix_.insert(prefix_.begin(), pair_id(j.at("cls"), what));
    suffix_.push_back(pair_id(j.at("sep"), what));
  } else if (type == "TemplateProcessing") {
    const json& single = j.at("single");
    const json& specials = j.contains("special_tokens") ? j["special_tokens"] : json::object();
    AWQ_CHECK(single.is_array(), "{}: TemplateProcessing \"single\" is not a list", what);
    bool seen_a = false;
    std::vector<int32_t> pre, post;
    for (const json& item : single) {
      if (item.contains("Sequence")) {
        AWQ_CHECK(!seen_a, "{}: TemplateProcessing \"single\" has more than one sequence", what);
        seen_a = true;
      } else if (item.contains("SpecialToken")) {
        const std::string name = item["SpecialToken"].at("id").get<std::string>();
        AWQ_CHECK(specials.contains(name),
                  "{}: TemplateProcessing uses special token \"{}\" missing from special_tokens",
                  what, name);
        const json& ids = specials[name].at("ids");
        auto& dst = seen_a ? post : pre;
        for (const json& id : ids) dst.push_back(id.get<int32_t>());
      } else {
        fail("{}: TemplateProcessing item {} is neither Sequence nor SpecialToken", what,
             item.dump());
      }
    }
    AWQ_CHECK(seen_a, "{}: TemplateProcessing \"single\" has no $A sequence", what);
    prefix_.insert(prefix_.begin(), pre.begin(), pre.end());
    suffix_.insert(suffix_.end(), post.begin(), post.end());
  } else {
    fail(
        "{}: unsupported post_processor type \"{}\" (supported: TemplateProcessing, ByteLevel, "
        "RobertaProcessing, BertProcessing, Sequence)",
        what, type);
  }
}

void PostProcessor::apply(std::vector<int32_t>& ids) const {
  if (!prefix_.empty()) ids.insert(ids.begin(), prefix_.begin(), prefix_.end());
  ids.insert(ids.end(), suffix_.begin(), suffix_.end());
}

}  // namespace awq::tok
