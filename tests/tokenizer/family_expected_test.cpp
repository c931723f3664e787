// Gemma (1, 2, 3) and Phi-4: encoding equals, id for id, what transformers.js (an independent
// implementation of tokenizer.json) gives for the cases in tests/tokenizer/expected/<family>.json:
// excerpts of WikiText-2 and TinyStories, Unicode/whitespace/digit edge cases and strings with the
// family's special tokens, each with and without the post-processor's BOS. Decoding gives the
// reference's text back, and streaming decoding agrees with it. The tokenizer files are read from
// <AWQ_DATA>/tokenizers/<family>/ (the test skips when they are absent); the expected ids are
// committed (regenerate with scripts/tokenizers/reference_encode.mjs).
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "tokenizer_test_util.h"

namespace awq {
namespace {

using Ids = std::vector<int32_t>;

nlohmann::json expected_for(const std::string& family) {
  const std::string path =
      (std::filesystem::path(AWQ_SOURCE_DIR) / "tests/tokenizer/expected" / (family + ".json"))
          .string();
  return nlohmann::json::parse(read_text_file(path));
}

#define REQUIRE_FAMILY(f) AWQ_REQUIRE_DATA("tokenizers/" + std::string(f) + "/tokenizer.json")

class FamilyExpected : public ::testing::TestWithParam<std::string> {};

TEST_P(FamilyExpected, EncodesEveryCaseIdForIdAndDecodesBack) {
  const std::string family = GetParam();
  REQUIRE_FAMILY(family);
  const nlohmann::json expected = expected_for(family);
  ASSERT_EQ(expected.at("family").get<std::string>(), family);
  const Tokenizer& tok = test::family_tokenizer(family);
  const auto& cases = expected.at("cases");
  ASSERT_GE(cases.size(), 20u);
  for (const auto& c : cases) {
    const std::string name = c.at("name").get<std::string>();
    SCOPED_TRACE(family + " case " + name);
    std::string text;
    if (c.contains("file")) {
      const std::string rel = c.at("file").get<std::string>();
      AWQ_REQUIRE_DATA(rel);
      text = test::read_data(rel);
      const size_t bytes = c.at("bytes").get<size_t>();
      ASSERT_LE(bytes, text.size());
      text.resize(bytes);
    } else {
      text = c.at("text").get<std::string>();
    }
    const bool add_special = c.at("add_special_tokens").get<bool>();
    const Ids want = c.at("ids").get<Ids>();
    const Ids got = tok.encode(text, add_special);
    EXPECT_EQ(test::first_difference(got, want, &tok), "");
    if (c.value("decodes_to_text", false)) {
      EXPECT_EQ(tok.decode(want), text);
    } else if (c.contains("decoded")) {
      EXPECT_EQ(tok.decode(want), c.at("decoded").get<std::string>());
    }
    // Streaming: the pieces, one id at a time, add up to the whole decode.
    StreamDecoder stream(tok);
    std::string streamed;
    for (const int32_t id : want) streamed += stream.push(id);
    streamed += stream.flush();
    EXPECT_EQ(streamed, tok.decode(want));
  }
}

INSTANTIATE_TEST_SUITE_P(Families, FamilyExpected,
                         ::testing::Values("gemma", "gemma2", "gemma3", "phi-4"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

// Gemma: SentencePiece-style BPE with byte fallback, a Replace(' ' -> '▁') normalizer and no
// prefix space; BOS from add_bos_token (GemmaTokenizer), "\n" runs, "▁" runs and tab runs as
// non-special added tokens; the chat markers are special from Gemma 2 on.
TEST(FamilySpecialTokens, GemmaBosNoPrefixSpaceAndTurnMarkers) {
  for (const std::string family : {"gemma", "gemma2", "gemma3"}) {
    SCOPED_TRACE(family);
    REQUIRE_FAMILY(family);
    const Tokenizer& t = test::family_tokenizer(family);
    const bool g3 = family == "gemma3";
    EXPECT_EQ(t.kind(), TokenizerKind::kSentencePieceBpe);
    EXPECT_FALSE(t.adds_space_prefix());
    EXPECT_EQ(t.vocab_size(), g3 ? 262145 : 256000);
    EXPECT_EQ(t.bos_id(), 2);
    EXPECT_EQ(t.pad_id(), 0);
    EXPECT_EQ(t.unk_id(), 3);
    EXPECT_EQ(t.token(1), "<eos>");
    EXPECT_TRUE(t.adds_bos());
    EXPECT_FALSE(t.adds_eos());
    EXPECT_EQ(t.encode("", true), Ids{2});
    EXPECT_EQ(t.encode("Hi", true), (Ids{2, t.encode("Hi", false)[0]}));
    // No '▁' prefix: "Hello" and " Hello" differ.
    const Ids hello = t.encode("Hello", false), space_hello = t.encode(" Hello", false);
    ASSERT_EQ(hello.size(), 1u);
    EXPECT_EQ(t.token(hello[0]), "Hello");
    ASSERT_EQ(space_hello.size(), 1u);
    EXPECT_EQ(t.token(space_hello[0]), "\xE2\x96\x81Hello");
    // Digits are single tokens.
    EXPECT_EQ(t.encode("2024", false).size(), 4u);
    // "\n" is an added (non-special) token; it splits the text and decodes as itself.
    const int32_t nl = t.token_to_id("\n");
    EXPECT_EQ(nl, g3 ? 107 : 108);
    EXPECT_TRUE(t.is_added(nl) || family == "gemma");
    EXPECT_FALSE(t.is_special(nl));
    EXPECT_EQ(t.encode("a\nb", false), (Ids{t.encode("a", false)[0], nl, t.encode("b", false)[0]}));
    EXPECT_EQ(t.decode(Ids{2, hello[0], space_hello[0]}, /*skip_special=*/true), "Hello Hello");
    const int32_t start = t.token_to_id("<start_of_turn>"), end = t.token_to_id("<end_of_turn>");
    EXPECT_EQ(start, g3 ? 105 : 106);
    EXPECT_EQ(end, g3 ? 106 : 107);
    if (family == "gemma") continue;  // Gemma 1 (base): the markers are ordinary vocab entries
    EXPECT_TRUE(t.is_special(start));
    EXPECT_EQ(t.token_type(start), TokenType::kControl);
    const std::string chat = "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n";
    const Ids ids = t.encode(chat, true);
    EXPECT_EQ(ids, (Ids{2, start, t.token_to_id("user"), nl, t.encode("Hi", false)[0], end, nl,
                        start, t.token_to_id("model"), nl}));
    EXPECT_EQ(t.decode(ids), "<bos>" + chat);
    EXPECT_EQ(t.decode(ids, /*skip_special=*/true), "user\nHi\nmodel\n");
    if (g3) {
      EXPECT_EQ(t.eos_id(), end);  // tokenizer_config.json: eos_token <end_of_turn>
      EXPECT_EQ(t.token_to_id("<image_soft_token>"), 262144);
      EXPECT_TRUE(t.is_special(262144));
      EXPECT_NE(t.chat_template().find("<start_of_turn>"), std::string::npos);
    } else {
      EXPECT_EQ(t.eos_id(), 1);
    }
  }
}

// Phi-4: cl100k-style byte-level BPE; ChatML markers are special added tokens with lstrip and
// rstrip (whitespace on both sides belongs to the marker); no BOS is added.
TEST(FamilySpecialTokens, Phi4ChatMlMarkersStripWhitespace) {
  REQUIRE_FAMILY("phi-4");
  const Tokenizer& t = test::family_tokenizer("phi-4");
  EXPECT_EQ(t.kind(), TokenizerKind::kByteLevelBpe);
  EXPECT_EQ(t.vocab_size(), 100352);
  const int32_t start = t.token_to_id("<|im_start|>"), end = t.token_to_id("<|im_end|>"),
                sep = t.token_to_id("<|im_sep|>"), eot = t.token_to_id("<|endoftext|>");
  EXPECT_EQ(start, 100264);
  EXPECT_EQ(end, 100265);
  EXPECT_EQ(sep, 100266);
  EXPECT_EQ(eot, 100257);
  EXPECT_EQ(t.bos_id(), eot);
  EXPECT_EQ(t.eos_id(), end);
  EXPECT_EQ(t.pad_id(), t.token_to_id("<|dummy_85|>"));
  EXPECT_EQ(t.pad_id(), 100349);
  EXPECT_FALSE(t.adds_bos());
  EXPECT_FALSE(t.adds_eos());
  EXPECT_TRUE(t.is_special(sep));
  EXPECT_EQ(t.encode("Hello world", true), t.encode("Hello world", false));
  // cl100k splits digits in runs of at most three.
  EXPECT_EQ(t.encode("1234567", false).size(), 3u);
  const std::string chat = "<|im_start|>user<|im_sep|>Hi there<|im_end|>";
  const Ids ids = t.encode(chat);
  EXPECT_EQ(ids, (Ids{start, t.token_to_id("user"), sep, t.token_to_id("Hi"),
                      t.token_to_id("\xC4\xA0there"), end}));
  EXPECT_EQ(t.decode(ids), chat);
  EXPECT_EQ(t.decode(ids, /*skip_special=*/true), "userHi there");
  // lstrip/rstrip: the spaces and newlines around a marker are not encoded.
  EXPECT_EQ(t.encode("Hi \n<|im_end|>\n  there"),
            (Ids{t.token_to_id("Hi"), end, t.token_to_id("there")}));
  EXPECT_NE(t.chat_template().find("<|im_sep|>"), std::string::npos);
}

}  // namespace
}  // namespace awq
