// awq quantize --method gptq / awq-gptq from the command line, through every output: the AutoAWQ
// checkpoint, fake-quant, and the GGUF export, which reads back with the checkpoint's perplexity.
// Runs the built binary on a small synthetic model with the llama2 tokenizer.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "test_util.h"

namespace awq {
namespace {
namespace fs = std::filesystem;

using Outcome = test::AwqRun;

constexpr auto awq = test::run_awq;

double json_number(const std::string& text, const std::string& key) {
  const size_t b = text.find('{');
  return nlohmann::json::parse(text.substr(b)).at(key).get<double>();
}

TEST(GptqCli, EveryOutputOfEveryGptqMethod) {
  AWQ_REQUIRE_DATA("tokenizers/llama2/tokenizer.json");
  AWQ_REQUIRE_DATA("text/tinystories-train-head.txt");
  AWQ_REQUIRE_DATA("text/tinystories-valid-a.txt");
  const fs::path root = test::scratch_dir("gptq_cli");
  const std::string model = (root / "m").string();
  const Outcome s = awq("synth --shape tiny --layers 2 --vocab 32000 --tokenizer " +
                        test::data_path("tokenizers/llama2") + " --out " + model);
  ASSERT_EQ(s.rc, 0) << s.out;
  const std::string text = test::data_path("text/tinystories-valid-a.txt");
  for (const char* method : {"gptq", "awq-gptq"}) {
    SCOPED_TRACE(method);
    const fs::path out = root / method;
    const std::string q = "quantize --model " + model + " --calib " +
                          test::data_path("text/tinystories-train-head.txt") +
                          " --calib-samples 8 --calib-seqlen 128 --method " + method;
    const Outcome a = awq(q + " --out " + out.string() + " --report " + out.string() + ".json");
    ASSERT_EQ(a.rc, 0) << a.out;
    EXPECT_NE(a.out.find("GPTQ/RTN"), std::string::npos) << a.out;  // the per-linear table
    const auto rep = nlohmann::json::parse(test::file_bytes(out.string() + ".json"));
    EXPECT_EQ(rep.at("method"), method);
    EXPECT_GT(rep.at("seconds").at("gptq").get<double>(), 0.0);
    // f16 scales, as the AutoAWQ layout stores them (fake-quant defaults to f32 ones).
    const Outcome f =
        awq(q + " --format fake-quant --scale-dtype f16 --out " + out.string() + "-fake");
    ASSERT_EQ(f.rc, 0) << f.out;
    const Outcome g =
        awq("export-gguf --model " + out.string() + " --out " + out.string() + ".gguf");
    ASSERT_EQ(g.rc, 0) << g.out;
    // The checkpoint, its fake-quant twin and the GGUF file compute the same perplexity (the
    // 4-bit ones on the exact W4A16 path: the default W4A8 rounds activations too).
    double ppl[3];
    int i = 0;
    for (const std::string& m : {out.string(), out.string() + "-fake", out.string() + ".gguf"}) {
      const Outcome e = awq("eval --model " + m + " --text " + text +
                            " --ctx 128 --max-windows 8 --json --weights " +
                            (m.ends_with("-fake") ? "native" : "w4"));
      ASSERT_EQ(e.rc, 0) << e.out;
      ppl[i++] = json_number(e.out, "perplexity");
    }
    EXPECT_NEAR(ppl[1] / ppl[0], 1.0, 1e-4) << ppl[0] << " " << ppl[1];
    EXPECT_NEAR(ppl[2] / ppl[0], 1.0, 1e-4) << ppl[0] << " " << ppl[2];
  }
  // Asked for what it cannot do: a clear error, nothing written.
  const Outcome bad =
      awq("quantize --model " + model + " --method gptq --out " + (root / "bad").string());
  EXPECT_EQ(bad.rc, 1);
  EXPECT_NE(bad.out.find("--calib is required for --method gptq"), std::string::npos) << bad.out;
  EXPECT_FALSE(fs::exists(root / "bad"));
  fs::remove_all(root);
}

}  // namespace
}  // namespace awq
