// Added (special) tokens inside text, and BOS/EOS from the post-processor and tokenizer_config.
// Expectations are built from pieces: an added token splits the text, and each side is encoded
// on its own (for SentencePiece-style tokenizers each side gets its own '▁' prefix, as Hugging
// Face normalizes each split separately).
#include <gtest/gtest.h>

#include "tokenizer_test_util.h"

namespace awq {
namespace {

using Ids = std::vector<int32_t>;

Ids cat(std::initializer_list<Ids> parts) {
  Ids out;
  for (const Ids& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

#define REQUIRE_FAMILY(f) AWQ_REQUIRE_DATA("tokenizers/" f "/tokenizer.json")

TEST(SpecialTokens, Gpt2EndOfTextSplitsTheText) {
  REQUIRE_FAMILY("gpt2");
  const Tokenizer& t = test::family_tokenizer("gpt2");
  const int32_t eot = t.token_to_id("<|endoftext|>");
  ASSERT_EQ(eot, 50256);
  EXPECT_EQ(t.bos_id(), eot);
  EXPECT_EQ(t.eos_id(), eot);
  EXPECT_FALSE(t.adds_bos());
  EXPECT_EQ(t.kind(), TokenizerKind::kByteLevelBpe);
  const std::string text = "Hello world<|endoftext|> The end.<|endoftext|>";
  const Ids ids = t.encode(text);
  EXPECT_EQ(ids, cat({t.encode("Hello world"), {eot}, t.encode(" The end."), {eot}}));
  EXPECT_EQ(t.encode(text, false), ids);  // the byte-level post-processor adds nothing
  EXPECT_EQ(t.decode(ids), text);
  EXPECT_EQ(t.decode(ids, /*skip_special=*/true), "Hello world The end.");
  // Without the exact spelling it is ordinary text.
  const Ids near = t.encode("<|endoftext|");
  EXPECT_EQ(std::count(near.begin(), near.end(), eot), 0);
  EXPECT_EQ(t.decode(near), "<|endoftext|");
}

TEST(SpecialTokens, QwenChatMarkersAndNonSpecialAddedTokens) {
  REQUIRE_FAMILY("qwen2.5");
  const Tokenizer& t = test::family_tokenizer("qwen2.5");
  const int32_t start = t.token_to_id("<|im_start|>"), end = t.token_to_id("<|im_end|>");
  const int32_t tool = t.token_to_id("<tool_call>");
  EXPECT_EQ(t.bos_id(), -1);   // bos_token: null
  EXPECT_EQ(t.eos_id(), end);  // this tokenizer_config.json is the Instruct model's
  EXPECT_EQ(t.pad_id(), t.token_to_id("<|endoftext|>"));
  EXPECT_FALSE(t.adds_bos());
  EXPECT_EQ(t.vocab_size(), 151665);
  EXPECT_TRUE(t.is_special(start));
  EXPECT_TRUE(t.is_added(tool));
  EXPECT_FALSE(t.is_special(tool));
  EXPECT_EQ(t.token_type(tool), TokenType::kUserDefined);
  const std::string text = "<|im_start|>user\nCall it<tool_call>{}</tool_call><|im_end|>\n";
  const Ids ids = t.encode(text);
  EXPECT_EQ(ids, cat({{start},
                      t.encode("user\nCall it"),
                      {tool},
                      t.encode("{}"),
                      {t.token_to_id("</tool_call>")},
                      {end},
                      t.encode("\n")}));
  EXPECT_EQ(t.decode(ids), text);
  // Special markers are dropped, ordinary added tokens are kept.
  EXPECT_EQ(t.decode(ids, true), "user\nCall it<tool_call>{}</tool_call>\n");
}

TEST(SpecialTokens, Phi3ChatMarkersStripWhitespaceOnTheRight) {
  REQUIRE_FAMILY("phi-3");
  const Tokenizer& t = test::family_tokenizer("phi-3");
  const int32_t user = t.token_to_id("<|user|>"), endm = t.token_to_id("<|end|>"),
                assistant = t.token_to_id("<|assistant|>");
  ASSERT_EQ(user, 32010);
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.eos_id(), t.token_to_id("<|endoftext|>"));
  EXPECT_FALSE(t.adds_bos());  // the post-processor and add_bos_token: false
  EXPECT_EQ(t.kind(), TokenizerKind::kSentencePieceBpe);
  // rstrip=true: the "\n" after each marker belongs to the marker; the text between markers is
  // normalized on its own, so it gets a '▁' prefix as if it began the input.
  const Ids ids = t.encode("<|user|>\nHello<|end|>\n<|assistant|>");
  EXPECT_EQ(ids, cat({{user}, t.encode("Hello"), {endm, assistant}}));
  EXPECT_EQ(t.encode("Hello", false), Ids{t.token_to_id("\xE2\x96\x81Hello")});
  EXPECT_EQ(t.decode(ids, true), "Hello");
  // Without rstrip ("<|endoftext|>") the newline stays text.
  const Ids eot = t.encode("<|endoftext|>\nHi");
  EXPECT_EQ(eot, cat({{t.token_to_id("<|endoftext|>")}, t.encode("\nHi")}));
}

TEST(SpecialTokens, Llama2MatchesNormalizedTokensInNormalizedText) {
  REQUIRE_FAMILY("llama2");
  const Tokenizer& t = test::family_tokenizer("llama2");
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.eos_id(), 2);
  EXPECT_TRUE(t.adds_bos());
  EXPECT_FALSE(t.adds_eos());
  EXPECT_EQ(t.encode("Hello"), cat({{1}, t.encode("Hello", false)}));
  EXPECT_EQ(t.encode("", true), Ids{1});
  EXPECT_EQ(t.encode("", false), Ids{});
  // <s> and </s> have normalized=true: Hugging Face matches their *normalized* form "▁<s>" in the
  // normalized text "▁Hello▁<s>▁world", so a preceding space (or the start) is part of the match.
  const Ids ids = t.encode("Hello <s> world", false);
  EXPECT_EQ(ids, cat({t.encode("Hello", false), {1}, t.encode("world", false)}));
  // At the start, "▁<s>" swallows the prefix and the rest has no '▁'.
  EXPECT_EQ(t.encode("<s>Hello", false), cat({{1}, {t.token_to_id("Hello")}}));
  // Glued to a word there is no "▁<s>": it is plain text.
  const Ids glued = t.encode("Hello</s>", false);
  EXPECT_EQ(std::count(glued.begin(), glued.end(), 2), 0);
  EXPECT_EQ(t.decode(glued), "Hello</s>");
  EXPECT_EQ(t.decode(Ids{1, t.token_to_id("\xE2\x96\x81Hello"), 2}), "<s> Hello</s>");
  EXPECT_EQ(t.decode(Ids{1, t.token_to_id("\xE2\x96\x81Hello"), 2}, true), "Hello");
}

// Transformers' LlamaTokenizerFast rebuilds the post-processor from add_bos_token/add_eos_token.
TEST(SpecialTokens, AddBosTokenFromConfigOverridesTheTemplate) {
  REQUIRE_FAMILY("phi-3");
  REQUIRE_FAMILY("llama2");
  const std::string phi_json = test::read_data("tokenizers/phi-3/tokenizer.json");
  const std::string llama_json = test::read_data("tokenizers/llama2/tokenizer.json");
  const std::string hello_ids_cfg =
      R"({"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>")";
  {
    const Tokenizer t =
        Tokenizer::from_json(phi_json, hello_ids_cfg + R"(, "add_bos_token": true})");
    EXPECT_TRUE(t.adds_bos());
    EXPECT_EQ(t.encode("Hi"), cat({{1}, t.encode("Hi", false)}));
  }
  {
    const Tokenizer t =
        Tokenizer::from_json(llama_json, hello_ids_cfg + R"(, "add_bos_token": false,
        "add_eos_token": true})");
    EXPECT_FALSE(t.adds_bos());
    EXPECT_TRUE(t.adds_eos());
    EXPECT_EQ(t.encode("Hi"), cat({t.encode("Hi", false), {2}}));
  }
  {
    // Llama class without the key: Transformers' default add_bos_token=True.
    const Tokenizer t = Tokenizer::from_json(phi_json, hello_ids_cfg + "}");
    EXPECT_TRUE(t.adds_bos());
  }
  {
    // Other classes keep the tokenizer.json post-processor; no config: the template decides.
    EXPECT_FALSE(Tokenizer::from_json(phi_json, R"({"add_bos_token": true,
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>"})")
                     .adds_bos());
    const Tokenizer bare = Tokenizer::from_json(llama_json, "");
    EXPECT_TRUE(bare.adds_bos());
    EXPECT_EQ(bare.bos_id(), 1);
  }
}

// Old-style {"__type": "AddedToken"} entries and special_tokens_map.json.
TEST(SpecialTokens, OldStyleConfigEntries) {
  REQUIRE_FAMILY("llama2");
  const std::string llama_json = test::read_data("tokenizers/llama2/tokenizer.json");
  const Tokenizer t = Tokenizer::from_json(
      llama_json, R"({"bos_token": {"__type": "AddedToken", "content": "</s>"}})",
      R"({"eos_token": {"content": "<unk>"}, "pad_token": "<s>"})");
  EXPECT_EQ(t.bos_id(), 2);
  EXPECT_EQ(t.eos_id(), 0);
  EXPECT_EQ(t.pad_id(), 1);
  const Tokenizer& dir = test::family_tokenizer("llama2");  // __type entries in the real config
  EXPECT_EQ(dir.bos_id(), 1);
  EXPECT_EQ(dir.eos_id(), 2);
  EXPECT_EQ(dir.unk_id(), 0);
  EXPECT_FALSE(dir.legacy().has_value());
  EXPECT_EQ(test::family_tokenizer("phi-3").legacy(), std::optional<bool>(false));
  EXPECT_NE(test::family_tokenizer("phi-3").chat_template().find("<|user|>"), std::string::npos);
}

}  // namespace
}  // namespace awq
