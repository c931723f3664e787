// Unit checks of the pieces of the tokenizer pipeline against documented Hugging Face / GPT-2
// behaviour: UTF-8 handling, the byte-level alphabet, the regex engine, split behaviours,
// Metaspace, BPE merge order, byte fallback and unknown tokens, and the synthetic tokenizer.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "base/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"
#include "tokenizer_test_util.h"

namespace awq {
namespace {

using json = nlohmann::json;
using Ids = std::vector<int32_t>;

TEST(Utf8, LossyConversionFollowsMaximalSubparts) {
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(tok::utf8_lossy("ok \xC3\xA9"), "ok \xC3\xA9");
  EXPECT_EQ(tok::utf8_lossy("\xF0\x9F\x98"), r);          // truncated: one replacement
  EXPECT_EQ(tok::utf8_lossy("\xC0\x80"), r + r);          // overlong lead bytes: one each
  EXPECT_EQ(tok::utf8_lossy("\xED\xA0\x80"), r + r + r);  // surrogate: three
  EXPECT_EQ(tok::utf8_lossy("a\xF0\x9F\x98"
                            "b"),
            "a" + r + "b");
  EXPECT_EQ(tok::incomplete_utf8_tail("ab\xF0\x9F\x98"), 3u);
  EXPECT_EQ(tok::incomplete_utf8_tail("ab\xC3"), 1u);
  EXPECT_EQ(tok::incomplete_utf8_tail("ab\xC3\xA9"), 0u);
  EXPECT_EQ(tok::incomplete_utf8_tail("ab\xFF"), 0u);  // invalid, not incomplete
  EXPECT_FALSE(tok::is_valid_utf8("\xC3"));
  EXPECT_TRUE(tok::is_valid_utf8("\xF4\x8F\xBF\xBF"));
  EXPECT_FALSE(tok::is_valid_utf8("\xF4\x90\x80\x80"));
}

TEST(Utf8, NormalizationForms) {
  const std::string decomposed = "e\xCC\x81";  // e + combining acute
  EXPECT_EQ(tok::unicode_normalize(decomposed, tok::NormalForm::kNFC), "\xC3\xA9");
  EXPECT_EQ(tok::unicode_normalize("\xC3\xA9", tok::NormalForm::kNFD), decomposed);
  EXPECT_EQ(tok::unicode_normalize("\xEF\xAC\x81", tok::NormalForm::kNFKC), "fi");  // ligature
}

// GPT-2's bytes_to_unicode(): printable bytes map to themselves, the others to U+0100.. in order.
TEST(ByteLevel, AlphabetMatchesGpt2) {
  const auto& m = tok::byte_level_map();
  std::set<char32_t> seen(m.byte_to_cp.begin(), m.byte_to_cp.end());
  EXPECT_EQ(seen.size(), 256u);
  EXPECT_EQ(m.byte_to_cp['A'], U'A');
  EXPECT_EQ(m.byte_to_cp[' '], 0x120u);   // 'Ġ'
  EXPECT_EQ(m.byte_to_cp['\n'], 0x10Au);  // 'Ċ'
  EXPECT_EQ(m.byte_to_cp[0], 0x100u);
  EXPECT_EQ(m.byte_to_cp[0xAD], 0x143u);  // the last non-printable byte
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  std::string back;
  ASSERT_TRUE(tok::byte_level_decode(tok::byte_level_encode(all), back));
  EXPECT_EQ(back, all);
  EXPECT_FALSE(tok::byte_level_decode("\xE4\xBD\xA0", back));  // not in the alphabet
}

std::vector<std::string> matches(const tok::Regex& re, const std::string& text) {
  std::vector<std::pair<size_t, size_t>> m;
  re.find_all(text, m);
  std::vector<std::string> out;
  for (const auto& [b, e] : m) out.push_back(text.substr(b, e - b));
  return out;
}

TEST(Regex, Gpt2PatternSplitsAsDocumented) {
  const tok::Regex re(tok::kGpt2Pattern, "test");
  using V = std::vector<std::string>;
  // \s+(?!\S) leaves the last space of a run to join the next word.
  EXPECT_EQ(matches(re, "Hello  world's 123!!"), (V{"Hello", " ", " world", "'s", " 123", "!!"}));
  EXPECT_EQ(matches(re, "a\n\n b"), (V{"a", "\n\n", " b"}));
  // Oniguruma's \s includes U+0085 (NEL); the rewritten pattern agrees.
  EXPECT_EQ(matches(re,
                    "a\xC2\x85"
                    "b"),
            (V{"a", "\xC2\x85", "b"}));
  EXPECT_EQ(tok::oniguruma_compatible(R"([^\s\p{L}]|\s+(?!\S))"),
            R"([^\s\x{85}\p{L}]|[\s\x{85}]+(?![^\s\x{85}]))");
  // Case-insensitive contractions (Llama-3 / Qwen2 pattern start).
  const tok::Regex ci(R"((?i:'s|'t)|\p{L}+)", "test");
  EXPECT_EQ(matches(ci, "IT'S"), (V{"IT", "'S"}));
}

std::vector<std::string> pre_tokenize(const json& j, const std::string& text,
                                      bool at_start = true) {
  const tok::PreTokenizer p = tok::PreTokenizer::from_json(j, "test");
  std::vector<tok::Piece> pieces{{text, at_start}};
  p.pre_tokenize(pieces);
  std::vector<std::string> out;
  for (const auto& piece : pieces) out.push_back(piece.text);
  return out;
}

// The examples of SplitDelimiterBehavior's documentation in Hugging Face tokenizers.
TEST(PreTokenizer, SplitBehaviours) {
  using V = std::vector<std::string>;
  auto split = [](const char* behavior) {
    return pre_tokenize(json{{"type", "Split"},
                             {"pattern", {{"String", "-"}}},
                             {"behavior", behavior},
                             {"invert", false}},
                        "the-final--countdown");
  };
  EXPECT_EQ(split("Removed"), (V{"the", "final", "countdown"}));
  EXPECT_EQ(split("Isolated"), (V{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(split("MergedWithPrevious"), (V{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(split("MergedWithNext"), (V{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(split("Contiguous"), (V{"the", "-", "final", "--", "countdown"}));
  // invert: the pattern matches what to keep.
  EXPECT_EQ(pre_tokenize(json{{"type", "Split"},
                              {"pattern", {{"Regex", "[a-z]+"}}},
                              {"behavior", "Removed"},
                              {"invert", true}},
                         "ab, cd"),
            (V{"ab", "cd"}));
  EXPECT_EQ(pre_tokenize(json{{"type", "Digits"}, {"individual_digits", true}}, "a123"),
            (V{"a", "1", "2", "3"}));
  EXPECT_EQ(pre_tokenize(json{{"type", "Digits"}, {"individual_digits", false}}, "a123b"),
            (V{"a", "123", "b"}));
}

TEST(PreTokenizer, MetaspaceSchemes) {
  using V = std::vector<std::string>;
  const std::string m = "\xE2\x96\x81";
  auto ms = [&](const char* scheme, bool split, bool at_start) {
    return pre_tokenize(json{{"type", "Metaspace"},
                             {"replacement", m},
                             {"prepend_scheme", scheme},
                             {"split", split}},
                        "Hey  you", at_start);
  };
  EXPECT_EQ(ms("always", true, false), (V{m + "Hey", m, m + "you"}));
  EXPECT_EQ(ms("always", false, false), (V{m + "Hey" + m + m + "you"}));
  EXPECT_EQ(ms("first", false, true), (V{m + "Hey" + m + m + "you"}));
  EXPECT_EQ(ms("first", false, false), (V{"Hey" + m + m + "you"}));
  EXPECT_EQ(ms("never", true, true), (V{"Hey", m, m + "you"}));
  // Older files: add_prefix_space false means "never".
  EXPECT_EQ(
      pre_tokenize(json{{"type", "Metaspace"}, {"replacement", m}, {"add_prefix_space", false}},
                   "a b"),
      (V{"a", m + "b"}));
}

Tokenizer tiny(const json& model, const json& extra = json::object()) {
  json j = {{"model", model}};
  j.update(extra);
  return Tokenizer::from_json(j.dump(), "");
}

// The lowest-ranked pair merges first wherever it is; equal ranks go left to right.
TEST(Bpe, MergeOrderByRankThenPosition) {
  const json vocab = {{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"bc", 4}, {"abc", 5}, {"aa", 6}};
  // "b c" ranks before "a b": "abc" -> a + bc (no "a bc" merge) -> [a, bc].
  EXPECT_EQ(
      tiny({{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array({"b c", "a b", "ab c"})}})
          .encode("abc"),
      (Ids{0, 4}));
  EXPECT_EQ(
      tiny({{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array({"a b", "b c", "ab c"})}})
          .encode("abc"),
      (Ids{5}));
  // Array-form merges; "aaa" merges the leftmost pair: [aa, a].
  EXPECT_EQ(
      tiny({{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array({json::array({"a", "a"})})}})
          .encode("aaa"),
      (Ids{6, 0}));
}

TEST(Bpe, ByteFallbackUnknownAndIgnoreMerges) {
  json vocab = {{"<unk>", 0}, {"a", 1}, {"b", 2}, {"ab", 3}};
  for (int b = 0; b < 256; ++b) vocab[fmt::format("<0x{:02X}>", b)] = 4 + b;
  const json base = {
      {"type", "BPE"}, {"vocab", vocab}, {"merges", json::array({"a b"})}, {"unk_token", "<unk>"}};
  json fb = base;
  fb["byte_fallback"] = true;
  // 'é' is not in the vocabulary: its two UTF-8 bytes.
  EXPECT_EQ(tiny(fb).encode("ab\xC3\xA9"), (Ids{3, 4 + 0xC3, 4 + 0xA9}));
  json unk = base;
  unk["fuse_unk"] = true;
  EXPECT_EQ(tiny(unk).encode("a\xC3\xA9\xC3\xA9"
                             "b"),
            (Ids{1, 0, 2}));  // fused unknowns
  unk["fuse_unk"] = false;
  EXPECT_EQ(tiny(unk).encode("a\xC3\xA9\xC3\xA9"
                             "b"),
            (Ids{1, 0, 0, 2}));
  json no_unk = base;
  no_unk.erase("unk_token");
  EXPECT_EQ(tiny(no_unk).encode("a\xC3\xA9"
                                "b"),
            (Ids{3}));  // dropped, then a+b merge
  // ignore_merges: a word that is a token is taken whole even without a merge path.
  json im = {
      {"type", "BPE"}, {"vocab", {{"x", 0}, {"y", 1}, {"xy", 2}}}, {"merges", json::array()}};
  EXPECT_EQ(tiny(im).encode("xy"), (Ids{0, 1}));
  im["ignore_merges"] = true;
  EXPECT_EQ(tiny(im).encode("xy"), (Ids{2}));
}

// A Metaspace (prepend_scheme "first", split false, no normalizer) form of the Llama-2 tokenizer,
// as newer Transformers writes it, encodes text like the legacy normalizer form, except that text
// beginning with a space gets no extra '▁' (Metaspace prepends only when there is none).
TEST(Bpe, MetaspaceFormOfLlama2MatchesLegacyForm) {
  AWQ_REQUIRE_DATA("tokenizers/llama2/tokenizer.json");
  AWQ_REQUIRE_DATA("text/wiki.test.raw");
  json j = json::parse(test::read_data("tokenizers/llama2/tokenizer.json"));
  const std::string m = "\xE2\x96\x81";
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {
      {"type", "Metaspace"}, {"replacement", m}, {"prepend_scheme", "first"}, {"split", false}};
  j["decoder"] = {{"type", "Metaspace"}, {"replacement", m}, {"prepend_scheme", "first"}};
  const Tokenizer meta = Tokenizer::from_json(j.dump(), "");
  const Tokenizer& legacy = test::family_tokenizer("llama2");
  EXPECT_EQ(meta.kind(), TokenizerKind::kSentencePieceBpe);
  EXPECT_TRUE(meta.adds_space_prefix());
  const std::string text = test::read_data("text/wiki.test.raw").substr(1, 100000);
  ASSERT_NE(text[0], ' ');
  EXPECT_EQ(test::first_difference(meta.encode(text, false), legacy.encode(text, false), &legacy),
            "");
  const int32_t hello = meta.token_to_id(m + "Hello");
  EXPECT_EQ(meta.encode(" Hello", false), (Ids{hello}));
  EXPECT_EQ(legacy.encode(" Hello", false), (Ids{meta.token_to_id(m), hello}));
  // "first": after a leading added token the text gets no '▁' (legacy would match "▁<s>" there).
  EXPECT_EQ(meta.encode("<s>Hello", false), (Ids{1, meta.token_to_id("Hello")}));
  j["pre_tokenizer"]["prepend_scheme"] = "always";
  const Tokenizer always = Tokenizer::from_json(j.dump(), "");
  EXPECT_EQ(always.encode("<s>Hello", false), (Ids{1, hello}));
  // Hugging Face's Metaspace decoder drops every '▁' of the first token, and only there.
  EXPECT_EQ(meta.decode(Ids{meta.token_to_id(m + m), hello, hello}), " Hello Hello");
  EXPECT_EQ(meta.decode(Ids{hello, meta.token_to_id(m + m)}), "Hello  ");
}

// Llama-3's split pattern: numbers in groups of at most three digits, letters with one leading
// non-letter, newlines kept with the punctuation before them.
TEST(Regex, Llama3Pattern) {
  const tok::Regex re(
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
      "test");
  using V = std::vector<std::string>;
  EXPECT_EQ(matches(re, "12345 abc's,\n\nx"), (V{"123", "45", " abc", "'s", ",\n\n", "x"}));
}

// Added tokens with lstrip / rstrip / single_word, in a character-level vocabulary.
TEST(AddedTokens, StripAndSingleWordOptions) {
  json vocab = json::object();
  const std::string chars = " abcdefghijklmnopqrstuvwxyz!";
  for (size_t i = 0; i < chars.size(); ++i) vocab[std::string(1, chars[i])] = i;
  auto make = [&](bool lstrip, bool rstrip, bool single_word) {
    return tiny({{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}},
                {{"added_tokens", json::array({{{"id", 100},
                                                {"content", "<m>"},
                                                {"lstrip", lstrip},
                                                {"rstrip", rstrip},
                                                {"single_word", single_word},
                                                {"normalized", false},
                                                {"special", true}}})}});
  };
  auto ids_of = [&](const Tokenizer& t, const std::string& s) {
    Ids out;
    for (char c : s) out.push_back(t.token_to_id(std::string(1, c)));
    return out;
  };
  const Tokenizer plain = make(false, false, false);
  EXPECT_EQ(plain.encode("a <m> b"), (Ids{ids_of(plain, "a ")[0], ids_of(plain, "a ")[1], 100,
                                          ids_of(plain, " ")[0], ids_of(plain, "b")[0]}));
  const Tokenizer both = make(true, true, false);
  EXPECT_EQ(both.encode("a  <m>  b"), (Ids{ids_of(both, "a")[0], 100, ids_of(both, "b")[0]}));
  const Tokenizer word = make(false, false, true);
  const Ids glued = word.encode("a<m>b");
  EXPECT_EQ(std::count(glued.begin(), glued.end(), 100), 0);  // inside a word: not the token
  const Ids alone = word.encode("a <m>!");
  EXPECT_EQ(std::count(alone.begin(), alone.end(), 100), 1);  // '!' is not a word character
}

TEST(PostProcessor, SequenceAndRobertaTemplates) {
  const json model = {
      {"type", "BPE"}, {"vocab", {{"a", 0}, {"<s>", 1}, {"</s>", 2}}}, {"merges", json::array()}};
  const json added =
      json::array({{{"id", 1}, {"content", "<s>"}, {"special", true}, {"normalized", false}},
                   {{"id", 2}, {"content", "</s>"}, {"special", true}, {"normalized", false}}});
  const json tmpl = {
      {"type", "TemplateProcessing"},
      {"single", json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
      {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}};
  const Tokenizer seq = tiny(
      model,
      {{"added_tokens", added},
       {"post_processor",
        {{"type", "Sequence"}, {"processors", json::array({{{"type", "ByteLevel"}}, tmpl})}}}});
  EXPECT_EQ(seq.encode("aa"), (Ids{1, 0, 0}));
  EXPECT_EQ(seq.encode("aa", false), (Ids{0, 0}));
  EXPECT_EQ(seq.bos_id(), 1);
  const json roberta = {{"type", "RobertaProcessing"}, {"cls", {"<s>", 1}}, {"sep", {"</s>", 2}}};
  const Tokenizer rob = tiny(model, {{"added_tokens", added}, {"post_processor", roberta}});
  EXPECT_EQ(rob.encode("a"), (Ids{1, 0, 2}));
}

TEST(Synthetic, ExactSizeAndRoundTrip) {
  for (int64_t v : {258, 259, 300, 1000, 32000}) {
    const GeneratedTokenizer g = synthetic_byte_level_tokenizer(v);
    const Tokenizer t = Tokenizer::from_json(g.tokenizer_json, g.tokenizer_config_json);
    EXPECT_EQ(t.vocab_size(), v);
    EXPECT_EQ(t.bos_id(), v - 2);
    EXPECT_EQ(t.eos_id(), v - 1);
    EXPECT_TRUE(t.adds_bos());
    EXPECT_EQ(t.kind(), TokenizerKind::kByteLevelBpe);
    EXPECT_EQ(static_cast<int64_t>(t.merges().size()), v - 258);
    std::set<std::string> distinct(t.tokens().begin(), t.tokens().end());
    EXPECT_EQ(static_cast<int64_t>(distinct.size()), v) << "duplicate or empty tokens";
    const std::string text = "hello world, \xF0\x9F\x98\x81 abc\n";
    const Ids ids = t.encode(text);
    EXPECT_EQ(ids.front(), v - 2);
    for (int32_t id : ids) EXPECT_LT(id, v);
    EXPECT_EQ(t.decode(ids, true), text);
    if (v >= 1000) {
      EXPECT_LT(ids.size(), text.size());  // merges apply
    }
  }
  EXPECT_THROW(synthetic_byte_level_tokenizer(257), Error);
}

}  // namespace
}  // namespace awq
