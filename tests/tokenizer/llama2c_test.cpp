// The llama2.c tokenizer.bin -> tokenizer.json conversion reproduces llama2.c's own encoder.
#include <gtest/gtest.h>

#include <cstring>
#include <unordered_map>

#include "base/error.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer_test_util.h"

namespace awq {
namespace {

using test::data_path;

// A straightforward reimplementation of llama2.c's encode() (run.c) as the reference: the dummy
// prefix " ", per-UTF-8-character lookup with byte fallback (id = byte + 3), then repeatedly merge
// the adjacent pair whose concatenation is in the vocabulary with the highest score (strictly
// greater, so the leftmost wins ties). Pair scores are cached and refreshed next to each merge,
// which changes only the speed.
class Llama2cReference {
 public:
  explicit Llama2cReference(const std::string& bytes) {
    int32_t max_len;
    std::memcpy(&max_len, bytes.data(), 4);
    size_t off = 4;
    while (off < bytes.size()) {
      float score;
      int32_t len;
      std::memcpy(&score, bytes.data() + off, 4);
      std::memcpy(&len, bytes.data() + off + 4, 4);
      off += 8;
      vocab_.emplace_back(bytes.data() + off, static_cast<size_t>(len));
      scores_.push_back(score);
      off += static_cast<size_t>(len);
    }
    for (size_t i = 0; i < vocab_.size(); ++i) lookup_.emplace(vocab_[i], static_cast<int>(i));
  }
  int find(const std::string& s) const {
    auto it = lookup_.find(s);
    return it == lookup_.end() ? -1 : it->second;
  }
  size_t size() const { return vocab_.size(); }

  std::vector<int32_t> encode(const std::string& text, bool bos) const {
    std::vector<int32_t> tokens;
    if (bos) tokens.push_back(1);
    if (!text.empty()) tokens.push_back(find(" "));
    std::string buf;
    for (size_t c = 0; c < text.size(); ++c) {
      if ((static_cast<unsigned char>(text[c]) & 0xC0) != 0x80) buf.clear();
      buf += text[c];
      if (c + 1 < text.size() && (static_cast<unsigned char>(text[c + 1]) & 0xC0) == 0x80 &&
          buf.size() < 4)
        continue;
      const int id = find(buf);
      if (id != -1) {
        tokens.push_back(id);
      } else {
        for (unsigned char b : buf) tokens.push_back(static_cast<int32_t>(b) + 3);
      }
      buf.clear();
    }
    // pair_score[i]: score of tokens[i] ++ tokens[i+1] if that is a piece.
    const size_t start = bos ? 1 : 0;  // BOS never merges (its piece "\n<s>\n" joins nothing)
    std::vector<int32_t> seq(tokens.begin() + static_cast<long>(start), tokens.end());
    auto pair_of = [&](size_t i, int* id) {
      *id = find(vocab_[seq[i]] + vocab_[seq[i + 1]]);
      return *id;
    };
    std::vector<int> pair_id(seq.size(), -1);
    for (size_t i = 0; i + 1 < seq.size(); ++i) pair_of(i, &pair_id[i]);
    while (true) {
      float best_score = -1e10f;
      int best_id = -1;
      long best_idx = -1;
      for (size_t i = 0; i + 1 < seq.size(); ++i) {
        if (pair_id[i] != -1 && scores_[pair_id[i]] > best_score) {
          best_score = scores_[pair_id[i]];
          best_id = pair_id[i];
          best_idx = static_cast<long>(i);
        }
      }
      if (best_idx == -1) break;
      seq[best_idx] = best_id;
      seq.erase(seq.begin() + best_idx + 1);
      pair_id.erase(pair_id.begin() + best_idx + 1);
      if (static_cast<size_t>(best_idx) + 1 < seq.size()) {
        pair_of(best_idx, &pair_id[best_idx]);
      } else {
        pair_id[best_idx] = -1;
      }
      if (best_idx > 0) pair_of(best_idx - 1, &pair_id[best_idx - 1]);
    }
    tokens.resize(start);
    tokens.insert(tokens.end(), seq.begin(), seq.end());
    return tokens;
  }

 private:
  std::vector<std::string> vocab_;
  std::vector<float> scores_;
  std::unordered_map<std::string, int> lookup_;
};

const char* const kTok512 = "models/stories260K/tok512.bin";

const Tokenizer& tok512() {
  static const Tokenizer t = [] {
    const GeneratedTokenizer g = tokenizer_json_from_llama2c(data_path(kTok512));
    return Tokenizer::from_json(g.tokenizer_json, g.tokenizer_config_json);
  }();
  return t;
}

TEST(Llama2c, GeneratedJsonDescribesTheVocabulary) {
  AWQ_REQUIRE_DATA(kTok512);
  const Llama2cReference ref(test::read_data(kTok512));
  const Tokenizer& t = tok512();
  EXPECT_EQ(t.vocab_size(), 512);
  EXPECT_EQ(t.kind(), TokenizerKind::kSentencePieceBpe);
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.eos_id(), 2);
  EXPECT_EQ(t.unk_id(), 0);
  EXPECT_TRUE(t.adds_bos());
  EXPECT_FALSE(t.adds_eos());
  EXPECT_TRUE(t.adds_space_prefix());
  EXPECT_EQ(t.token(3), "<0x00>");
  EXPECT_EQ(t.token_type(3), TokenType::kByte);
  EXPECT_EQ(t.token_type(258), TokenType::kByte);
  EXPECT_EQ(t.token_type(1), TokenType::kControl);
  EXPECT_EQ(t.token_type(0), TokenType::kUnknown);
  EXPECT_EQ(t.token_type(300), TokenType::kNormal);
  // Spaces in llama2.c pieces are '▁' in the json.
  EXPECT_EQ(t.token(ref.find(" t")), "\xE2\x96\x81t");
  // Every piece of two or more characters can be built by some merge.
  size_t multi_char = 0;
  for (int32_t id = 259; id < 512; ++id) {
    const std::string& p = t.token(id);
    size_t chars = 0;
    for (unsigned char c : p) chars += (c & 0xC0) != 0x80;
    multi_char += chars > 1;
  }
  EXPECT_GT(multi_char, 100u);
  EXPECT_GE(t.merges().size(), multi_char);
}

TEST(Llama2c, RoxyExcerptMatchesKnownCountAndReference) {
  AWQ_REQUIRE_DATA(kTok512);
  AWQ_REQUIRE_DATA("text/tinystories-roxy-excerpt.txt");
  const Llama2cReference ref(test::read_data(kTok512));
  const std::string text = test::read_data("text/tinystories-roxy-excerpt.txt");
  const std::vector<int32_t> got = tok512().encode(text, true);
  EXPECT_EQ(got.size(), 620u);
  EXPECT_EQ(got[0], 1);
  const std::vector<int32_t> want = ref.encode(text, true);
  EXPECT_EQ(test::first_difference(got, want, &tok512()), "");
  EXPECT_EQ(tok512().decode(got, /*skip_special=*/true), text);
}

// Every story of a file (stories separated by `sep`) encodes as llama2.c does, and decodes back.
void check_stories(const std::string& rel, const std::string& sep, size_t min_stories) {
  const Llama2cReference ref(test::read_data(kTok512));
  const std::string all = test::read_data(rel);
  size_t stories = 0, tokens = 0;
  for (size_t pos = 0; pos < all.size();) {
    size_t end = all.find(sep, pos);
    if (end == std::string::npos) end = all.size();
    const std::string story = all.substr(pos, end - pos);
    pos = end + sep.size();
    if (story.empty()) continue;
    const std::vector<int32_t> got = tok512().encode(story, true);
    const std::vector<int32_t> want = ref.encode(story, true);
    ASSERT_EQ(test::first_difference(got, want, &tok512()), "") << "story " << stories;
    ASSERT_EQ(tok512().decode(got, true), story) << "story " << stories;
    ++stories;
    tokens += got.size();
  }
  EXPECT_GE(stories, min_stories);
  EXPECT_GT(tokens, min_stories * 100);
}

TEST(Llama2c, EveryValidationStoryMatchesReference) {
  AWQ_REQUIRE_DATA(kTok512);
  AWQ_REQUIRE_DATA("text/tinystories-valid-a.txt");
  check_stories("text/tinystories-valid-a.txt", "\n\n", 500);
}

TEST(Llama2c, EveryTrainingStoryMatchesReference) {
  AWQ_REQUIRE_DATA(kTok512);
  AWQ_REQUIRE_DATA("text/tinystories-train-head.txt");
  check_stories("text/tinystories-train-head.txt", "<|endoftext|>", 2300);
}

TEST(Llama2c, WholeFileRoundTrips) {
  AWQ_REQUIRE_DATA(kTok512);
  AWQ_REQUIRE_DATA("text/tinystories-valid-a.txt");
  const std::string all = test::read_data("text/tinystories-valid-a.txt");
  const std::vector<int32_t> ids = tok512().encode(all, false);
  EXPECT_EQ(tok512().decode(ids), all);
}

TEST(Llama2c, TruncatedOrWrongSizeFilesAreErrors) {
  AWQ_REQUIRE_DATA(kTok512);
  const std::string bytes = test::read_data(kTok512);
  const std::string name = "tok512-test.bin";
  auto message = [&](const std::string& b, int64_t expect = -1) -> std::string {
    try {
      tokenizer_json_from_llama2c_bytes(b, name, expect);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  for (size_t cut : {size_t{2}, size_t{4} + 5, bytes.size() - 3, bytes.size() / 2}) {
    const std::string m = message(bytes.substr(0, cut));
    EXPECT_NE(m.find(name), std::string::npos) << "cut at " << cut << ": " << m;
  }
  EXPECT_NE(message(bytes, 32000).find("vocab_size is 32000"), std::string::npos);
  EXPECT_EQ(message(bytes, 512), "");
  EXPECT_THROW(tokenizer_json_from_llama2c("/nonexistent/tok.bin"), Error);
}

}  // namespace
}  // namespace awq
