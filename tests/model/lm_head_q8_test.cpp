// LoadOptions::lm_head_q8: the lm_head as a run-time int8 copy. The model must run the copy (the
// logits are exactly that Q8 product of the final hidden states), stay close to the float head,
// keep reading the float rows for a tied embedding, count the copy's bytes, and name the tensor
// when its width cannot be packed.
#include <gtest/gtest.h>

#include <cstring>

#include "base/error.h"
#include "kernels/q8.h"
#include "model/model.h"
#include "test_util.h"
#include "tiny_model.h"

namespace awq {
namespace {

TEST(LmHeadQ8, RunsTheInt8CopyAndLeavesTheTiedEmbeddingAlone) {
  for (bool tie : {true, false}) {
    test::TinySpec s;
    s.tie = tie;
    s.dtype = DType::F16;
    s.vocab = 83;  // not a multiple of the 16-row tile
    const auto dir = test::scratch_dir(tie ? "q8_head_tied" : "q8_head_untied");
    test::write_tiny_model(dir / "m", s);
    const Model f16 = Model::load((dir / "m").string());
    LoadOptions o;
    o.lm_head_q8 = true;
    const Model q8 = Model::load((dir / "m").string(), o);
    ASSERT_TRUE(q8.lm_head().q8);
    EXPECT_FALSE(f16.lm_head().q8);
    EXPECT_EQ(q8.lm_head().weight_bytes(), int64_t(q8.lm_head().q8->bytes()));
    // 83 rows: 6 tiles, each 16 rows x (1 code byte per input + one f16 scale per 32), padded to
    // 64 bytes (q8_layout.h).
    EXPECT_EQ(q8.lm_head().weight_bytes(), 6 * ((17 * s.hidden + 63) / 64 * 64));
    EXPECT_EQ(q8.weight_bytes() - f16.weight_bytes(),
              q8.lm_head().weight_bytes() - f16.lm_head().weight_bytes());

    const std::vector<int32_t> toks = {1, 5, 9, 2, 60, 82, 7};
    Mat e16, e8;
    f16.embed(toks.data(), int64_t(toks.size()), e16);
    q8.embed(toks.data(), int64_t(toks.size()), e8);
    ASSERT_EQ(std::memcmp(e16.data.data(), e8.data.data(), e16.size() * sizeof(float)), 0);

    const Mat hidden = q8.hidden(toks.data(), 1, int64_t(toks.size()));
    const Mat got = q8.forward(toks.data(), 1, int64_t(toks.size()));
    Mat want(hidden.rows, s.vocab);
    kernels::gemm_q8a8(hidden.data.data(), hidden.rows, *q8.lm_head().q8, nullptr,
                       want.data.data());
    ASSERT_EQ(std::memcmp(got.data.data(), want.data.data(), got.size() * sizeof(float)), 0);

    const Mat ref = f16.forward(toks.data(), 1, int64_t(toks.size()));
    for (int64_t t = 0; t < ref.rows; ++t)
      EXPECT_LT(test::rel_err(got.row(t), ref.row(t), s.vocab), 0.02)
          << "tie " << tie << " t " << t;

    // The dequantized copy is what weight_f32 reports, within half a step of the float rows.
    const Mat w8 = q8.lm_head().weight_f32(), w16 = f16.lm_head().weight_f32();
    for (int64_t v = 0; v < s.vocab; ++v)
      for (int64_t i = 0; i < s.hidden; ++i)
        ASSERT_LE(std::fabs(w8.row(v)[i] - w16.row(v)[i]), 0.5 * q8.lm_head().q8->scale(v, i / 32))
            << v << " " << i;
  }
}

TEST(LmHeadQ8, AWidthNotAMultipleOf32IsAnErrorNamingTheTensor) {
  test::TinySpec s;
  s.hidden = 48;
  s.heads = 4;
  const auto dir = test::scratch_dir("q8_head_48");
  test::write_tiny_model(dir / "m", s);
  LoadOptions o;
  o.lm_head_q8 = true;
  try {
    (void)Model::load((dir / "m").string(), o);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("model.embed_tokens.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("multiple of 32"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace awq
