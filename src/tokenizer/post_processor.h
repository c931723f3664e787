// Post-processors of tokenizer.json ("post_processor"): TemplateProcessing (the "single" template:
// special tokens around $A), RobertaProcessing / BertProcessing (cls $A sep), ByteLevel (offsets
// only: no ids added) and Sequence. Only single-sequence encoding is supported.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace awq::tok {

class PostProcessor {
 public:
  // `j` may be null. Unsupported types are an awq::Error naming `what`.
  static PostProcessor from_json(const nlohmann::json& j, const std::string& what);
  // The template "[prefix] $A [suffix]" (Transformers' LlamaTokenizerFast rebuilds it this way
  // from add_bos_token / add_eos_token).
  static PostProcessor from_template(std::vector<int32_t> prefix, std::vector<int32_t> suffix);

  void apply(std::vector<int32_t>& ids) const;  // adds the special tokens around ids
  const std::vector<int32_t>& prefix() const { return prefix_; }
  const std::vector<int32_t>& suffix() const { return suffix_; }

 private:
  void add(const nlohmann::json& j, const std::string& what);
  std::vector<int32_t> prefix_, suffix_;
};

}  // namespace awq::tok
