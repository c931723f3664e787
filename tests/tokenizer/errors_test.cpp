// Malformed input is an awq::Error that names the file (or directory) and what was expected.
#include <gtest/gtest.h>

#include <fstream>

#include "base/error.h"
#include "tokenizer_test_util.h"

namespace awq {
namespace {

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

void write(const std::filesystem::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

// A minimal valid tokenizer.json with the given model section.
std::string with_model(const std::string& model) {
  return R"({"version": "1.0", "added_tokens": [], "normalizer": null, "pre_tokenizer": null,
            "post_processor": null, "decoder": null, "model": )" +
         model + "}";
}

const char* const kTinyBpe =
    R"({"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]})";

TEST(TokenizerErrors, MissingDirectoryOrFile) {
  const auto dir = test::scratch_dir("tok_missing");
  std::string m = error_of([&] { Tokenizer::from_dir(dir.string()); });
  EXPECT_NE(m.find(dir.string()), std::string::npos) << m;
  EXPECT_NE(m.find("tokenizer.json"), std::string::npos) << m;
  m = error_of([&] { Tokenizer::from_dir((dir / "nope").string()); });
  EXPECT_NE(m.find((dir / "nope").string()), std::string::npos) << m;
}

TEST(TokenizerErrors, InvalidJsonNamesTheFile) {
  const auto dir = test::scratch_dir("tok_badjson");
  write(dir / "tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": 0},)");
  std::string m = error_of([&] { Tokenizer::from_dir(dir.string()); });
  EXPECT_NE(m.find((dir / "tokenizer.json").string()), std::string::npos) << m;
  EXPECT_NE(m.find("invalid JSON"), std::string::npos) << m;

  write(dir / "tokenizer.json", with_model(kTinyBpe));
  EXPECT_EQ(Tokenizer::from_dir(dir.string()).encode("ab", false), std::vector<int32_t>{2});
  write(dir / "tokenizer_config.json", "{not json");
  m = error_of([&] { Tokenizer::from_dir(dir.string()); });
  EXPECT_NE(m.find((dir / "tokenizer_config.json").string()), std::string::npos) << m;
}

TEST(TokenizerErrors, UnsupportedModelTypes) {
  for (const char* type : {"Unigram", "WordPiece", "WordLevel"}) {
    const std::string m = error_of([&] {
      Tokenizer::from_json(with_model(std::string(R"({"type": ")") + type +
                                      R"(", "vocab": [["a", 0.0]], "unk_id": 0})"),
                           "", "", "my/tokenizer.json");
    });
    EXPECT_NE(m.find("my/tokenizer.json"), std::string::npos) << m;
    EXPECT_NE(m.find(type), std::string::npos) << m;
  }
}

TEST(TokenizerErrors, InconsistentBpeAndUnsupportedComponents) {
  auto err = [](const std::string& json) {
    return error_of([&] { Tokenizer::from_json(json, "", "", "x/tokenizer.json"); });
  };
  // A merge whose parts or result are not in the vocabulary.
  std::string m =
      err(with_model(R"({"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]})"));
  EXPECT_NE(m.find("x/tokenizer.json"), std::string::npos) << m;
  EXPECT_NE(m.find("\"ab\""), std::string::npos) << m;
  m = err(with_model(R"({"type": "BPE", "vocab": {"a": 0}, "merges": ["a b c"]})"));
  EXPECT_NE(m.find("merge #0"), std::string::npos) << m;
  m = err(R"({"model": )" + std::string(kTinyBpe) +
          R"(, "normalizer": {"type": "BertNormalizer"}})");
  EXPECT_NE(m.find("BertNormalizer"), std::string::npos) << m;
  m = err(R"({"model": )" + std::string(kTinyBpe) + R"(, "pre_tokenizer": {"type": "Split",
      "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated", "invert": false}})");
  EXPECT_NE(m.find("(unclosed"), std::string::npos) << m;
  m = err(R"({"model": )" + std::string(kTinyBpe) + R"(, "decoder": {"type": "WordPiece"}})");
  EXPECT_NE(m.find("WordPiece"), std::string::npos) << m;
  m = err(R"({"model": )" + std::string(kTinyBpe) + R"(, "added_tokens": [{"content": "x"}]})");
  EXPECT_NE(m.find("x/tokenizer.json"), std::string::npos) << m;
  m = err(R"({"nomodel": 1})");
  EXPECT_NE(m.find("model"), std::string::npos) << m;
  m = err("[1, 2]");
  EXPECT_NE(m.find("x/tokenizer.json"), std::string::npos) << m;
}

}  // namespace
}  // namespace awq
