// `awq eval` on a TinyLlama-1.1B-shaped F16 checkpoint (synthetic weights, ~2.2 GB) runs with the
// weights used in place from the mapping: its peak RSS stays well below what a loader that copies
// the weights to f32 would need (2x the file), and it reports the prefill rate beside this
// machine's sgemm rate. Runs the built `awq` binary, as a user would.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "formats/checkpoint.h"
#include "model/model.h"
#include "test_util.h"

namespace awq {
namespace {
namespace fs = std::filesystem;

using test::run_command;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Removes the 2.2 GB directory however the test ends.
struct RemoveOnExit {
  fs::path p;
  ~RemoveOnExit() {
    std::error_code ec;
    fs::remove_all(p, ec);
  }
};

TEST(EvalCli, TinyLlamaF16RunsFromTheMappingWithSgemmRate) {
  const fs::path root = test::scratch_dir("eval_mmap");
  RemoveOnExit cleanup{root};
  const fs::path model = root / "tinyllama-f16";
  // 1.1e9 f16 weights; check before writing them.
  const auto space = fs::space(root);
  ASSERT_GT(space.available, uintmax_t(4) << 30)
      << root << ": the synthetic TinyLlama-1.1B checkpoint needs ~2.2 GB of free disk";

  const auto t_synth = std::chrono::steady_clock::now();
  std::string out;
  ASSERT_EQ(run_command(test::awq_binary() + " synth --shape tinyllama-1.1b --dtype f16 --out " +
                            model.string() + " > /dev/null",
                        &out),
            0);
  std::printf("synth tinyllama-1.1b f16: %.1f s\n", seconds_since(t_synth));

  // Every linear of the native form (what eval uses for a float checkpoint) points into the
  // mapping as f16; nothing was converted to f32.
  {
    const Model m = Model::load(model.string());
    for (int64_t b = 0; b < m.n_layers(); ++b)
      for (LinearRole r : kAllLinearRoles) {
        const Linear& l = m.block(b)[r];
        ASSERT_NE(l.w16, nullptr) << "block " << b << " linear " << int(r);
        EXPECT_EQ(l.w16_type, DType::F16);
        EXPECT_TRUE(l.w.empty());
      }
    EXPECT_NE(m.lm_head().w16, nullptr);
    EXPECT_TRUE(m.lm_head().w.empty());
  }
  const double file_bytes = double(Checkpoint::open(model.string()).total_file_bytes());
  EXPECT_GT(file_bytes, 2.0e9);  // the shape really is 1.1B parameters in f16

  // A few hundred words of text; the synthetic byte-level tokenizer gives far more than 16 tokens.
  const fs::path text = root / "text.txt";
  {
    std::ofstream f(text);
    const char* words[] = {"the", "little", "dog", "ran", "to", "a", "big", "tree", "and", "sat"};
    for (int i = 0; i < 300; ++i) f << words[(i * 7 + i / 10) % 10] << (i % 12 == 11 ? ".\n" : " ");
  }

  const auto t_eval = std::chrono::steady_clock::now();
  out.clear();
  ASSERT_EQ(run_command(test::awq_binary() + " eval --model " + model.string() + " --text " +
                            text.string() + " --ctx 16 --max-windows 1 --json",
                        &out),
            0)
      << out;
  std::printf("eval: %.1f s\n%s\n", seconds_since(t_eval), out.c_str());
  const auto j = nlohmann::json::parse(out);

  EXPECT_EQ(j.at("weights").get<std::string>(), "native");
  EXPECT_EQ(j.at("windows").get<int64_t>(), 1);
  EXPECT_EQ(j.at("scored").get<int64_t>(), 15);
  EXPECT_TRUE(std::isfinite(j.at("perplexity").get<double>()));

  // Copying the f16 weights to f32 would need ~2x the file; mapped, the touched pages count once.
  const double rss = j.at("peak_rss_mib").get<double>() * 1024.0 * 1024.0;
  EXPECT_GT(rss, 0.0);
  EXPECT_LT(rss, 1.25 * file_bytes) << "peak RSS " << rss / 1e9 << " GB for a " << file_bytes / 1e9
                                    << " GB checkpoint: weights copied, not mapped?";

  const double prefill = j.at("prefill_gflops").get<double>();
  const double sgemm = j.at("sgemm_gflops").get<double>();
  const double fraction = j.at("prefill_fraction_of_sgemm").get<double>();
  EXPECT_TRUE(std::isfinite(prefill) && prefill > 0) << prefill;
  EXPECT_TRUE(std::isfinite(sgemm) && sgemm > 0) << sgemm;
  EXPECT_TRUE(std::isfinite(fraction) && fraction > 0) << fraction;
  EXPECT_NEAR(fraction, prefill / sgemm, 1e-9 * fraction);
}

}  // namespace
}  // namespace awq
