#include "formats/llama2c.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>

#include "base/error.h"
#include "test_util.h"

namespace awq {
namespace {

TEST(Llama2c, ReadsStories260K) {
  AWQ_REQUIRE_DATA("models/stories260K/stories260K.bin");
  Llama2cModel m = read_llama2c(test::data_path("models/stories260K/stories260K.bin"));
  EXPECT_EQ(m.dim, 64);
  EXPECT_EQ(m.hidden_dim, 172);
  EXPECT_EQ(m.n_layers, 5);
  EXPECT_EQ(m.n_heads, 8);
  EXPECT_EQ(m.n_kv_heads, 4);
  EXPECT_EQ(m.vocab_size, 512);
  EXPECT_EQ(m.seq_len, 512);
  EXPECT_TRUE(m.shared_classifier);
  EXPECT_EQ(m.wk.size(), size_t(5 * 32 * 64));
  // 260,032 parameters, as the data README says.
  const size_t params = m.token_embedding.size() + m.rms_att.size() + m.wq.size() + m.wk.size() +
                        m.wv.size() + m.wo.size() + m.rms_ffn.size() + m.w1.size() + m.w2.size() +
                        m.w3.size() + m.rms_final.size();
  EXPECT_EQ(params, 260032u);
}

TEST(Llama2c, WrongSizeIsAClearError) {
  AWQ_REQUIRE_DATA("models/stories260K/stories260K.bin");
  const auto dir = test::scratch_dir("l2c_wrong");
  const std::string src = test::data_path("models/stories260K/stories260K.bin");
  const std::string p = (dir / "cut.bin").string();
  std::filesystem::copy_file(src, p);
  std::filesystem::resize_file(p, std::filesystem::file_size(src) - 100);
  try {
    read_llama2c(p);
    FAIL();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(p), std::string::npos) << msg;
    EXPECT_NE(msg.find("must be 1056540 bytes"), std::string::npos) << msg;
  }
}

TEST(Llama2c, GarbageHeader) {
  const auto dir = test::scratch_dir("l2c_garbage");
  const std::string p = (dir / "g.bin").string();
  {
    std::ofstream out(p, std::ios::binary);
    int32_t h[7] = {-5, 1, 1, 1, 1, 1, 1};
    out.write(reinterpret_cast<const char*>(h), sizeof(h));
  }
  EXPECT_THROW(read_llama2c(p), Error);
}

// vocab_size INT32_MIN (found by fuzz_llama2c): its negation, the legacy "unshared classifier"
// flag, overflowed (undefined behaviour); now an implausible-header error like any other.
TEST(Llama2c, MostNegativeVocabSizeIsAClearError) {
  const auto dir = test::scratch_dir("l2c_int_min");
  const std::string p = (dir / "m.bin").string();
  {
    std::ofstream out(p, std::ios::binary);
    const int32_t h[7] = {64, 128, 1, 4, 4, INT32_MIN, 32};
    out.write(reinterpret_cast<const char*>(h), sizeof(h));
    out << std::string(4096, '\0');
  }
  try {
    read_llama2c(p);
    ADD_FAILURE() << "read a header with vocab_size INT32_MIN";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("implausible llama2.c header"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace awq
