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

// Skip unless told: the tests written before --calib-long pin AutoAWQ's behaviour.
CalibBlocks build(const std::vector<std::string>& docs, int64_t n, int64_t T,
                  CalibLong long_docs = CalibLong::Skip) {
  return build_calib_blocks(
      docs.size(), [&](size_t i) { return toy_encode(docs[i]); }, n, T, long_docs, "test");
}

std::vector<int32_t> concat(std::initializer_list<std::vector<int32_t>> parts) {
  std::vector<int32_t> v;
  for (const auto& p : parts) v.insert(v.end(), p.begin(), p.end());
  return v;
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
    EXPECT_NE(m.find("test: not enough calibration text: 1 usable document (1 skipped as longer "
                     "than 8 tokens) give 3 tokens, fewer than one block of 8 (use more text or a "
                     "smaller --calib-seqlen, or --calib-long split to use the long documents)"),
              std::string::npos)
        << m;
  }
  EXPECT_THROW(build({}, 128, 8), Error);
  // The same text split: the long document alone fills a block.
  EXPECT_EQ(build({"ab", "toolongdocument"}, 128, 8, CalibLong::Split).n_blocks, 2);
  // Truly too little, whatever the mode: no long document to blame, no --calib-long advice.
  for (CalibLong mode : {CalibLong::Split, CalibLong::Skip, CalibLong::Truncate}) {
    try {
      build({"ab", "cd"}, 128, 8, mode);
      FAIL() << "expected an error for " << calib_long_name(mode);
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()),
                "test: not enough calibration text: 2 usable documents give 6 tokens, fewer than "
                "one block of 8 (use more text or a smaller --calib-seqlen)");
    }
  }
}

// A document longer than the block (T = 4): "ABCDEFGHIJKLM" is 14 tokens with BOS, between a
// short one before (4 tokens) and one after (3).
const std::vector<std::string> kWithLong{"abc", "ABCDEFGHIJKLM", "xy"};

TEST(Calib, LongSkipIsAutoAwq) {
  const auto c = build(kWithLong, 128, 4, CalibLong::Skip);
  EXPECT_EQ(c.docs_taken, 2);
  EXPECT_EQ(c.docs_too_long, 1);
  EXPECT_EQ(c.samples, 2);
  EXPECT_EQ(c.pieces, 0);
  EXPECT_EQ(c.tokens_read, 21);
  EXPECT_EQ(c.tokens_total, 7);
  EXPECT_EQ(c.n_blocks, 1);
  EXPECT_EQ(c.tokens_dropped, 3);
  EXPECT_EQ(c.tokens, toy_encode("abc"));
  EXPECT_EQ(describe_calibration(c),
            "2 documents (1 skipped as longer than 4 tokens), 4 tokens used of 21 read");
}

TEST(Calib, LongSplitTakesEveryTokenInOrder) {
  const auto c = build(kWithLong, 128, 4, CalibLong::Split);
  // Pieces [1 A B C] [D E F G] [H I J K] [L M]: the last, short, is kept as a short document is.
  EXPECT_EQ(c.docs_taken, 3);
  EXPECT_EQ(c.docs_too_long, 1);
  EXPECT_EQ(c.pieces, 4);
  EXPECT_EQ(c.samples, 6);
  EXPECT_EQ(c.tokens_read, 21);
  EXPECT_EQ(c.tokens_total, 21);
  EXPECT_EQ(c.n_blocks, 5);
  EXPECT_EQ(c.tokens_dropped, 1);
  // The stream is the three documents in order, no token added or lost but the tail ("y").
  std::vector<int32_t> want = concat({toy_encode("abc"), toy_encode("ABCDEFGHIJKLM"), {1, 'x'}});
  EXPECT_EQ(c.tokens, want);
  EXPECT_EQ(describe_calibration(c),
            "3 documents (1 longer than 4 tokens split into 4 pieces), 20 tokens used of 21 read");
}

TEST(Calib, LongTruncateKeepsTheFirstBlockOfTokens) {
  const auto c = build(kWithLong, 128, 4, CalibLong::Truncate);
  EXPECT_EQ(c.docs_taken, 3);
  EXPECT_EQ(c.docs_too_long, 1);
  EXPECT_EQ(c.samples, 3);
  EXPECT_EQ(c.tokens_read, 21);
  EXPECT_EQ(c.tokens_total, 11);
  EXPECT_EQ(c.n_blocks, 2);
  EXPECT_EQ(c.tokens_dropped, 3);
  EXPECT_EQ(c.tokens, concat({toy_encode("abc"), {1, 'A', 'B', 'C'}}));
  EXPECT_EQ(describe_calibration(c),
            "3 documents (1 longer than 4 tokens truncated to their first "
            "4), 8 tokens used of 21 read");
}

TEST(Calib, ShortDocumentsAreTheSameInEveryMode) {
  const std::vector<std::string> docs{"abc", "de", "fghi", "j"};
  const auto skip = build(docs, 3, 5, CalibLong::Skip);
  for (CalibLong mode : {CalibLong::Split, CalibLong::Truncate}) {
    const auto c = build(docs, 3, 5, mode);
    EXPECT_EQ(c.tokens, skip.tokens) << calib_long_name(mode);
    EXPECT_EQ(c.docs_taken, 3);
    EXPECT_EQ(c.samples, 3);
    EXPECT_EQ(c.tokens_dropped, skip.tokens_dropped);
  }
}

TEST(Calib, SplitPiecesCountAsSamples) {
  // n_samples bounds the tokens in every mode: 3 pieces of the 14-token document, the rest of it
  // read but not used, and the next document never read.
  const auto c = build({"ABCDEFGHIJKLM", "xy"}, 3, 4, CalibLong::Split);
  EXPECT_EQ(c.docs_taken, 1);
  EXPECT_EQ(c.pieces, 3);
  EXPECT_EQ(c.samples, 3);
  EXPECT_EQ(c.tokens_read, 14);
  EXPECT_EQ(c.n_blocks, 3);
  EXPECT_EQ(c.tokens_dropped, 0);
  EXPECT_EQ(c.tokens,
            (std::vector<int32_t>{1, 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K'}));
  // A whole number of blocks leaves no empty last piece.
  const auto even = build({"ABCDEFG"}, 128, 4, CalibLong::Split);
  EXPECT_EQ(even.pieces, 2);
  EXPECT_EQ(even.n_blocks, 2);
  EXPECT_EQ(even.tokens_dropped, 0);
}

TEST(Calib, SummaryGroupsThousandsAndNamesTheMode) {
  const auto c = build({std::string(2099, 'a')}, 128, 1000, CalibLong::Split);
  EXPECT_EQ(describe_calibration(c),
            "1 document (1 longer than 1000 tokens split into 3 pieces), 2,000 tokens used of "
            "2,100 read");
  EXPECT_EQ(parse_calib_long("truncate"), CalibLong::Truncate);
  EXPECT_EQ(std::string(calib_long_name(parse_calib_long("skip"))), "skip");
  EXPECT_THROW(parse_calib_long("chop"), Error);
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
