// tokenizer.json from a llama2.c tokenizer.bin.
//
// llama2.c encodes by (1) prepending the piece " " (the SentencePiece dummy prefix), (2) looking
// up every UTF-8 character, falling back to the byte tokens <0xNN> (id = byte + 3), and (3)
// repeatedly merging the adjacent pair whose concatenation is a piece with the highest score,
// leftmost on ties. Hugging Face BPE merges the pair with the lowest merge rank, leftmost on
// ties. So every way of splitting a piece into two pieces becomes a merge, and merges are ranked
// by the score of their result, highest first: both algorithms then pick the same pair at every
// step whenever scores are distinct (SentencePiece BPE scores are: -rank). The dummy prefix and
// spaces become the legacy Llama normalizer (Prepend '▁', Replace ' ' -> '▁').
#include <algorithm>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "base/error.h"
#include "base/files.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"
#include "tokenizer/vocab_json.h"

namespace awq {

using ojson = nlohmann::ordered_json;

namespace {

const char* const kSpace = "\xE2\x96\x81";  // '▁'

struct Piece {
  float score;
  std::string text;
};

std::vector<Piece> read_pieces(const std::string& bytes, const std::string& source) {
  AWQ_CHECK(bytes.size() >= 4, "{}: llama2.c tokenizer is {} bytes, too short for its header",
            source, bytes.size());
  int32_t max_len;
  std::memcpy(&max_len, bytes.data(), 4);
  AWQ_CHECK(
      max_len > 0 && max_len <= 4096,
      "{}: llama2.c tokenizer header max_token_length = {} is not plausible (expected 1..4096)",
      source, max_len);
  std::vector<Piece> pieces;
  size_t off = 4;
  while (off < bytes.size()) {
    AWQ_CHECK(
        bytes.size() - off >= 8,
        "{}: truncated llama2.c tokenizer: token {} header needs 8 bytes at offset {}, {} left",
        source, pieces.size(), off, bytes.size() - off);
    Piece p;
    int32_t len;
    std::memcpy(&p.score, bytes.data() + off, 4);
    std::memcpy(&len, bytes.data() + off + 4, 4);
    off += 8;
    AWQ_CHECK(len >= 0 && len <= max_len,
              "{}: llama2.c token {} has length {} (max_token_length is {}) at offset {}", source,
              pieces.size(), len, max_len, off - 4);
    AWQ_CHECK(bytes.size() - off >= static_cast<size_t>(len),
              "{}: truncated llama2.c tokenizer: token {} needs {} bytes at offset {}, {} left",
              source, pieces.size(), len, off, bytes.size() - off);
    p.text.assign(bytes.data() + off, static_cast<size_t>(len));
    off += static_cast<size_t>(len);
    pieces.push_back(std::move(p));
  }
  return pieces;
}

}  // namespace

GeneratedTokenizer tokenizer_json_from_llama2c_bytes(const std::string& bytes,
                                                     const std::string& source,
                                                     int64_t expected_vocab_size) {
  std::vector<Piece> pieces = read_pieces(bytes, source);
  const size_t n = pieces.size();
  AWQ_CHECK(expected_vocab_size < 0 || static_cast<int64_t>(n) == expected_vocab_size,
            "{}: llama2.c tokenizer has {} tokens but the model's vocab_size is {}", source, n,
            expected_vocab_size);
  AWQ_CHECK(n >= 259,
            "{}: llama2.c tokenizer has {} tokens; expected at least 259 (<unk>, <s>, "
            "</s> and 256 byte tokens)",
            source, n);
  for (int b = 0; b < 256; ++b) {
    const std::string want = fmt::format("<0x{:02X}>", b);
    AWQ_CHECK(
        pieces[3 + b].text == want,
        "{}: token {} is \"{}\", expected the byte token {} (SentencePiece layout: ids 3..258 "
        "are <0x00>..<0xFF>)",
        source, 3 + b, pieces[3 + b].text, want);
  }
  // llama2.c's export writes BOS/EOS as "\n<s>\n" / "\n</s>\n" and '▁' as ' '.
  pieces[0].text = "<unk>";
  pieces[1].text = "<s>";
  pieces[2].text = "</s>";
  std::unordered_map<std::string, int32_t> id_of;
  for (size_t i = 0; i < n; ++i) {
    Piece& p = pieces[i];
    AWQ_CHECK(tok::is_valid_utf8(p.text), "{}: token {} is not valid UTF-8", source, i);
    AWQ_CHECK(std::isfinite(p.score), "{}: token {} has a non-finite score", source, i);
    if (i >= 3) p.text = tok::replace_all(p.text, " ", kSpace);
    AWQ_CHECK(!p.text.empty(), "{}: token {} is empty", source, i);
    const auto [it, fresh] = id_of.emplace(p.text, static_cast<int32_t>(i));
    AWQ_CHECK(fresh, "{}: tokens {} and {} are both \"{}\"", source, it->second, i, p.text);
  }

  // Every split of a normal piece into two normal pieces is a merge with the piece's score.
  struct Merge {
    float score;
    int32_t result;
    size_t split;
  };
  std::vector<Merge> merges;
  auto is_normal = [](size_t id) { return id >= 259; };
  for (size_t id = 259; id < n; ++id) {
    const std::string& t = pieces[id].text;
    for (size_t k = 1; k < t.size(); ++k) {
      auto l = id_of.find(t.substr(0, k));
      if (l == id_of.end() || !is_normal(static_cast<size_t>(l->second))) continue;
      auto r = id_of.find(t.substr(k));
      if (r == id_of.end() || !is_normal(static_cast<size_t>(r->second))) continue;
      merges.push_back({pieces[id].score, static_cast<int32_t>(id), k});
    }
  }
  std::stable_sort(merges.begin(), merges.end(), [](const Merge& a, const Merge& b) {
    if (a.score != b.score) return a.score > b.score;
    return a.result < b.result;
  });

  std::vector<std::string> tokens_by_id(n);
  for (size_t i = 0; i < n; ++i) tokens_by_id[i] = pieces[i].text;
  ojson merge_list = ojson::array();
  for (const Merge& m : merges) {
    const std::string& t = pieces[static_cast<size_t>(m.result)].text;
    merge_list.push_back(t.substr(0, m.split) + " " + t.substr(m.split));
  }
  auto added = [](int id, const char* content) {
    return ojson{{"id", id},        {"content", content}, {"single_word", false},
                 {"lstrip", false}, {"rstrip", false},    {"normalized", false},
                 {"special", true}};
  };
  ojson j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = ojson::array({added(0, "<unk>"), added(1, "<s>"), added(2, "</s>")});
  j["normalizer"] = {
      {"type", "Sequence"},
      {"normalizers",
       ojson::array({{{"type", "Prepend"}, {"prepend", kSpace}},
                     {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kSpace}}})}};
  j["pre_tokenizer"] = nullptr;
  auto special = [](const char* name, int type_id) {
    return ojson{{"SpecialToken", {{"id", name}, {"type_id", type_id}}}};
  };
  auto seq = [](const char* name, int type_id) {
    return ojson{{"Sequence", {{"id", name}, {"type_id", type_id}}}};
  };
  j["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", ojson::array({special("<s>", 0), seq("A", 0)})},
      {"pair", ojson::array({special("<s>", 0), seq("A", 0), special("<s>", 1), seq("B", 1)})},
      {"special_tokens",
       {{"<s>", {{"id", "<s>"}, {"ids", ojson::array({1})}, {"tokens", ojson::array({"<s>"})}}}}}};
  j["decoder"] = {
      {"type", "Sequence"},
      {"decoders",
       ojson::array({{{"type", "Replace"}, {"pattern", {{"String", kSpace}}}, {"content", " "}},
                     {{"type", "ByteFallback"}},
                     {{"type", "Fuse"}},
                     {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}};
  j["model"] = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", "<unk>"},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", true},
                {"byte_fallback", true},
                {"ignore_merges", false},
                {"vocab", tok::kVocabPlaceholder},
                {"merges", std::move(merge_list)}};

  ojson cfg;
  cfg["add_bos_token"] = true;
  cfg["add_eos_token"] = false;
  cfg["bos_token"] = "<s>";
  cfg["eos_token"] = "</s>";
  cfg["unk_token"] = "<unk>";
  cfg["pad_token"] = nullptr;
  cfg["legacy"] = true;
  cfg["clean_up_tokenization_spaces"] = false;
  cfg["tokenizer_class"] = "LlamaTokenizer";
  return GeneratedTokenizer{tok::dump_with_vocab(j, tokens_by_id), cfg.dump(2)};
}

GeneratedTokenizer tokenizer_json_from_llama2c(const std::string& tokenizer_bin_path,
                                               int64_t expected_vocab_size) {
  return tokenizer_json_from_llama2c_bytes(read_text_file(tokenizer_bin_path), tokenizer_bin_path,
                                           expected_vocab_size);
}

}  // namespace awq
