#include "gguf/gguf_vocab.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <unordered_map>

#include "base/error.h"
#include "tokenizer/pre_tokenizer.h"

namespace awq::gguf {
using json = nlohmann::json;

namespace {

constexpr int32_t kNormal = int32_t(TokenType::kNormal);
constexpr int32_t kUnknown = int32_t(TokenType::kUnknown);
constexpr int32_t kControl = int32_t(TokenType::kControl);
constexpr int32_t kUserDefined = int32_t(TokenType::kUserDefined);
constexpr int32_t kUnused = int32_t(TokenType::kUnused);
constexpr int32_t kByte = int32_t(TokenType::kByte);

// Hugging Face's split regexes of the byte-level pre-tokenizers llama.cpp names. llama.cpp applies
// the same expressions (its own regex engine); Llama-3's and Qwen2's differ only in \p{N}{1,3}.
constexpr const char* kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

struct BpePre {
  std::vector<std::string> names;  // names llama.cpp accepts for it; the first is written
  json normalizer;
  json pre_tokenizer;
  bool ignore_merges;
};

json byte_level(bool use_regex) {
  return {{"type", "ByteLevel"},
          {"add_prefix_space", false},
          {"trim_offsets", true},
          {"use_regex", use_regex}};
}

json split_then_bytes(const char* pattern) {
  return {{"type", "Sequence"},
          {"pretokenizers",
           {{{"type", "Split"},
             {"pattern", {{"Regex", pattern}}},
             {"behavior", "Isolated"},
             {"invert", false}},
            byte_level(false)}}};
}

const std::vector<BpePre>& bpe_pres() {
  static const std::vector<BpePre> t = {
      {{"gpt-2"}, nullptr, byte_level(true), false},
      {{"smollm"},
       nullptr,
       {{"type", "Sequence"},
        {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, byte_level(true)}}},
       false},
      {{"llama-bpe", "llama3", "llama-v3"}, nullptr, split_then_bytes(kLlama3Pattern), true},
      {{"qwen2", "deepseek-r1-qwen"}, {{"type", "NFC"}}, split_then_bytes(kQwen2Pattern), false},
  };
  return t;
}

const BpePre* find_pre(const std::string& name) {
  for (const auto& p : bpe_pres())
    if (std::find(p.names.begin(), p.names.end(), name) != p.names.end()) return &p;
  return nullptr;
}

// Code-point boundaries of a UTF-8 string (excluding 0 and size).
std::vector<size_t> inner_boundaries(const std::string& s) {
  std::vector<size_t> b;
  for (size_t k = 1; k < s.size(); ++k)
    if ((uint8_t(s[k]) & 0xC0) != 0x80) b.push_back(k);
  return b;
}

// Merges of a "llama" vocabulary from its scores, as Hugging Face's SentencePieceExtractor builds
// them: for every normal token, each split into two vocabulary pieces (ordered by their ids),
// then all of them stably sorted by the token's score, highest first.
std::vector<std::pair<std::string, std::string>> merges_from_scores(const GgufVocab& v) {
  std::unordered_map<std::string, int32_t> id_of;
  id_of.reserve(v.tokens.size());
  for (size_t i = 0; i < v.tokens.size(); ++i) id_of.emplace(v.tokens[i], int32_t(i));
  struct M {
    int32_t l, r;
    float score;
  };
  std::vector<M> all;
  std::vector<M> local;
  for (size_t id = 0; id < v.tokens.size(); ++id) {
    if (v.types[id] != kNormal) continue;
    const std::string& piece = v.tokens[id];
    local.clear();
    for (size_t k : inner_boundaries(piece)) {
      auto l = id_of.find(piece.substr(0, k));
      auto r = id_of.find(piece.substr(k));
      if (l != id_of.end() && r != id_of.end())
        local.push_back({l->second, r->second, v.scores[id]});
    }
    std::sort(local.begin(), local.end(),
              [](const M& a, const M& b) { return a.l != b.l ? a.l < b.l : a.r < b.r; });
    all.insert(all.end(), local.begin(), local.end());
  }
  std::stable_sort(all.begin(), all.end(),
                   [](const M& a, const M& b) { return a.score > b.score; });
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(all.size());
  for (const M& m : all) out.emplace_back(v.tokens[size_t(m.l)], v.tokens[size_t(m.r)]);
  return out;
}

// Scores of a "llama" vocabulary from Hugging Face merges: -(rank + 1) of the first merge that
// makes a token; tokens no merge makes (single characters) rank below every merged one.
std::vector<float> scores_from_merges(
    const GgufVocab& v, const std::vector<std::pair<std::string, std::string>>& merges) {
  std::unordered_map<std::string, int32_t> id_of;
  id_of.reserve(v.tokens.size());
  for (size_t i = 0; i < v.tokens.size(); ++i) id_of.emplace(v.tokens[i], int32_t(i));
  std::vector<float> scores(v.tokens.size(), 0.0f);
  std::vector<bool> made(v.tokens.size(), false);
  for (size_t r = 0; r < merges.size(); ++r) {
    auto it = id_of.find(merges[r].first + merges[r].second);
    if (it == id_of.end() || made[size_t(it->second)]) continue;
    made[size_t(it->second)] = true;
    scores[size_t(it->second)] = -float(r + 1);
  }
  const size_t n_merges = merges.size();
  for (size_t id = 0; id < v.tokens.size(); ++id) {
    if (v.types[id] == kNormal && !made[id]) scores[id] = -float(n_merges + 1 + id);
  }
  return scores;
}

}  // namespace

const std::string& vocab_probe_text() {
  static const std::string s =
      "\n \n\n \t\t \t\n  \n   x    y\n\n\n"
      "Hello world! HELLO, World? hello... ''quoted'' I'm you'RE they'll we'VE she'd it's\n"
      "3 33 333 3333 33333 1.5 2,000 0x1F 10^9 3..3\n"
      "caf\xc3\xa9 na\xc3\xafve \xc3\x85ngstr\xc3\xb6m "
      "\xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 "
      "\xe4\xbd\xa0\xe5\xa5\xbd\xe4\xb8\x96\xe7\x95\x8c "
      "\xe3\x81\x93\xe3\x82\x93\xe3\x81\xab\xe3\x81\xa1\xe3\x81\xaf "
      "\xf0\x9f\x9a\x80\xf0\x9f\xa6\x99 (emoji) \xe2\x9c\x85\n"
      "def f(x):\n    return x**2  # comment\n\t}\r\n-----===== !!!!!! ??? ``` \"\"\" <tag> "
      "a\xe2\x80\x94"
      "b";
  return s;
}

std::vector<std::string> supported_bpe_pre_names() {
  std::vector<std::string> n;
  for (const auto& p : bpe_pres()) n.insert(n.end(), p.names.begin(), p.names.end());
  return n;
}

Tokenizer tokenizer_from_vocab(const GgufVocab& v, const std::string& source) {
  const size_t n = v.tokens.size();
  AWQ_CHECK(v.types.size() == n, "{}: tokenizer.ggml.token_type has {} entries for {} tokens",
            source, v.types.size(), n);
  json vocab = json::object();
  for (size_t i = 0; i < n; ++i) {
    if (!vocab.contains(v.tokens[i])) vocab[v.tokens[i]] = int32_t(i);
  }
  json added = json::array();
  for (size_t i = 0; i < n; ++i) {
    const int32_t t = v.types[i];
    if (t == kControl || t == kUserDefined || t == kUnknown) {
      added.push_back({{"id", int32_t(i)},
                       {"content", v.tokens[i]},
                       {"single_word", false},
                       {"lstrip", false},
                       {"rstrip", false},
                       {"normalized", false},
                       {"special", t != kUserDefined}});
    }
  }
  auto id_ok = [&](int64_t id) { return id >= 0 && size_t(id) < n; };
  json single = json::array();
  json specials = json::object();
  auto special_item = [&](int64_t id) {
    const std::string& name = v.tokens[size_t(id)];
    specials[name] = {{"id", name}, {"ids", {int32_t(id)}}, {"tokens", {name}}};
    return json{{"SpecialToken", {{"id", name}, {"type_id", 0}}}};
  };
  if (v.add_bos) {
    AWQ_CHECK(id_ok(v.bos), "{}: add_bos_token is set but the BOS id {} is not a token", source,
              v.bos);
    single.push_back(special_item(v.bos));
  }
  single.push_back({{"Sequence", {{"id", "A"}, {"type_id", 0}}}});
  if (v.add_eos) {
    AWQ_CHECK(id_ok(v.eos), "{}: add_eos_token is set but the EOS id {} is not a token", source,
              v.eos);
    single.push_back(special_item(v.eos));
  }
  json j = {
      {"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}, {"added_tokens", added}};
  j["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", single},
                         {"pair", single},
                         {"special_tokens", specials}};
  json model = {{"type", "BPE"},
                {"dropout", nullptr},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr}};

  if (v.model == "llama") {
    AWQ_CHECK(v.scores.size() == n, "{}: tokenizer.ggml.scores has {} entries for {} tokens",
              source, v.scores.size(), n);
    const json replace_space = {
        {"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xe2\x96\x81"}};
    if (v.add_space_prefix) {
      j["normalizer"] = {
          {"type", "Sequence"},
          {"normalizers", {{{"type", "Prepend"}, {"prepend", "\xe2\x96\x81"}}, replace_space}}};
    } else {
      j["normalizer"] = replace_space;
    }
    j["pre_tokenizer"] = nullptr;
    j["decoder"] = {
        {"type", "Sequence"},
        {"decoders",
         {{{"type", "Replace"}, {"pattern", {{"String", "\xe2\x96\x81"}}}, {"content", " "}},
          {{"type", "ByteFallback"}},
          {{"type", "Fuse"}},
          {{"type", "Strip"},
           {"content", " "},
           {"start", v.add_space_prefix ? 1 : 0},
           {"stop", 0}}}}};
    const bool has_bytes = std::find(v.types.begin(), v.types.end(), kByte) != v.types.end();
    model["unk_token"] = id_ok(v.unk) ? json(v.tokens[size_t(v.unk)]) : json(nullptr);
    model["fuse_unk"] = true;
    model["byte_fallback"] = has_bytes;
    json merges = json::array();
    for (auto& [a, b] : merges_from_scores(v)) merges.push_back({a, b});
    model["merges"] = std::move(merges);
  } else if (v.model == "gpt2") {
    const BpePre* pre = find_pre(v.pre);
    AWQ_CHECK(pre != nullptr, "{}: tokenizer.ggml.pre '{}' is not supported (supported: {})",
              source, v.pre, fmt::join(supported_bpe_pre_names(), ", "));
    j["normalizer"] = pre->normalizer;
    j["pre_tokenizer"] = pre->pre_tokenizer;
    j["decoder"] = byte_level(true);
    model["unk_token"] = nullptr;
    model["fuse_unk"] = false;
    model["byte_fallback"] = false;
    model["ignore_merges"] = pre->ignore_merges;
    json merges = json::array();
    for (const std::string& m : v.merges) {
      // llama.cpp splits at the first space after the first character.
      const size_t sp = m.find(' ', 1);
      AWQ_CHECK(sp != std::string::npos, "{}: tokenizer.ggml.merges entry '{}' has no space",
                source, m);
      merges.push_back({m.substr(0, sp), m.substr(sp + 1)});
    }
    model["merges"] = std::move(merges);
  } else {
    fail("{}: tokenizer.ggml.model '{}' is not supported (awq.cpp reads 'llama' and 'gpt2')",
         source, v.model);
  }
  model["vocab"] = std::move(vocab);
  j["model"] = std::move(model);

  json cfg = json::object();
  if (id_ok(v.bos)) cfg["bos_token"] = v.tokens[size_t(v.bos)];
  if (id_ok(v.eos)) cfg["eos_token"] = v.tokens[size_t(v.eos)];
  if (id_ok(v.unk)) cfg["unk_token"] = v.tokens[size_t(v.unk)];
  if (id_ok(v.pad)) cfg["pad_token"] = v.tokens[size_t(v.pad)];
  if (!v.chat_template.empty()) cfg["chat_template"] = v.chat_template;
  std::string tokenizer_json, config_json;
  try {
    tokenizer_json = j.dump();
    config_json = cfg.dump();
  } catch (const json::type_error& e) {  // GGUF strings must be UTF-8; a damaged file's are not
    fail("{}: a tokenizer.ggml string (a token, merge or template) is not valid UTF-8: {}", source,
         e.what());
  }
  return Tokenizer::from_json(tokenizer_json, config_json, "", source + " (tokenizer metadata)");
}

namespace {

// "" when `a` and `b` encode the probe text alike, else where they first differ.
std::string probe_difference(const Tokenizer& a, const Tokenizer& b) {
  const std::string& text = vocab_probe_text();
  const auto x = a.encode(text, false), y = b.encode(text, false);
  if (x == y) return "";
  size_t i = 0;
  while (i < x.size() && i < y.size() && x[i] == y[i]) ++i;
  return fmt::format("token {} differs ({} vs {}; {} vs {} tokens)", i, i < x.size() ? x[i] : -1,
                     i < y.size() ? y[i] : -1, x.size(), y.size());
}

}  // namespace

GgufVocab vocab_from_tokenizer(const Tokenizer& tok, int64_t n_vocab, const std::string& source) {
  const auto& toks = tok.tokens();
  AWQ_CHECK(int64_t(toks.size()) <= n_vocab,
            "{}: the tokenizer has {} tokens but the model's embedding has only {} rows", source,
            toks.size(), n_vocab);
  GgufVocab v;
  v.tokens.resize(size_t(n_vocab));
  v.types.resize(size_t(n_vocab));
  std::unordered_map<std::string, int64_t> seen;
  for (int64_t id = 0; id < n_vocab; ++id) {
    const bool real = size_t(id) < toks.size() && !toks[size_t(id)].empty() &&
                      tok.token_type(int32_t(id)) != TokenType::kUnused;
    v.tokens[size_t(id)] = real ? toks[size_t(id)] : fmt::format("[PAD{}]", id);
    v.types[size_t(id)] = real ? int32_t(tok.token_type(int32_t(id))) : kUnused;
    auto [it, fresh] = seen.emplace(v.tokens[size_t(id)], id);
    AWQ_CHECK(fresh,
              "{}: tokens {} and {} are both '{}'; llama.cpp needs every token string to be unique",
              source, it->second, id, v.tokens[size_t(id)]);
  }
  v.bos = tok.bos_id();
  v.eos = tok.eos_id();
  v.unk = tok.unk_id();
  v.pad = tok.pad_id();
  v.add_bos = tok.adds_bos();
  v.add_eos = tok.adds_eos();
  v.chat_template = tok.chat_template();

  if (tok.kind() == TokenizerKind::kSentencePieceBpe) {
    v.model = "llama";
    v.pre = "default";
    v.add_space_prefix = tok.adds_space_prefix();
    v.scores = scores_from_merges(v, tok.merges());
    return v;
  }
  AWQ_CHECK(tok.kind() == TokenizerKind::kByteLevelBpe,
            "{}: the tokenizer is neither SentencePiece-style nor byte-level BPE, which is all "
            "llama.cpp's "
            "'llama' and 'gpt2' vocabularies can express",
            source);
  v.model = "gpt2";
  // Byte-level vocabularies have no unknown token in llama.cpp (GPT-2's config names
  // <|endoftext|> as unk_token; it is a control token there).
  for (size_t id = 0; id < v.types.size(); ++id) {
    if (v.types[id] == kUnknown) v.types[id] = tok.is_special(int32_t(id)) ? kControl : kNormal;
  }
  v.unk = -1;
  v.merges.reserve(tok.merges().size());
  for (const auto& [a, b] : tok.merges()) {
    AWQ_CHECK(a.find(' ') == std::string::npos && !b.empty(),
              "{}: merge '{} {}' cannot be written as GGUF text", source, a, b);
    v.merges.push_back(a + " " + b);
  }
  // The pre-tokenizer: candidates whose split regexes match the tokenizer's, confirmed by probe.
  const auto patterns = tok.pre_tokenizer_patterns();
  std::string tried;
  for (const BpePre& p : bpe_pres()) {
    std::vector<std::string> want;
    if (p.pre_tokenizer["type"] == "ByteLevel") {
      want = {tok::kGpt2Pattern};
    } else {
      for (const auto& step : p.pre_tokenizer["pretokenizers"]) {
        if (step["type"] == "Split") want.push_back(step["pattern"]["Regex"].get<std::string>());
        if (step["type"] == "ByteLevel" && step["use_regex"].get<bool>())
          want.push_back(tok::kGpt2Pattern);
      }
    }
    if (want != patterns) continue;
    v.pre = p.names[0];
    const std::string diff = probe_difference(tok, tokenizer_from_vocab(v, source));
    if (diff.empty()) return v;
    tried += fmt::format("{}{}: {}", tried.empty() ? "" : "; ", p.names[0], diff);
  }
  fail(
      "{}: the byte-level pre-tokenizer (split patterns {}) matches none that llama.cpp names "
      "({}){}",
      source, patterns.empty() ? "none" : fmt::format("'{}'", fmt::join(patterns, "', '")),
      fmt::join(supported_bpe_pre_names(), ", "), tried.empty() ? "" : " — tried " + tried);
}

void write_vocab(GgufWriter& w, const GgufVocab& v) {
  w.set("tokenizer.ggml.model", Value::string(v.model));
  w.set("tokenizer.ggml.pre", Value::string(v.pre));
  w.set("tokenizer.ggml.tokens", Value::strings(v.tokens));
  if (v.model == "llama") w.set("tokenizer.ggml.scores", Value::f32s(v.scores));
  w.set("tokenizer.ggml.token_type", Value::i32s(v.types));
  if (v.model == "gpt2") w.set("tokenizer.ggml.merges", Value::strings(v.merges));
  if (v.bos >= 0) w.set("tokenizer.ggml.bos_token_id", Value::u32(uint32_t(v.bos)));
  if (v.eos >= 0) w.set("tokenizer.ggml.eos_token_id", Value::u32(uint32_t(v.eos)));
  if (v.unk >= 0) w.set("tokenizer.ggml.unknown_token_id", Value::u32(uint32_t(v.unk)));
  if (v.pad >= 0) w.set("tokenizer.ggml.padding_token_id", Value::u32(uint32_t(v.pad)));
  w.set("tokenizer.ggml.add_bos_token", Value::boolean(v.add_bos));
  w.set("tokenizer.ggml.add_eos_token", Value::boolean(v.add_eos));
  if (v.model == "llama" && !v.add_space_prefix)
    w.set("tokenizer.ggml.add_space_prefix", Value::boolean(false));
  if (!v.chat_template.empty()) w.set("tokenizer.chat_template", Value::string(v.chat_template));
}

GgufVocab read_vocab(const GgufFile& f) {
  GgufVocab v;
  v.model = f.get_string("tokenizer.ggml.model");
  AWQ_CHECK(v.model == "llama" || v.model == "gpt2",
            "{}: tokenizer.ggml.model '{}' is not supported (awq.cpp reads 'llama' and 'gpt2')",
            f.path(), v.model);
  v.pre = f.get_string("tokenizer.ggml.pre", "default");
  v.tokens = f.get_strings("tokenizer.ggml.tokens");
  const size_t n = v.tokens.size();
  if (f.find("tokenizer.ggml.token_type")) {
    const auto t = f.get_ints("tokenizer.ggml.token_type");
    AWQ_CHECK(t.size() == n, "{}: tokenizer.ggml.token_type has {} entries for {} tokens", f.path(),
              t.size(), n);
    v.types.assign(t.begin(), t.end());
  } else {
    v.types.assign(n, kNormal);
  }
  if (v.model == "llama") {
    if (f.find("tokenizer.ggml.scores")) {
      v.scores = f.get_floats("tokenizer.ggml.scores");
      AWQ_CHECK(v.scores.size() == n, "{}: tokenizer.ggml.scores has {} entries for {} tokens",
                f.path(), v.scores.size(), n);
    } else {
      v.scores.assign(n, 0.0f);
    }
    // llama.cpp's defaults for SentencePiece vocabularies.
    v.bos = 1;
    v.eos = 2;
    v.unk = 0;
    v.add_bos = true;
    v.add_space_prefix = f.get_bool("tokenizer.ggml.add_space_prefix", true);
  } else {
    v.merges = f.get_strings("tokenizer.ggml.merges");
    v.add_bos = false;
  }
  v.bos = f.get_int("tokenizer.ggml.bos_token_id", v.bos);
  v.eos = f.get_int("tokenizer.ggml.eos_token_id", v.eos);
  v.unk = f.get_int("tokenizer.ggml.unknown_token_id", v.unk);
  v.pad = f.get_int("tokenizer.ggml.padding_token_id", v.pad);
  v.add_bos = f.get_bool("tokenizer.ggml.add_bos_token", v.add_bos);
  v.add_eos = f.get_bool("tokenizer.ggml.add_eos_token", false);
  v.chat_template = f.get_string("tokenizer.chat_template", "");
  for (int64_t* id : {&v.bos, &v.eos, &v.unk, &v.pad}) {
    if (*id >= int64_t(n)) *id = -1;  // llama.cpp ignores ids outside the vocabulary too
  }
  return v;
}

}  // namespace awq::gguf
