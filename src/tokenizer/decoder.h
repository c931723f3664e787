// Decoders of tokenizer.json ("decoder"): ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip
// and Sequence, with Hugging Face's semantics: each maps a list of token strings to a new list and
// the final list is concatenated. Without a decoder, tokens are joined with spaces.
//
// Two output modes: `lossy` reproduces Hugging Face exactly (invalid byte sequences become U+FFFD
// as ByteFallback / from_utf8_lossy make them); raw mode keeps the bytes of byte tokens as they
// are, so that a streaming decoder can wait for the rest of a multi-byte character.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <string>
#include <vector>

#include "tokenizer/json_util.h"

namespace awq::tok {

class Decoder {
 public:
  static Decoder from_json(const nlohmann::json& j, const std::string& what);
  std::string decode(std::vector<std::string> tokens, bool lossy) const;
  bool has_byte_level() const;
  bool has_metaspace() const;

 private:
  struct Step {
    enum Kind { kByteLevel, kMetaspace, kReplace, kByteFallback, kFuse, kStrip } kind;
    std::string pattern, content;        // Replace (literal), Metaspace replacement, Strip char
    std::shared_ptr<const Regex> regex;  // Replace with a Regex pattern
    PrependScheme prepend = PrependScheme::kAlways;
    size_t start = 0, stop = 0;  // Strip
  };
  void add(const nlohmann::json& j, const std::string& what);
  std::vector<Step> steps_;
  bool present_ = false;
};

}  // namespace awq::tok
