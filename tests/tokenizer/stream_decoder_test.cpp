// StreamDecoder: pushing ids one by one yields pieces that are each valid UTF-8 and together equal
// the whole decode(), for byte-level, SentencePiece-style (byte fallback) and llama2.c tokenizers.
#include <gtest/gtest.h>

#include "tokenizer/unicode.h"
#include "tokenizer_test_util.h"

namespace awq {
namespace {

// Multi-byte characters that are not in the vocabularies (byte fallback / split byte-level
// pieces), emoji with joiners, CJK, accents, and whitespace runs.
const char* const kHardText =
    "  Leading spaces, caf\xC3\xA9 na\xC3\xAFve \xF0\x9F\x98\x81 \xF0\x9F\x91\xA9\xE2\x80\x8D"
    "\xF0\x9F\x92\xBB \xE6\x88\x91\xE6\x83\xB3\xE5\x9C\xA8 \xE1\x9E\x80\xE1\x9E\xB6 tabs\t\tand\n\n"
    "newlines \xF0\x90\x8D\x88 end ";

void check_stream(const Tokenizer& tok, const std::string& text, bool add_special,
                  bool skip_special) {
  const std::vector<int32_t> ids = tok.encode(text, add_special);
  StreamDecoder sd(tok, skip_special);
  std::string streamed;
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string piece = sd.push(ids[i]);
    ASSERT_TRUE(tok::is_valid_utf8(piece)) << "piece after id #" << i;
    ASSERT_EQ(piece.find("\xEF\xBF\xBD"), std::string::npos) << "U+FFFD after id #" << i;
    streamed += piece;
  }
  streamed += sd.flush();
  EXPECT_EQ(streamed, tok.decode(ids, skip_special));
}

class StreamFamilies : public ::testing::TestWithParam<std::string> {};

TEST_P(StreamFamilies, PiecesConcatenateToTheWholeDecode) {
  const std::string family = GetParam();
  AWQ_REQUIRE_DATA("tokenizers/" + family + "/tokenizer.json");
  AWQ_REQUIRE_DATA("text/wiki.test.raw");
  const Tokenizer& tok = test::family_tokenizer(family);
  check_stream(tok, kHardText, true, false);
  check_stream(tok, kHardText, true, true);
  check_stream(tok, test::read_data("text/wiki.test.raw").substr(0, 20000), false, false);
  // The decode equals the text, so the stream reproduces the text itself.
  EXPECT_EQ(tok.decode(tok.encode(kHardText, false)), kHardText);
}

INSTANTIATE_TEST_SUITE_P(Families, StreamFamilies,
                         ::testing::Values("gpt2", "llama2", "phi-3", "qwen2.5"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

TEST(StreamDecoder, SpecialTokensInTheStream) {
  AWQ_REQUIRE_DATA("tokenizers/phi-3/tokenizer.json");
  const Tokenizer& tok = test::family_tokenizer("phi-3");
  const std::string chat =
      "<|user|>\nHello \xF0\x9F\x98\x81<|end|>\n<|assistant|>\nHi there<|end|>";
  check_stream(tok, chat, false, false);
  check_stream(tok, chat, false, true);
  // The leading-space strip applies only at the start of the stream: " there" keeps its space.
  StreamDecoder sd(tok);
  std::string out;
  for (int32_t id : tok.encode("Hi there", false)) out += sd.push(id);
  EXPECT_EQ(out, "Hi there");
}

TEST(StreamDecoder, HoldsBackAnIncompleteCharacter) {
  AWQ_REQUIRE_DATA("tokenizers/llama2/tokenizer.json");
  const Tokenizer& tok = test::family_tokenizer("llama2");
  // U+1F601 is four byte-fallback tokens in Llama-2's vocabulary.
  const std::vector<int32_t> ids = tok.encode("\xF0\x9F\x98\x81", false);
  ASSERT_GE(ids.size(), 4u);
  StreamDecoder sd(tok);
  std::string out;
  for (size_t i = 0; i + 1 < ids.size(); ++i) out += sd.push(ids[i]);
  EXPECT_EQ(out.find("\xF0"), std::string::npos) << "emitted part of the character early";
  out += sd.push(ids.back());
  EXPECT_EQ(out, tok.decode(ids));
  // A stream cut in the middle of a character ends with U+FFFD at flush.
  StreamDecoder cut(tok);
  std::string partial;
  for (size_t i = 0; i + 1 < ids.size(); ++i) partial += cut.push(ids[i]);
  partial += cut.flush();
  EXPECT_NE(partial.find("\xEF\xBF\xBD"), std::string::npos);
}

}  // namespace
}  // namespace awq
