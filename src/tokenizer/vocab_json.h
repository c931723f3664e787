// Writing generated tokenizer.json files: nlohmann's ordered_json looks keys up linearly, so a
// large vocabulary object is serialized here and spliced into the document at a placeholder.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace awq::tok {

inline const char* const kVocabPlaceholder = "@@AWQ_VOCAB@@";

// `doc` with the string value kVocabPlaceholder replaced by {"token": id, ...} in id order.
inline std::string dump_with_vocab(const nlohmann::ordered_json& doc,
                                   const std::vector<std::string>& tokens_by_id) {
  std::string vocab = "{";
  for (size_t i = 0; i < tokens_by_id.size(); ++i) {
    vocab += i ? ",\n      " : "\n      ";
    vocab += nlohmann::ordered_json(tokens_by_id[i]).dump();
    vocab += ": ";
    vocab += std::to_string(i);
  }
  vocab += "\n    }";
  std::string text = doc.dump(2);
  const std::string quoted = std::string("\"") + kVocabPlaceholder + "\"";
  const size_t at = text.find(quoted);
  if (at != std::string::npos) text.replace(at, quoted.size(), vocab);
  return text;
}

}  // namespace awq::tok
