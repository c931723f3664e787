// The BPE model of tokenizer.json ("model": {"type": "BPE", ...}), with the semantics of Hugging
// Face tokenizers: a word is split into characters (each looked up in the vocabulary, with
// byte fallback to <0xNN> tokens and unknown-token fusing), then the adjacent pair with the lowest
// merge rank is merged, leftmost first, until no pair has a merge. A priority queue over a linked
// list of symbols makes that O(n log n), which matters for SentencePiece-style tokenizers with no
// pre-tokenizer, where a whole document is one "word".
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace awq::tok {

// Heterogeneous lookup (string_view keys) for unordered_map<std::string, ...>.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <typename V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

// (left id, right id) -> (rank, merged id), open addressing: the merge loop's hot lookup.
class PairMap {
 public:
  struct Entry {
    uint64_t key;
    uint32_t rank;
    int32_t merged;
  };
  void reserve(size_t n);
  void insert(int32_t a, int32_t b, uint32_t rank, int32_t merged);  // a later insert wins
  const Entry* find(int32_t a, int32_t b) const;
  size_t size() const { return count_; }

 private:
  static uint64_t key_of(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  size_t slot_of(uint64_t key) const { return (key * 0x9E3779B97F4A7C15ull) >> shift_; }
  std::vector<Entry> slots_;
  int shift_ = 64;
  size_t count_ = 0;
};

class BpeModel {
 public:
  // Parses the "model" object; `what` names the source in error messages.
  static BpeModel from_json(const nlohmann::json& model, const std::string& what);
  BpeModel();
  ~BpeModel();
  BpeModel(BpeModel&&) noexcept;
  BpeModel& operator=(BpeModel&&) noexcept;

  // Appends the ids of `word` (a pre-tokenized piece) to `out`.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;

  int32_t token_to_id(std::string_view token) const;  // -1 when absent
  // The token of `id`, or nullptr when the vocabulary has no such id.
  const std::string* id_to_token(int32_t id) const;
  int32_t max_id() const { return static_cast<int32_t>(id_to_token_.size()) - 1; }
  size_t vocab_entries() const { return vocab_.size(); }
  const std::vector<std::pair<std::string, std::string>>& merges() const { return merges_; }
  bool byte_fallback() const { return byte_fallback_; }
  const std::string& unk_token() const { return unk_token_; }
  // With byte fallback, the id of the <0xNN> token for each byte (-1 if absent).
  int32_t byte_token(uint8_t b) const { return byte_ids_[b]; }

 private:
  void merge_word(std::string_view word, std::vector<int32_t>& out) const;
  void tokenize_cached(std::string_view word, std::vector<int32_t>& out) const;

  StringMap<int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;
  std::vector<std::pair<std::string, std::string>> merges_;
  PairMap pairs_;
  std::string unk_token_, continuing_subword_prefix_, end_of_word_suffix_;
  int32_t unk_id_ = -1;
  bool has_unk_ = false, fuse_unk_ = false, byte_fallback_ = false, ignore_merges_ = false;
  // No symbol can ever span a boundary "x▁" (x != '▁'): see from_json. Then a long word (a whole
  // document for SentencePiece-style tokenizers without a pre-tokenizer) is encoded exactly by
  // encoding its '▁'-words separately, through the cache.
  bool split_at_metaspace_ = false;
  std::vector<int32_t> byte_ids_;
  struct Cache;
  std::unique_ptr<Cache> cache_;
};

}  // namespace awq::tok
