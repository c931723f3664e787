// awq imatrix's statistics and file: llama.cpp's legacy .dat layout byte by byte, values equal to
// the mean squared activations computed directly, and truncated files rejected.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <random>

#include "base/error.h"
#include "gguf/imatrix.h"
#include "model/model.h"
#include "model/ops.h"
#include "synthetic.h"
#include "test_util.h"

namespace awq::gguf {
namespace {

std::vector<std::vector<int32_t>> random_chunks(int n, int T, int vocab) {
  std::mt19937 rng(3);
  std::vector<std::vector<int32_t>> c(static_cast<size_t>(n),
                                      std::vector<int32_t>(static_cast<size_t>(T)));
  for (auto& ch : c)
    for (auto& t : ch) t = int32_t(rng() % uint32_t(vocab));
  return c;
}

TEST(Imatrix, StatisticsAreMeanSquaredInputsTimesChunks) {
  const auto root = test::scratch_dir("imatrix");
  test::SynthSpec spec;
  spec.awq = false;
  test::write_synthetic((root / "m").string(), spec);
  const Model model = Model::load((root / "m").string());
  const auto chunks = random_chunks(3, 16, 512);
  int64_t seen = 0;
  const Imatrix im = compute_imatrix(model, chunks, "calib.txt", [&](int64_t) { ++seen; });
  EXPECT_EQ(seen, 3);
  EXPECT_EQ(im.chunks, 3);
  ASSERT_EQ(im.entries.size(), 2u * 7u);
  const auto& q = im.entries.at("blk.0.attn_q.weight");
  EXPECT_EQ(q.ncall, 3);
  ASSERT_EQ(q.values.size(), 128u);
  EXPECT_EQ(q.values, im.entries.at("blk.0.attn_k.weight").values);  // one input, three linears
  EXPECT_EQ(im.entries.at("blk.1.ffn_gate.weight").values,
            im.entries.at("blk.1.ffn_up.weight").values);
  EXPECT_EQ(im.entries.at("blk.1.ffn_down.weight").values.size(), 192u);
  EXPECT_EQ(im.entries.at("blk.0.attn_output.weight").values.size(), 128u);
  // Block 0's q input is the RMS-normed embedding: compute it directly.
  std::vector<double> want(128, 0.0);
  for (const auto& ch : chunks) {
    Mat x, xn;
    model.embed(ch.data(), int64_t(ch.size()), x);
    rmsnorm(x, model.block(0).attn_norm, model.config().rms_norm_eps, xn);
    for (int64_t r = 0; r < xn.rows; ++r)
      for (int64_t c = 0; c < xn.cols; ++c) want[size_t(c)] += double(xn.at(r, c)) * xn.at(r, c);
  }
  for (size_t c = 0; c < 128; ++c)
    EXPECT_NEAR(q.values[c], want[c] / 48.0 * 3.0, 1e-5 * want[c] / 16.0) << c;
}

TEST(Imatrix, FileFollowsTheLegacyDatLayout) {
  Imatrix m;
  m.chunks = 5;
  m.dataset = "wiki.txt";
  m.entries["blk.0.attn_q.weight"] = ImatrixEntry{5, {1.0f, 2.5f}};
  m.entries["blk.0.ffn_down.weight"] = ImatrixEntry{5, {0.25f, 4.0f, 9.0f}};
  const std::string path = (test::scratch_dir("imatrix_file") / "m.dat").string();
  write_imatrix(path, m);
  std::ifstream in(path, std::ios::binary);
  const std::vector<char> b{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  size_t p = 0;
  auto i32 = [&] {
    int32_t v;
    std::memcpy(&v, b.data() + p, 4);
    p += 4;
    return v;
  };
  auto f32 = [&] {
    float v;
    std::memcpy(&v, b.data() + p, 4);
    p += 4;
    return v;
  };
  auto str = [&](int32_t n) {
    std::string s(b.data() + p, size_t(n));
    p += size_t(n);
    return s;
  };
  EXPECT_EQ(i32(), 2);
  EXPECT_EQ(str(i32()), "blk.0.attn_q.weight");
  EXPECT_EQ(i32(), 5);
  EXPECT_EQ(i32(), 2);
  EXPECT_EQ(f32(), 1.0f);
  EXPECT_EQ(f32(), 2.5f);
  EXPECT_EQ(str(i32()), "blk.0.ffn_down.weight");
  EXPECT_EQ(i32(), 5);
  EXPECT_EQ(i32(), 3);
  EXPECT_EQ(f32(), 0.25f);
  p += 8;
  EXPECT_EQ(i32(), 5);  // last chunk
  EXPECT_EQ(str(i32()), "wiki.txt");
  EXPECT_EQ(p, b.size());

  const Imatrix back = read_imatrix(path);
  EXPECT_EQ(back.chunks, 5);
  EXPECT_EQ(back.dataset, "wiki.txt");
  EXPECT_EQ(back.entries.at("blk.0.ffn_down.weight").values,
            (std::vector<float>{0.25f, 4.0f, 9.0f}));
  // Truncated: an error naming the file.
  std::ofstream(path + ".cut", std::ios::binary).write(b.data(), std::streamsize(b.size() - 10));
  try {
    read_imatrix(path + ".cut");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path + ".cut"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace awq::gguf
