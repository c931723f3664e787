#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "awq/calib.h"
#include "base/error.h"
#include "test_util.h"

namespace awq {
namespace {

// A toy "tokenizer": BOS (1) then one token per character.
std::vector<int32_t> toy_encode(const std::string& s) {
  std::vector<int32_t> t{1};
  for (char c : s) t.push_back(int32_t(uint8_t(c)));
  return t;
}

CalibBlocks build(const std::vector<std::string>& docs, int64_t n, int64_t T) {
  return build_calib_blocks(
      docs.size(), [&](size_t i) { return toy_encode(docs[i]); }, n, T, "test");
}

TEST(Calib, BosPerDocumentConcatenatedTailDropped) {
  // lengths with BOS: 4, 3, 5 -> 12 tokens; T = 5 -> 2 blocks, 2 dropped.
  const auto c = build({"abc", "de", "fghi"}, 128, 5);
  EXPECT_EQ(c.docs_taken, 3);
  EXPECT_EQ(c.n_blocks, 2);
  EXPECT_EQ(c.tokens_total, 12);
  EXPECT_EQ(c.tokens_dropped, 2);
  const std::vector<int32_t> want{1, 'a', 'b', 'c', 1, 'd', 'e', 1, 'f', 'g'};
  EXPECT_EQ(c.tokens, want);
}

TEST(Calib, LongDocumentsSkippedNotTruncatedAndNotCounted) {
  // T = 4: "abcd" has 5 tokens with BOS -> skipped; n_samples counts accepted documents only.
  const auto c = build({"abcd", "ab", "xyz", "q", "rr"}, 2, 4);
  EXPECT_EQ(c.docs_too_long, 1);
  EXPECT_EQ(c.docs_taken, 2);  // "ab", "xyz"; "q" and "rr" not taken
  EXPECT_EQ(c.n_blocks, 1);
  const std::vector<int32_t> want{1, 'a', 'b', 1};
  EXPECT_EQ(c.tokens, want);
  EXPECT_EQ(c.tokens_dropped, 3);
}

TEST(Calib, DocumentOfExactlyTIsKept) {
  const auto c = build({"abc"}, 10, 4);
  EXPECT_EQ(c.docs_too_long, 0);
  EXPECT_EQ(c.n_blocks, 1);
}

TEST(Calib, TooLittleTextIsAClearError) {
  try {
    build({"ab", "toolongdocument"}, 128, 8);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("not enough calibration text"), std::string::npos) << m;
    EXPECT_NE(m.find("1 skipped"), std::string::npos) << m;
  }
  EXPECT_THROW(build({}, 128, 8), Error);
}

TEST(Calib, SplitEndOfTextStripsAndDropsEmpty) {
  const auto d =
      split_documents("  one\n<|endoftext|>\n two \n<|endoftext|>\n\n<|endoftext|>three\n",
                      DocSplit::Auto, "text", "x");
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0], "one");
  EXPECT_EQ(d[1], "two");
  EXPECT_EQ(d[2], "three");
}

TEST(Calib, SplitParagraphsOnBlankLines) {
  const auto d = split_documents("a b\nc\n\n  \t\nd\r\n\r\ne\n", DocSplit::Auto, "text", "x");
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0], "a b\nc");
  EXPECT_EQ(d[1], "d");
  EXPECT_EQ(d[2], "e");
}

TEST(Calib, JsonLinesFieldAndErrors) {
  const auto d = split_documents("{\"text\":\" hi \"}\n\n\"bare\"\n{\"text\":\"\"}\n",
                                 DocSplit::JsonLines, "text", "x");
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0], "hi");
  EXPECT_EQ(d[1], "bare");
  EXPECT_THROW(split_documents("{\"body\":\"a\"}\n", DocSplit::JsonLines, "text", "x"), Error);
  EXPECT_THROW(split_documents("{oops\n", DocSplit::JsonLines, "text", "x"), Error);
}

TEST(Calib, LoadFileDirAndJsonlField) {
  const auto dir = test::scratch_dir("calib_load");
  {
    std::ofstream(dir / "b.txt") << "p1\n\np2\n";
    std::ofstream(dir / "a.txt") << "x<|endoftext|>y";
    std::ofstream(dir / ".hidden") << "ignored";
  }
  const auto d = load_calib_documents(dir.string());
  const std::vector<std::string> want{"x", "y", "p1", "p2"};
  EXPECT_EQ(d, want);
  const auto jf = dir.parent_path() / "calib_load_data.jsonl";
  std::ofstream(jf) << "{\"body\":\"one\"}\n{\"body\":\"two\"}\n";
  EXPECT_EQ(load_calib_documents(jf.string() + ":body"), (std::vector<std::string>{"one", "two"}));
  EXPECT_THROW(load_calib_documents(jf.string()), Error);  // no "text" field
  EXPECT_THROW(load_calib_documents((dir / "missing.txt").string()), Error);
}

TEST(Calib, ShuffleIsAPermutationAndSeeded) {
  const auto a = document_order(100, 7), b = document_order(100, 7), c = document_order(100, 8);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  auto s = a;
  std::sort(s.begin(), s.end());
  EXPECT_EQ(s, document_order(100, std::nullopt));
  EXPECT_NE(a, s);
}

}  // namespace
}  // namespace awq
