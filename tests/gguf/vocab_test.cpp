// Tokenizer metadata: what the exporter writes for real tokenizers reproduces llama.cpp's tokenizer
// test vectors when read back, and the reference vocab-only GGUFs from llama.cpp load and encode
// the same vectors.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "base/error.h"
#include "base/files.h"
#include "gguf/gguf_file.h"
#include "gguf/gguf_vocab.h"
#include "test_util.h"

namespace awq::gguf {
namespace {

struct Vectors {
  std::vector<std::string> inputs;
  std::vector<std::vector<int32_t>> ids;
};

// llama.cpp's format: inputs separated by "\n__ggml_vocab_test__\n" (one after the last too);
// .out has one line of space-separated ids per input, without BOS.
Vectors load_vectors(const std::string& stem) {
  Vectors v;
  const std::string inp = read_text_file(stem + ".inp");
  const std::string sep = "\n__ggml_vocab_test__\n";
  size_t pos = 0;
  while (pos < inp.size()) {
    const size_t e = inp.find(sep, pos);
    if (e == std::string::npos) break;
    v.inputs.push_back(inp.substr(pos, e - pos));
    pos = e + sep.size();
  }
  std::istringstream out(read_text_file(stem + ".out"));
  std::string line;
  while (std::getline(out, line)) {
    std::istringstream ls(line);
    std::vector<int32_t> ids;
    int32_t id;
    while (ls >> id) ids.push_back(id);
    v.ids.push_back(ids);
  }
  return v;
}

// Number of vectors whose encoding differs; prints the first few.
int mismatches(const Tokenizer& tok, const Vectors& v, const std::string& what) {
  int bad = 0;
  for (size_t i = 0; i < v.inputs.size(); ++i) {
    const auto got = tok.encode(v.inputs[i], /*add_special=*/false);
    if (got != v.ids[i]) {
      if (++bad <= 3) {
        ADD_FAILURE() << what << ": vector " << i << " '" << v.inputs[i] << "': got "
                      << testing::PrintToString(got) << ", expected "
                      << testing::PrintToString(v.ids[i]);
      }
    }
  }
  return bad;
}

const char* kVec = "tokenizers/llamacpp-vectors/";

TEST(GgufVocab, VectorFilesParse) {
  AWQ_REQUIRE_DATA("tokenizers/llamacpp-vectors/ggml-vocab-llama-spm.gguf.inp");
  const Vectors v = load_vectors(test::data_path(std::string(kVec) + "ggml-vocab-llama-spm.gguf"));
  EXPECT_EQ(v.inputs.size(), 46u);
  EXPECT_EQ(v.ids.size(), 46u);
}

// Export the llama2 tokenizer's metadata to a GGUF, read it back, encode the vectors.
TEST(GgufVocab, Llama2MetadataReproducesLlamaCppVectors) {
  AWQ_REQUIRE_DATA("tokenizers/llama2/tokenizer.json");
  AWQ_REQUIRE_DATA("tokenizers/llamacpp-vectors/ggml-vocab-llama-spm.gguf");
  const Tokenizer src = Tokenizer::from_dir(test::data_path("tokenizers/llama2"));
  const GgufVocab v = vocab_from_tokenizer(src, 32000, "llama2");
  EXPECT_EQ(v.model, "llama");
  EXPECT_EQ(v.pre, "default");
  const std::string path = (test::scratch_dir("vocab_llama2") / "vocab.gguf").string();
  GgufWriter w;
  w.set("general.architecture", Value::string("llama"));
  write_vocab(w, v);
  w.write(path);

  const GgufFile f(path);
  const GgufFile ref(test::data_path(std::string(kVec) + "ggml-vocab-llama-spm.gguf"));
  // The same keys and values as llama.cpp's converter wrote, scores aside (it had the
  // SentencePiece model's; ours come from the merges).
  EXPECT_EQ(f.get_strings("tokenizer.ggml.tokens"), ref.get_strings("tokenizer.ggml.tokens"));
  EXPECT_EQ(f.get_ints("tokenizer.ggml.token_type"), ref.get_ints("tokenizer.ggml.token_type"));
  for (const char* k : {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                        "tokenizer.ggml.unknown_token_id"}) {
    EXPECT_EQ(f.get_int(k), ref.get_int(k)) << k;
    EXPECT_EQ(f.find(k)->type(), ref.find(k)->type()) << k;
  }
  for (const char* k : {"tokenizer.ggml.model", "tokenizer.ggml.pre"})
    EXPECT_EQ(f.get_string(k), ref.get_string(k));
  EXPECT_EQ(f.get_bool("tokenizer.ggml.add_bos_token", false),
            ref.get_bool("tokenizer.ggml.add_bos_token", false));
  EXPECT_EQ(f.find("tokenizer.ggml.scores")->type_str(), "array[f32]");
  // Where both score a merged token, the orders agree (llama.cpp merges by score).
  const auto ours = f.get_floats("tokenizer.ggml.scores"),
             theirs = ref.get_floats("tokenizer.ggml.scores");
  EXPECT_EQ(ours[260], -1.0f);  // "▁t", the first merge
  EXPECT_EQ(theirs[260], -1.0f);

  const Tokenizer back = tokenizer_from_gguf(f);
  const Vectors vec =
      load_vectors(test::data_path(std::string(kVec) + "ggml-vocab-llama-spm.gguf"));
  EXPECT_EQ(mismatches(back, vec, "llama2 exported"), 0);
  EXPECT_TRUE(back.adds_bos());
  EXPECT_EQ(back.bos_id(), 1);
  EXPECT_EQ(back.decode(back.encode("Hello world", false)), "Hello world");
}

TEST(GgufVocab, ReferenceVocabFilesEncodeTheirVectors) {
  for (const char* name : {"llama-spm", "phi-3", "gpt-2"}) {
    const std::string stem = test::data_path(std::string(kVec) + "ggml-vocab-" + name + ".gguf");
    if (!test::have_data(std::string(kVec) + "ggml-vocab-" + name + ".gguf"))
      GTEST_SKIP() << "no " << stem;
    const GgufFile f(stem);
    const Tokenizer tok = tokenizer_from_gguf(f);
    EXPECT_EQ(mismatches(tok, load_vectors(stem), name), 0) << name;
  }
}

TEST(GgufVocab, ByteLevelTokenizersFindTheirPreTokenizer) {
  struct Case {
    const char* dir;
    const char* pre;
    const char* vectors;
  };
  for (const Case& c : {Case{"gpt2", "gpt-2", "gpt-2"}, Case{"qwen2.5", "qwen2", "qwen2"}}) {
    const std::string rel = std::string("tokenizers/") + c.dir + "/tokenizer.json";
    if (!test::have_data(rel)) GTEST_SKIP() << "no " << rel;
    const Tokenizer src = Tokenizer::from_dir(test::data_path(std::string("tokenizers/") + c.dir));
    const GgufVocab v = vocab_from_tokenizer(src, src.vocab_size(), c.dir);
    EXPECT_EQ(v.model, "gpt2");
    EXPECT_EQ(v.pre, c.pre);
    EXPECT_EQ(v.merges.size(), src.merges().size());
    const Tokenizer back = tokenizer_from_vocab(v, c.dir);
    EXPECT_EQ(mismatches(back,
                         load_vectors(test::data_path(std::string(kVec) + "ggml-vocab-" +
                                                      c.vectors + ".gguf")),
                         c.dir),
              0);
  }
}

TEST(GgufVocab, PadsToTheEmbeddingRowsAndRejectsTooFew) {
  AWQ_REQUIRE_DATA("tokenizers/gpt2/tokenizer.json");
  const Tokenizer src = Tokenizer::from_dir(test::data_path("tokenizers/gpt2"));
  const GgufVocab v = vocab_from_tokenizer(src, 50304, "gpt2");
  ASSERT_EQ(v.tokens.size(), 50304u);
  EXPECT_EQ(v.tokens[50257], "[PAD50257]");
  EXPECT_EQ(v.types[50257], int32_t(TokenType::kUnused));
  EXPECT_EQ(v.types[50256], int32_t(TokenType::kControl));
  EXPECT_THROW(vocab_from_tokenizer(src, 50000, "gpt2"), Error);
}

// The GPT-2 vocabulary as llama.cpp's converter wrote it, key by key.
TEST(GgufVocab, Gpt2MetadataMatchesTheReferenceFile) {
  AWQ_REQUIRE_DATA("tokenizers/gpt2/tokenizer.json");
  AWQ_REQUIRE_DATA("tokenizers/llamacpp-vectors/ggml-vocab-gpt-2.gguf");
  const Tokenizer src = Tokenizer::from_dir(test::data_path("tokenizers/gpt2"));
  const std::string path = (test::scratch_dir("vocab_gpt2") / "vocab.gguf").string();
  GgufWriter w;
  write_vocab(w, vocab_from_tokenizer(src, src.vocab_size(), "gpt2"));
  w.write(path);
  const GgufFile f(path);
  const GgufFile ref(test::data_path(std::string(kVec) + "ggml-vocab-gpt-2.gguf"));
  for (const char* k : {"tokenizer.ggml.tokens", "tokenizer.ggml.merges"})
    EXPECT_EQ(f.get_strings(k), ref.get_strings(k)) << k;
  EXPECT_EQ(f.get_ints("tokenizer.ggml.token_type"), ref.get_ints("tokenizer.ggml.token_type"));
  for (const char* k : {"tokenizer.ggml.model", "tokenizer.ggml.pre"})
    EXPECT_EQ(f.get_string(k), ref.get_string(k));
  for (const char* k : {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"})
    EXPECT_EQ(f.get_int(k), ref.get_int(k)) << k;
  EXPECT_EQ(f.find("tokenizer.ggml.unknown_token_id"), nullptr);
}

}  // namespace
}  // namespace awq::gguf
