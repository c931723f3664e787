// llama.cpp's tokenizer test vectors (models/ggml-vocab-*.gguf.inp/.out): each input, encoded
// without special tokens, gives the ids on the matching line of the .out file. The .inp file is
// the inputs each followed by "\n__ggml_vocab_test__\n" (so an input may itself begin or end with
// newlines, or be empty); the .out file has one line of space-separated ids per input.
#include <gtest/gtest.h>

#include <sstream>

#include "tokenizer_test_util.h"

namespace awq {
namespace {

struct VectorCase {
  std::string vocab;   // llama.cpp's name
  std::string family;  // our tokenizers/<family>
};

std::vector<std::string> split_inputs(const std::string& all) {
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> out;
  size_t pos = 0;
  for (size_t hit; (hit = all.find(sep, pos)) != std::string::npos; pos = hit + sep.size())
    out.push_back(all.substr(pos, hit - pos));
  EXPECT_EQ(pos, all.size()) << "text after the last separator";
  return out;
}

std::vector<std::vector<int32_t>> read_outputs(const std::string& all) {
  std::vector<std::vector<int32_t>> out;
  std::istringstream lines(all);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream ids(line);
    std::vector<int32_t> v;
    for (int32_t id; ids >> id;) v.push_back(id);
    out.push_back(std::move(v));
  }
  return out;
}

class LlamaCppVectors : public ::testing::TestWithParam<VectorCase> {};

TEST_P(LlamaCppVectors, EveryInputEncodesToTheExpectedIds) {
  const VectorCase c = GetParam();
  const std::string base = "tokenizers/llamacpp-vectors/ggml-vocab-" + c.vocab + ".gguf";
  AWQ_REQUIRE_DATA(base + ".inp");
  AWQ_REQUIRE_DATA(base + ".out");
  AWQ_REQUIRE_DATA("tokenizers/" + c.family + "/tokenizer.json");
  const std::vector<std::string> inputs = split_inputs(test::read_data(base + ".inp"));
  const std::vector<std::vector<int32_t>> outputs = read_outputs(test::read_data(base + ".out"));
  ASSERT_EQ(inputs.size(), 46u);
  ASSERT_EQ(outputs.size(), inputs.size());
  const Tokenizer& tok = test::family_tokenizer(c.family);
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::vector<int32_t> got = tok.encode(inputs[i], /*add_special=*/false);
    EXPECT_EQ(test::first_difference(got, outputs[i], &tok), "")
        << "input " << i << ": \"" << inputs[i] << "\"";
  }
}

INSTANTIATE_TEST_SUITE_P(Vocabs, LlamaCppVectors,
                         ::testing::Values(VectorCase{"llama-spm", "llama2"},
                                           VectorCase{"phi-3", "phi-3"},
                                           VectorCase{"gpt-2", "gpt2"},
                                           VectorCase{"qwen2", "qwen2.5"}),
                         [](const auto& info) {
                           std::string n = info.param.vocab;
                           for (char& ch : n)
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

}  // namespace
}  // namespace awq
