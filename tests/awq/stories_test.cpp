// stories260K (a real pretrained Llama, 260K parameters) quantized as the reference table was made
// with AutoAWQ v0.2.9: MLP zero-padded 172 -> 192 (--pad-intermediate 64), calibration on the
// first 128 stories of tinystories-train-head.txt (94 blocks of 512 tokens), perplexity on
// tinystories-valid-a.txt, paper convention, ctx 512 (full precision 4.4007).
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <filesystem>
#include <utility>

#include "awq/calib.h"
#include "awq/pipeline.h"
#include "base/files.h"
#include "eval/perplexity.h"
#include "eval/tokenizer_loader.h"
#include "model/model.h"
#include "test_util.h"
#include "tools/llama2c_convert.h"

namespace awq {
namespace {
namespace fs = std::filesystem;

class Stories : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!test::have_data("models/stories260K/stories260K.bin")) return;
    root_ = new fs::path(test::scratch_dir("stories"));
    convert_llama2c(test::data_path("models/stories260K/stories260K.bin"),
                    test::data_path("models/stories260K/tok512.bin"), (*root_ / "fp").string());
    const Tokenizer tok = load_model_tokenizer((*root_ / "fp").string());
    eval_tokens_ = new std::vector<int32_t>(
        tok.encode(read_text_file(test::data_path("text/tinystories-valid-a.txt")), true));
    bos_ = tok.bos_id();
  }
  static void TearDownTestSuite() {
    delete root_;
    delete eval_tokens_;
    root_ = nullptr;
    eval_tokens_ = nullptr;
  }
  void SetUp() override {
    AWQ_REQUIRE_DATA("models/stories260K/stories260K.bin");
    AWQ_REQUIRE_DATA("text/tinystories-train-head.txt");
    AWQ_REQUIRE_DATA("text/tinystories-valid-a.txt");
  }

  static std::string dir(const std::string& name) { return (*root_ / name).string(); }

  static double quantize_and_eval(const std::string& name, QuantMethod method, int bits, int group,
                                  int64_t pad, QuantizeReport* report = nullptr) {
    QuantizeOptions o;
    o.model_dir = dir("fp");
    o.out_dir = dir(name);
    o.calib = test::data_path("text/tinystories-train-head.txt");
    o.calib_long = CalibLong::Skip;  // AutoAWQ's calibration, as the reference table was made
    o.method = method;
    o.spec = QuantSpec{bits, group, true};
    o.format = OutputFormat::FakeQuant;  // W3 has no AutoAWQ layout
    o.spec.f16_scales = false;           // as `awq quantize --format fake-quant` (f32 scales)
    o.pad_intermediate = pad;
    o.progress = false;
    o.quiet = true;
    const QuantizeReport r = quantize_model(o);
    if (report) *report = r;
    if (method == QuantMethod::Awq) {
      EXPECT_EQ(r.calib_blocks, 94) << name;
      for (const auto& b : r.blocks)
        for (const auto& g : b.groups)
          if (g.applied) {
            EXPECT_LE(g.loss, g.rtn_loss) << name << " layer " << b.layer << " " << g.name;
          }
    }
    const Model m = Model::load(o.out_dir, LoadOptions{WeightForm::F32});
    PerplexityOptions po;
    po.ctx = 512;
    po.progress = false;
    const double ppl = perplexity(m, *eval_tokens_, bos_, po).ppl;
    std::printf("[ stories  ] %-14s %s W%d g%d pad %lld: ppl %.4f (quantize %.1f s)\n",
                name.c_str(), method_name(method), bits, group, (long long)pad, ppl, r.times.total);
    return ppl;
  }

  static fs::path* root_;
  static std::vector<int32_t>* eval_tokens_;
  static int32_t bos_;
};

fs::path* Stories::root_ = nullptr;
std::vector<int32_t>* Stories::eval_tokens_ = nullptr;
int32_t Stories::bos_ = -1;

TEST_F(Stories, CalibrationGives94Blocks) {
  const auto docs = load_calib_documents(test::data_path("text/tinystories-train-head.txt"));
  EXPECT_EQ(docs.size(), 2316u);
  const Tokenizer tok = load_model_tokenizer(dir("fp"));
  const CalibBlocks c = build_calib_blocks(
      docs.size(), [&](size_t i) { return tok.encode(docs[i], true); }, 128, 512, CalibLong::Skip,
      "train-head");
  EXPECT_EQ(c.docs_taken, 128);
  EXPECT_EQ(c.n_blocks, 94);
  EXPECT_EQ(c.tokens[0], tok.bos_id());
}

// Every row of the reference table (MLP padded to 192): RTN reproduces AutoAWQ's RTN within 0.2%
// (same quantizer, f32 scales as the reference ran; with f16-rounded scales W3 g32 is 7.7834,
// -0.32%), and AWQ is at or below AutoAWQ's AWQ with the defaults (both grids, clip-aware scale
// loss, clip objective on every calibration token). The reference's own recipe (duo grid, plain
// loss, 512 clip tokens) measured 4.8105 / 4.6531 / 7.4213 / 6.4292 here: it misses W3 g32.
struct Row {
  const char* name;
  int bits, group;
  double autoawq_rtn, autoawq_awq;
};

TEST_F(Stories, EveryRowMatchesOrBeatsAutoAwq) {
  const Row rows[] = {{"w4g64", 4, 64, 4.8378, 4.8143},
                      {"w4g32", 4, 32, 4.8118, 4.6577},
                      {"w3g64", 3, 64, 10.3487, 7.4351},
                      {"w3g32", 3, 32, 7.8086, 6.3660}};
  for (const Row& r : rows) {
    const double rtn =
        quantize_and_eval(std::string("rtn_") + r.name, QuantMethod::Rtn, r.bits, r.group, 64);
    EXPECT_NEAR(rtn / r.autoawq_rtn, 1.0, 0.002) << r.name;
    const double awq =
        quantize_and_eval(std::string("awq_") + r.name, QuantMethod::Awq, r.bits, r.group, 64);
    EXPECT_LE(awq, r.autoawq_awq) << r.name;
    EXPECT_LT(awq, rtn) << r.name;
  }
}

// Per-channel groups on the unpadded model (172 wide): AWQ below RTN.
TEST_F(Stories, PerChannelAwqBeatsRtn) {
  for (int bits : {4, 3}) {
    const std::string name = bits == 4 ? "w4pc" : "w3pc";
    const double rtn = quantize_and_eval("rtn_" + name, QuantMethod::Rtn, bits, -1, 0);
    const double awq = quantize_and_eval("awq_" + name, QuantMethod::Awq, bits, -1, 0);
    EXPECT_LT(awq, rtn) << name;
  }
}

// GPTQ's output error on the calibration inputs, (w - q) G (w - q)^T over every row (these
// linears have at most 256 rows, all of which the statistic takes), is below plain rounding's on
// every linear of the model, alone and after AWQ's scales (where plain rounding is what AWQ would
// write: the same clipped ranges); and the perplexity is below RTN's.
TEST_F(Stories, GptqBeatsRoundingOnEveryLinear) {
  for (const auto& [bits, group] : {std::pair<int, int>{4, 64}, {3, 32}}) {
    const std::string tag = fmt::format("w{}g{}", bits, group);
    const double rtn = quantize_and_eval("rtn_" + tag, QuantMethod::Rtn, bits, group, 64);
    for (const QuantMethod m : {QuantMethod::Gptq, QuantMethod::AwqGptq}) {
      QuantizeReport r;
      const double ppl =
          quantize_and_eval(std::string(method_name(m)) + "_" + tag, m, bits, group, 64, &r);
      EXPECT_LT(ppl, rtn) << method_name(m) << " " << tag;
      int64_t linears = 0;
      for (const auto& b : r.blocks)
        for (const auto& g : b.gptq) {
          EXPECT_LT(g.loss, g.rtn_loss) << method_name(m) << " " << tag << " layer " << b.layer
                                        << " " << linear_role_name(g.role);
          ++linears;
        }
      EXPECT_EQ(linears, 5 * 7) << method_name(m);  // 5 blocks of 7 linears
    }
  }
}

}  // namespace
}  // namespace awq
