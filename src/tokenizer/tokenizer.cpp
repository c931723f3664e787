#include "tokenizer/tokenizer.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/files.h"
#include "tokenizer/added_vocab.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/decoder.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/post_processor.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/unicode.h"

namespace awq {

using json = nlohmann::json;
namespace fs = std::filesystem;

struct Tokenizer::Impl {
  tok::BpeModel model;
  tok::Normalizer normalizer;
  tok::PreTokenizer pre;
  tok::Decoder decoder;
  tok::PostProcessor post;
  tok::AddedVocab added;
  std::vector<std::string> tokens;  // per id
  int32_t bos = -1, eos = -1, unk = -1, pad = -1;
  std::optional<bool> legacy;
  std::string chat_template;
  TokenizerKind kind = TokenizerKind::kOtherBpe;

  void collect_ids(std::span<const int32_t> ids, bool skip_special,
                   std::vector<std::string>& out) const;
};

namespace {

json parse_json(const std::string& text, const std::string& source) {
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    fail("{}: invalid JSON: {}", source, e.what());
  }
}

// A special-token entry of tokenizer_config.json / special_tokens_map.json: a string, an
// {"content": ...} object (old files add "__type": "AddedToken"), or null.
std::optional<std::string> token_content(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content") && j["content"].is_string())
    return j["content"].get<std::string>();
  return std::nullopt;
}

tok::AddedToken added_token_from_json(const json& j, int32_t id) {
  tok::AddedToken t;
  t.id = id;
  t.content = j.at("content").get<std::string>();
  t.single_word = j.value("single_word", false);
  t.lstrip = j.value("lstrip", false);
  t.rstrip = j.value("rstrip", false);
  t.special = j.value("special", false);
  t.normalized = j.value("normalized", !t.special);  // Hugging Face's default
  return t;
}

// Transformers' tokenizer classes whose fast tokenizer rebuilds the post-processor from
// add_bos_token / add_eos_token (LlamaTokenizerFast.update_post_processor and relatives).
bool rebuilds_post_processor(const std::string& cls) {
  for (const char* c : {"LlamaTokenizer", "LlamaTokenizerFast", "CodeLlamaTokenizer",
                        "CodeLlamaTokenizerFast", "GemmaTokenizer", "GemmaTokenizerFast"})
    if (cls == c) return true;
  return false;
}

struct Sources {
  std::string tok_json, tok_src, cfg_json, cfg_src, stm_json, stm_src;
};

std::shared_ptr<Tokenizer::Impl> build(const Sources& s) {
  auto impl = std::make_shared<Tokenizer::Impl>();
  Tokenizer::Impl& t = *impl;
  const json j = parse_json(s.tok_json, s.tok_src);
  const json cfg = s.cfg_json.empty() ? json::object() : parse_json(s.cfg_json, s.cfg_src);
  const json stm = s.stm_json.empty() ? json::object() : parse_json(s.stm_json, s.stm_src);
  AWQ_CHECK(j.is_object(), "{}: not a JSON object", s.tok_src);
  AWQ_CHECK(cfg.is_object(), "{}: not a JSON object", s.cfg_src);
  AWQ_CHECK(stm.is_object(), "{}: not a JSON object", s.stm_src);
  AWQ_CHECK(j.contains("model"), "{}: no \"model\" section", s.tok_src);

  std::string where = s.tok_src;
  try {
    t.model = tok::BpeModel::from_json(j["model"], s.tok_src);
    t.normalizer = tok::Normalizer::from_json(j.value("normalizer", json()), s.tok_src);
    t.pre = tok::PreTokenizer::from_json(j.value("pre_tokenizer", json()), s.tok_src);
    t.post = tok::PostProcessor::from_json(j.value("post_processor", json()), s.tok_src);
    t.decoder = tok::Decoder::from_json(j.value("decoder", json()), s.tok_src);
    if (j.contains("added_tokens") && !j["added_tokens"].is_null()) {
      const json& list = j["added_tokens"];
      AWQ_CHECK(list.is_array(), "{}: \"added_tokens\" is not a list", s.tok_src);
      for (size_t i = 0; i < list.size(); ++i) {
        AWQ_CHECK(list[i].is_object() && list[i].contains("id") && list[i].contains("content"),
                  "{}: added_tokens[{}] needs \"id\" and \"content\"", s.tok_src, i);
        const int64_t id = list[i]["id"].get<int64_t>();
        AWQ_CHECK(id >= 0 && id < (int64_t{1} << 30), "{}: added_tokens[{}] has id {} out of range",
                  s.tok_src, i, id);
        t.added.add(added_token_from_json(list[i], static_cast<int32_t>(id)));
      }
    }

    where = s.cfg_src;
    // Tokens that only tokenizer_config.json declares (added_tokens_decoder: {"id": {...}}).
    if (auto it = cfg.find("added_tokens_decoder"); it != cfg.end() && it->is_object()) {
      for (auto e = it->begin(); e != it->end(); ++e) {
        int64_t id = -1;
        try {
          id = std::stoll(e.key());
        } catch (const std::exception&) {
        }
        AWQ_CHECK(id >= 0 && id < (int64_t{1} << 30),
                  "{}: added_tokens_decoder key \"{}\" is not a token id", s.cfg_src, e.key());
        if (!t.added.by_id(static_cast<int32_t>(id)))
          t.added.add(added_token_from_json(e.value(), static_cast<int32_t>(id)));
      }
    }
    t.added.build(t.normalizer);

    if (auto it = cfg.find("legacy"); it != cfg.end() && it->is_boolean())
      t.legacy = it->get<bool>();
    if (auto it = cfg.find("chat_template"); it != cfg.end() && it->is_string())
      t.chat_template = it->get<std::string>();
  } catch (const json::exception& e) {
    fail("{}: unexpected structure: {}", where, e.what());
  }

  // Per-id token strings: the model vocabulary, overridden by added tokens.
  int32_t max_id = t.model.max_id();
  for (const tok::AddedToken& a : t.added.tokens()) max_id = std::max(max_id, a.id);
  t.tokens.assign(static_cast<size_t>(max_id) + 1, std::string());
  for (int32_t id = 0; id <= t.model.max_id(); ++id)
    if (const std::string* s2 = t.model.id_to_token(id)) t.tokens[static_cast<size_t>(id)] = *s2;
  for (const tok::AddedToken& a : t.added.tokens()) t.tokens[static_cast<size_t>(a.id)] = a.content;

  auto id_of = [&t](const std::string& content) {
    const int32_t a = t.added.id_of(content);
    return a >= 0 ? a : t.model.token_to_id(content);
  };
  // Special tokens: tokenizer_config.json first, then special_tokens_map.json.
  auto special = [&](const char* key) -> std::optional<std::string> {
    if (auto it = cfg.find(key); it != cfg.end()) return token_content(*it);
    if (auto it = stm.find(key); it != stm.end()) return token_content(*it);
    return std::nullopt;
  };
  const auto bos = special("bos_token"), eos = special("eos_token"), unk = special("unk_token"),
             pad = special("pad_token");
  if (bos) t.bos = id_of(*bos);
  if (eos) t.eos = id_of(*eos);
  if (pad) t.pad = id_of(*pad);
  t.unk = !t.model.unk_token().empty() ? t.model.token_to_id(t.model.unk_token())
                                       : (unk ? id_of(*unk) : -1);

  const std::string cls = cfg.value("tokenizer_class", std::string());
  if (rebuilds_post_processor(cls)) {
    const bool add_bos = cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean()
                             ? cfg["add_bos_token"].get<bool>()
                             : true;
    const bool add_eos = cfg.contains("add_eos_token") && cfg["add_eos_token"].is_boolean()
                             ? cfg["add_eos_token"].get<bool>()
                             : false;
    AWQ_CHECK(!add_bos || t.bos >= 0, "{}: add_bos_token is true but bos_token is not a token",
              s.cfg_src);
    AWQ_CHECK(!add_eos || t.eos >= 0, "{}: add_eos_token is true but eos_token is not a token",
              s.cfg_src);
    t.post = tok::PostProcessor::from_template(
        add_bos ? std::vector<int32_t>{t.bos} : std::vector<int32_t>{},
        add_eos ? std::vector<int32_t>{t.eos} : std::vector<int32_t>{});
  }
  // Without a config: BOS is what the template puts first; EOS a conventional special token.
  if (!bos && t.post.prefix().size() == 1) t.bos = t.post.prefix()[0];
  if (!eos) {
    for (const char* name : {"</s>", "<|endoftext|>", "<|end_of_text|>", "<eos>"}) {
      const int32_t id = t.added.id_of(name);
      if (id >= 0 && t.added.by_id(id)->special) {
        t.eos = id;
        break;
      }
    }
  }

  if (t.pre.has_byte_level() || t.decoder.has_byte_level()) {
    t.kind = TokenizerKind::kByteLevelBpe;
  } else if (t.model.byte_fallback() || t.pre.has_metaspace() || t.decoder.has_metaspace() ||
             t.normalizer.is_sentencepiece_style()) {
    t.kind = TokenizerKind::kSentencePieceBpe;
  }
  return impl;
}

}  // namespace

Tokenizer Tokenizer::from_json(const std::string& tokenizer_json,
                               const std::string& tokenizer_config_json,
                               const std::string& special_tokens_map_json,
                               const std::string& source) {
  return Tokenizer(
      build(Sources{tokenizer_json, source, tokenizer_config_json, "tokenizer_config.json",
                    special_tokens_map_json, "special_tokens_map.json"}));
}

Tokenizer Tokenizer::from_dir(const std::string& dir) {
  const fs::path d(dir);
  AWQ_CHECK(fs::is_directory(d), "{}: tokenizer directory does not exist", dir);
  const fs::path tj = d / "tokenizer.json";
  AWQ_CHECK(fs::exists(tj),
            "{}: no tokenizer.json in this directory (a Hugging Face fast "
            "tokenizer is required)",
            dir);
  Sources s;
  s.tok_src = tj.string();
  s.tok_json = read_text_file(s.tok_src);
  s.cfg_src = (d / "tokenizer_config.json").string();
  if (fs::exists(s.cfg_src)) s.cfg_json = read_text_file(s.cfg_src);
  s.stm_src = (d / "special_tokens_map.json").string();
  if (fs::exists(s.stm_src)) s.stm_json = read_text_file(s.stm_src);
  return Tokenizer(build(s));
}

// ---- encode -----------------------------------------------------------------------------------

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special) const {
  const Impl& t = *impl_;
  std::string valid;
  if (!tok::is_valid_utf8(text)) {
    valid = tok::utf8_lossy(text);
    text = valid;
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 8);
  std::vector<tok::AddedVocab::Segment> raw_segs, norm_segs;
  std::vector<tok::Piece> pieces;
  t.added.split(text, /*normalized=*/false, raw_segs);
  for (const auto& seg : raw_segs) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
      continue;
    }
    std::string s(text.substr(seg.begin, seg.end - seg.begin));
    t.normalizer.normalize(s);
    t.added.split(s, /*normalized=*/true, norm_segs);
    pieces.clear();
    auto flush_pieces = [&] {
      t.pre.pre_tokenize(pieces);
      for (const tok::Piece& p : pieces) t.model.tokenize(p.text, ids);
      pieces.clear();
    };
    for (const auto& ns : norm_segs) {
      if (ns.id >= 0) {
        flush_pieces();
        ids.push_back(ns.id);
      } else {
        pieces.push_back(
            tok::Piece{s.substr(ns.begin, ns.end - ns.begin), seg.begin == 0 && ns.begin == 0});
      }
    }
    flush_pieces();
  }
  if (add_special) t.post.apply(ids);
  return ids;
}

// ---- decode -----------------------------------------------------------------------------------

void Tokenizer::Impl::collect_ids(std::span<const int32_t> ids, bool skip_special,
                                  std::vector<std::string>& out) const {
  out.clear();
  out.reserve(ids.size());
  for (const int32_t id : ids) {
    const std::string* s = nullptr;
    if (const tok::AddedToken* a = added.by_id(id)) {
      s = &a->content;
    } else {
      s = model.id_to_token(id);
    }
    if (s == nullptr) continue;  // an id with no token
    if (skip_special && added.is_special_content(*s)) continue;
    out.push_back(*s);
  }
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::vector<std::string> toks;
  impl_->collect_ids(ids, skip_special, toks);
  return impl_->decoder.decode(std::move(toks), /*lossy=*/true);
}

std::string Tokenizer::decode_raw(std::span<const int32_t> ids, bool skip_special) const {
  std::vector<std::string> toks;
  impl_->collect_ids(ids, skip_special, toks);
  return impl_->decoder.decode(std::move(toks), /*lossy=*/false);
}

// ---- properties -------------------------------------------------------------------------------

int32_t Tokenizer::bos_id() const {
  return impl_->bos;
}
int32_t Tokenizer::eos_id() const {
  return impl_->eos;
}
int32_t Tokenizer::unk_id() const {
  return impl_->unk;
}
int32_t Tokenizer::pad_id() const {
  return impl_->pad;
}
bool Tokenizer::adds_bos() const {
  return impl_->bos >= 0 && !impl_->post.prefix().empty() && impl_->post.prefix()[0] == impl_->bos;
}
bool Tokenizer::adds_eos() const {
  return impl_->eos >= 0 && !impl_->post.suffix().empty() &&
         impl_->post.suffix().back() == impl_->eos;
}
int64_t Tokenizer::vocab_size() const {
  return static_cast<int64_t>(impl_->tokens.size());
}
TokenizerKind Tokenizer::kind() const {
  return impl_->kind;
}
const std::vector<std::string>& Tokenizer::tokens() const {
  return impl_->tokens;
}

const std::string& Tokenizer::token(int32_t id) const {
  AWQ_CHECK(id >= 0 && static_cast<size_t>(id) < impl_->tokens.size(),
            "token id {} out of range [0, {})", id, impl_->tokens.size());
  return impl_->tokens[static_cast<size_t>(id)];
}

int32_t Tokenizer::token_to_id(std::string_view token) const {
  const int32_t a = impl_->added.id_of(token);
  return a >= 0 ? a : impl_->model.token_to_id(token);
}

bool Tokenizer::is_special(int32_t id) const {
  const tok::AddedToken* a = impl_->added.by_id(id);
  return a != nullptr && a->special;
}
bool Tokenizer::is_added(int32_t id) const {
  return impl_->added.by_id(id) != nullptr;
}
bool Tokenizer::is_byte(int32_t id) const {
  if (!impl_->model.byte_fallback() || id < 0) return false;
  for (int b = 0; b < 256; ++b)
    if (impl_->model.byte_token(static_cast<uint8_t>(b)) == id) return true;
  return false;
}

TokenType Tokenizer::token_type(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= impl_->tokens.size()) return TokenType::kUnused;
  if (id == impl_->unk) return TokenType::kUnknown;
  if (const tok::AddedToken* a = impl_->added.by_id(id))
    return a->special ? TokenType::kControl : TokenType::kUserDefined;
  if (impl_->model.id_to_token(id) == nullptr) return TokenType::kUnused;
  if (is_byte(id)) return TokenType::kByte;
  return TokenType::kNormal;
}

const std::vector<std::pair<std::string, std::string>>& Tokenizer::merges() const {
  return impl_->model.merges();
}
std::vector<std::string> Tokenizer::pre_tokenizer_patterns() const {
  return impl_->pre.regex_patterns();
}
bool Tokenizer::adds_space_prefix() const {
  return impl_->normalizer.prepends_metaspace() || impl_->pre.metaspace_prepends();
}
std::optional<bool> Tokenizer::legacy() const {
  return impl_->legacy;
}
const std::string& Tokenizer::chat_template() const {
  return impl_->chat_template;
}

}  // namespace awq
