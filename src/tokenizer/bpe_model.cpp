#include "tokenizer/bpe_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>
#include <shared_mutex>

#include "base/error.h"

namespace awq::tok {

using json = nlohmann::json;

static const char* const kMetaspace = "\xE2\x96\x81";  // '▁'

// ---- PairMap ----------------------------------------------------------------------------------

void PairMap::reserve(size_t n) {
  size_t cap = 16;
  int bits = 4;
  while (cap < n * 2) cap <<= 1, ++bits;
  slots_.assign(cap, Entry{~0ull, 0, 0});
  shift_ = 64 - bits;
  count_ = 0;
}

void PairMap::insert(int32_t a, int32_t b, uint32_t rank, int32_t merged) {
  if ((count_ + 1) * 2 > slots_.size()) {
    std::vector<Entry> old = std::move(slots_);
    reserve(std::max<size_t>(count_ + 1, old.size()));
    for (const Entry& e : old) {
      if (e.key != ~0ull)
        insert(static_cast<int32_t>(e.key >> 32), static_cast<int32_t>(e.key), e.rank, e.merged);
    }
  }
  const uint64_t key = key_of(a, b);
  const size_t mask = slots_.size() - 1;
  for (size_t s = slot_of(key);; s = (s + 1) & mask) {
    if (slots_[s].key == key) {
      slots_[s].rank = rank;
      slots_[s].merged = merged;
      return;
    }
    if (slots_[s].key == ~0ull) {
      slots_[s] = Entry{key, rank, merged};
      ++count_;
      return;
    }
  }
}

const PairMap::Entry* PairMap::find(int32_t a, int32_t b) const {
  if (slots_.empty()) return nullptr;
  const uint64_t key = key_of(a, b);
  const size_t mask = slots_.size() - 1;
  for (size_t s = slot_of(key);; s = (s + 1) & mask) {
    if (slots_[s].key == key) return &slots_[s];
    if (slots_[s].key == ~0ull) return nullptr;
  }
}

// ---- word cache -------------------------------------------------------------------------------

// Words shorter than this many bytes are cached (as Hugging Face does); a full cache stops
// growing rather than evicting, which keeps lookups lock-free of writers most of the time.
constexpr size_t kCacheMaxWordBytes = 256;
constexpr size_t kCacheCapacity = 1 << 17;

struct BpeModel::Cache {
  std::shared_mutex mu;
  StringMap<std::vector<int32_t>> map;
};

BpeModel::BpeModel() : byte_ids_(256, -1), cache_(std::make_unique<Cache>()) {}
BpeModel::~BpeModel() = default;
BpeModel::BpeModel(BpeModel&&) noexcept = default;
BpeModel& BpeModel::operator=(BpeModel&&) noexcept = default;

// ---- loading ----------------------------------------------------------------------------------

static std::string optional_string(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return {};
  return it->get<std::string>();
}

static bool optional_bool(const json& j, const char* key, bool def) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  return it->get<bool>();
}

BpeModel BpeModel::from_json(const json& model, const std::string& what) {
  AWQ_CHECK(model.is_object(), "{}: \"model\" is not an object", what);
  if (auto t = model.find("type"); t != model.end() && !t->is_null()) {
    const std::string type = t->get<std::string>();
    AWQ_CHECK(type == "BPE",
              "{}: unsupported tokenizer model type \"{}\" (only BPE is supported: byte-level or "
              "SentencePiece-style with byte fallback)",
              what, type);
  } else {
    AWQ_CHECK(model.contains("merges"),
              "{}: tokenizer model has no \"type\" and no \"merges\"; only BPE is supported", what);
  }
  AWQ_CHECK(model.contains("vocab") && model["vocab"].is_object(),
            "{}: BPE model has no \"vocab\" object", what);
  AWQ_CHECK(model.contains("merges") && model["merges"].is_array(),
            "{}: BPE model has no \"merges\" array", what);

  BpeModel m;
  const json& vocab = model["vocab"];
  m.vocab_.reserve(vocab.size());
  int32_t max_id = -1;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    AWQ_CHECK(it.value().is_number_integer(), "{}: vocab entry \"{}\" has a non-integer id", what,
              it.key());
    const int64_t id = it.value().get<int64_t>();
    AWQ_CHECK(id >= 0 && id < (int64_t{1} << 30), "{}: vocab entry \"{}\" has id {} out of range",
              what, it.key(), id);
    m.vocab_[it.key()] = static_cast<int32_t>(id);
    max_id = std::max(max_id, static_cast<int32_t>(id));
  }
  m.id_to_token_.assign(static_cast<size_t>(max_id) + 1, std::string());
  m.has_id_.assign(static_cast<size_t>(max_id) + 1, false);
  for (const auto& [tok, id] : m.vocab_) {
    m.id_to_token_[static_cast<size_t>(id)] = tok;
    m.has_id_[static_cast<size_t>(id)] = true;
  }

  m.unk_token_ = optional_string(model, "unk_token");
  m.has_unk_ = model.contains("unk_token") && !model["unk_token"].is_null();
  m.continuing_subword_prefix_ = optional_string(model, "continuing_subword_prefix");
  m.end_of_word_suffix_ = optional_string(model, "end_of_word_suffix");
  m.fuse_unk_ = optional_bool(model, "fuse_unk", false);
  m.byte_fallback_ = optional_bool(model, "byte_fallback", false);
  m.ignore_merges_ = optional_bool(model, "ignore_merges", false);
  if (m.has_unk_) m.unk_id_ = m.token_to_id(m.unk_token_);
  // Dropout is a training-time regularizer; inference is deterministic, so it is not applied.

  const json& merges = model["merges"];
  m.merges_.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& e = merges[i];
    if (e.is_string()) {
      const std::string& line = e.get_ref<const std::string&>();
      if (line.starts_with("#version")) continue;
      const size_t sp = line.find(' ');
      AWQ_CHECK(sp != std::string::npos && line.find(' ', sp + 1) == std::string::npos,
                "{}: merge #{} \"{}\" is not two tokens separated by one space", what, i, line);
      m.merges_.emplace_back(line.substr(0, sp), line.substr(sp + 1));
    } else {
      AWQ_CHECK(e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string(),
                "{}: merge #{} is neither \"a b\" nor [\"a\", \"b\"]", what, i);
      m.merges_.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
    }
  }
  m.pairs_.reserve(m.merges_.size());
  const size_t prefix_len = m.continuing_subword_prefix_.size();
  for (size_t r = 0; r < m.merges_.size(); ++r) {
    const auto& [a, b] = m.merges_[r];
    const int32_t ia = m.token_to_id(a), ib = m.token_to_id(b);
    AWQ_CHECK(ia >= 0, "{}: merge #{} \"{} {}\": \"{}\" is not in the vocabulary", what, r, a, b,
              a);
    AWQ_CHECK(ib >= 0, "{}: merge #{} \"{} {}\": \"{}\" is not in the vocabulary", what, r, a, b,
              b);
    const std::string merged = a + (b.size() >= prefix_len ? b.substr(prefix_len) : std::string());
    const int32_t im = m.token_to_id(merged);
    AWQ_CHECK(im >= 0, "{}: merge #{} \"{} {}\": the result \"{}\" is not in the vocabulary", what,
              r, a, b, merged);
    m.pairs_.insert(ia, ib, static_cast<uint32_t>(r), im);
  }

  if (m.byte_fallback_) {
    for (int b = 0; b < 256; ++b) m.byte_ids_[b] = m.token_to_id(fmt::format("<0x{:02X}>", b));
  }

  // A merge joins a left symbol ending at a boundary "x|▁" with a right symbol starting there.
  // The left symbol's token ends with x (or with '>' of a byte / unknown token), never with '▁';
  // the right one starts with '▁' as long as '▁' itself is a token. So if no merge has a right
  // part starting with '▁' and a left part not ending with it, no symbol ever spans such a
  // boundary and the parts between them merge independently (Llama-2 and its relatives).
  const std::string_view meta = kMetaspace;
  m.split_at_metaspace_ = !m.ignore_merges_ && m.continuing_subword_prefix_.empty() &&
                          m.end_of_word_suffix_.empty() && m.token_to_id(meta) >= 0;
  for (const auto& [a, b] : m.merges_) {
    if (!m.split_at_metaspace_) break;
    if (std::string_view(b).starts_with(meta) && !std::string_view(a).ends_with(meta))
      m.split_at_metaspace_ = false;
  }
  return m;
}

int32_t BpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(token);
  return it == vocab_.end() ? -1 : it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size() || !has_id_[id]) return nullptr;
  return &id_to_token_[static_cast<size_t>(id)];
}

// ---- encoding ---------------------------------------------------------------------------------

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    // Llama-3: a word that is itself a token is never split.
    if (const int32_t id = token_to_id(word); id >= 0) {
      out.push_back(id);
      return;
    }
  }
  if (split_at_metaspace_ && word.size() >= kCacheMaxWordBytes) {
    const std::string_view meta = kMetaspace;
    size_t begin = 0;
    for (size_t p = word.find(meta, 1); p != std::string_view::npos; p = word.find(meta, p + 1)) {
      if (word.substr(0, p).ends_with(meta)) continue;  // inside a run of '▁'
      tokenize_cached(word.substr(begin, p - begin), out);
      begin = p;
    }
    tokenize_cached(word.substr(begin), out);
    return;
  }
  tokenize_cached(word, out);
}

void BpeModel::tokenize_cached(std::string_view word, std::vector<int32_t>& out) const {
  const bool cacheable = word.size() < kCacheMaxWordBytes;
  if (cacheable) {
    std::shared_lock lock(cache_->mu);
    auto it = cache_->map.find(word);
    if (it != cache_->map.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t first = out.size();
  merge_word(word, out);
  if (cacheable) {
    std::unique_lock lock(cache_->mu);
    if (cache_->map.size() < kCacheCapacity)
      cache_->map.emplace(std::string(word), std::vector<int32_t>(out.begin() + first, out.end()));
  }
}

namespace {
struct Symbol {
  int32_t id;
  int32_t prev, next;
  uint32_t len;  // bytes covered; 0 marks a symbol merged into its left neighbour
};
}  // namespace

void BpeModel::merge_word(std::string_view w, std::vector<int32_t>& out) const {
  std::vector<Symbol> syms;
  syms.reserve(w.size());
  auto add = [&syms](int32_t id, size_t len) {
    const auto n = static_cast<int32_t>(syms.size());
    if (n > 0) syms.back().next = n;
    syms.push_back(Symbol{id, n - 1, -1, static_cast<uint32_t>(len)});
  };
  // A pending unknown (id, byte length), so that consecutive unknowns can be fused.
  int32_t unk_pending = -1;
  size_t unk_len = 0;
  std::string buf;
  size_t i = 0;
  while (i < w.size()) {
    size_t e = i + 1;
    while (e < w.size() && (static_cast<unsigned char>(w[e]) & 0xC0) == 0x80) ++e;
    std::string_view s = w.substr(i, e - i);
    const bool is_first = i == 0, is_last = e == w.size();
    if ((!is_first && !continuing_subword_prefix_.empty()) ||
        (is_last && !end_of_word_suffix_.empty())) {
      buf.clear();
      if (!is_first) buf += continuing_subword_prefix_;
      buf += s;
      if (is_last) buf += end_of_word_suffix_;
      s = buf;
    }
    const size_t byte_len = e - i;
    i = e;
    if (const int32_t id = token_to_id(s); id >= 0) {
      if (unk_pending >= 0) {
        add(unk_pending, unk_len);
        unk_pending = -1;
      }
      add(id, byte_len);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (unsigned char b : s) all &= byte_ids_[b] >= 0;
      if (all) {
        // (Like Hugging Face, a pending unknown is not flushed first; it is added after.)
        for (unsigned char b : s) add(byte_ids_[b], 1);
        continue;
      }
    }
    if (has_unk_) {
      AWQ_CHECK(unk_id_ >= 0, "tokenizer: unk_token \"{}\" is not in the vocabulary", unk_token_);
      if (unk_pending >= 0 && fuse_unk_) {
        unk_len += byte_len;
      } else {
        if (unk_pending >= 0) add(unk_pending, unk_len);
        unk_pending = unk_id_;
        unk_len = byte_len;
      }
    }
    // Without an unk token the character is dropped, as Hugging Face does.
  }
  if (unk_pending >= 0) add(unk_pending, unk_len);

  if (syms.size() > 1) {
    // Min-heap of (rank << 32 | position): lowest rank first, then leftmost.
    std::vector<uint64_t> heap_storage;
    heap_storage.reserve(syms.size());
    for (size_t p = 0; p + 1 < syms.size(); ++p) {
      if (const PairMap::Entry* m = pairs_.find(syms[p].id, syms[p + 1].id))
        heap_storage.push_back((static_cast<uint64_t>(m->rank) << 32) | p);
    }
    std::priority_queue<uint64_t, std::vector<uint64_t>, std::greater<>> queue(
        std::greater<>{}, std::move(heap_storage));
    while (!queue.empty()) {
      const uint64_t top = queue.top();
      queue.pop();
      const auto rank = static_cast<uint32_t>(top >> 32);
      const auto pos = static_cast<int32_t>(top & 0xFFFFFFFFu);
      Symbol& cur = syms[pos];
      if (cur.len == 0 || cur.next < 0) continue;
      Symbol& right = syms[cur.next];
      const PairMap::Entry* m = pairs_.find(cur.id, right.id);
      if (m == nullptr || m->rank != rank) continue;  // a stale entry: the pair has changed
      cur.id = m->merged;
      cur.len += right.len;
      cur.next = right.next;
      right.len = 0;
      if (cur.next >= 0) syms[cur.next].prev = pos;
      if (cur.prev >= 0) {
        if (const PairMap::Entry* pm = pairs_.find(syms[cur.prev].id, cur.id))
          queue.push((static_cast<uint64_t>(pm->rank) << 32) | static_cast<uint32_t>(cur.prev));
      }
      if (cur.next >= 0) {
        if (const PairMap::Entry* nm = pairs_.find(cur.id, syms[cur.next].id))
          queue.push((static_cast<uint64_t>(nm->rank) << 32) | static_cast<uint32_t>(pos));
      }
    }
  }
  for (const Symbol& s : syms)
    if (s.len != 0) out.push_back(s.id);
}

}  // namespace awq::tok
