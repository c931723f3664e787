// A killed `awq quantize` resumes and writes the same bytes as a run that was never interrupted.
// Runs the built binary, as a user would, on small multi-block synthetic models (dense llama and
// a mixture of experts), and stops it with SIGKILL (no clean-up code runs: as an OOM kill or a
// power loss) at exact places through the AWQ_TEST_KILL_AT hook (base/interrupt.h): during a
// block's search, right after a block was kept, and during the final write; and with SIGINT (a
// Ctrl-C), which must stop cleanly. Stale stages (another option) and damaged ones (a flipped
// byte, a torn file) are reported and set aside, never mixed in.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test_util.h"

namespace awq {
namespace {
namespace fs = std::filesystem;

// Names in `dir` other than the expected outputs: stages, locks, temporaries.
std::vector<std::string> leftovers(const fs::path& dir, const std::vector<std::string>& expected) {
  std::vector<std::string> v;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (std::find(expected.begin(), expected.end(), n) == expected.end()) v.push_back(n);
  }
  return v;
}

struct Outcome {
  int rc = -1;  // the shell's view: 137 for SIGKILL, 130 for SIGINT
  std::string out;
};

Outcome awq(const std::string& env, const std::string& args) {
  Outcome r;
  test::run_command(env + " " + test::awq_binary() + " " + args + " 2>&1; echo \"rc=$?\"", &r.out);
  const size_t at = r.out.rfind("rc=");
  if (at != std::string::npos) r.rc = std::stoi(r.out.substr(at + 3));
  return r;
}

class Resume : public ::testing::Test {
 protected:
  void SetUp() override {
    AWQ_REQUIRE_DATA("tokenizers/llama2/tokenizer.json");
    AWQ_REQUIRE_DATA("text/tinystories-train-head.txt");
    root_ = test::scratch_dir("resume");
  }

  // A synthetic model of `shape` (a preset, or a config.json written here) with `layers` blocks
  // and the llama2 tokenizer.
  fs::path model(const std::string& name, const std::string& synth_args) {
    const fs::path m = root_ / name;
    const Outcome r = awq("", "synth " + synth_args + " --vocab 32000 --tokenizer " +
                                  test::data_path("tokenizers/llama2") + " --out " + m.string());
    EXPECT_EQ(r.rc, 0) << r.out;
    return m;
  }

  std::string quantize_args(const fs::path& m, const std::string& out,
                            const std::string& extra = "") {
    return "quantize --model " + m.string() + " --calib " +
           test::data_path("text/tinystories-train-head.txt") +
           " --calib-samples 16 --calib-seqlen 256 --out " + (root_ / out).string() + " " + extra;
  }

  fs::path root_;
};

// Kill at `point`, run again, and compare with `reference`; returns the re-run's output.
std::string kill_and_resume(const fs::path& root, const std::string& args_killed,
                            const std::string& args_again, const std::string& point,
                            const fs::path& out, const fs::path& reference) {
  const Outcome killed = awq("AWQ_TEST_KILL_AT=" + point, args_killed);
  EXPECT_EQ(killed.rc, 137) << point << ": " << killed.out;
  EXPECT_FALSE(fs::exists(out)) << point;
  EXPECT_TRUE(fs::exists(out.string() + ".resume")) << point;
  const Outcome again = awq("", args_again);
  EXPECT_EQ(again.rc, 0) << point << ": " << again.out;
  test::expect_same_dirs(reference, out);
  // The stage served and went; the killed run's staged output and lock went too.
  EXPECT_EQ(leftovers(root, {"m", "moe", "moe.json", "full", "q", "report.json"}),
            std::vector<std::string>{})
      << point;
  fs::remove_all(out);
  return again.out;
}

TEST_F(Resume, SigkillAnywhereThenTheSameCommandWritesTheSameBytes) {
  const fs::path m = model("m", "--shape tiny --layers 6");
  const Outcome full = awq("", quantize_args(m, "full"));
  ASSERT_EQ(full.rc, 0) << full.out;
  const std::string args = quantize_args(m, "q");
  const fs::path q = root_ / "q";
  // Mid-search of block 0: nothing finished, the stage holds only its fingerprint.
  std::string out = kill_and_resume(root_, args, args, "search:0", q, root_ / "full");
  EXPECT_EQ(out.find("resuming"), std::string::npos) << out;
  // Mid-search of block 3, between blocks 4 and 5, after the last block, during the final write.
  for (const auto& [point, kept] :
       std::vector<std::pair<std::string, std::string>>{{"search:3", "layers 0-2 of 6"},
                                                        {"kept:4", "layers 0-4 of 6"},
                                                        {"kept:5", "layers 0-5 of 6"},
                                                        {"write", "layers 0-5 of 6"}}) {
    out = kill_and_resume(root_, args, args, point, q, root_ / "full");
    EXPECT_NE(out.find("awq: resuming: " + kept), std::string::npos) << point << ": " << out;
  }
}

TEST_F(Resume, AResumeAfterALateKillSearchesNothing) {
  const fs::path m = model("m", "--shape tiny --layers 6");
  const std::string report = " --report " + (root_ / "report.json").string();
  const Outcome full = awq("", quantize_args(m, "full", report));
  ASSERT_EQ(full.rc, 0) << full.out;
  const auto seconds = [&] {
    const auto j = nlohmann::json::parse(test::file_bytes(root_ / "report.json"));
    return std::make_pair(j["seconds"]["total"].get<double>(),
                          j["seconds"]["scale_search"].get<double>() +
                              j["seconds"]["clip_search"].get<double>() +
                              j["seconds"]["capture"].get<double>());
  };
  const auto [full_total, full_search] = seconds();
  const std::string args = quantize_args(m, "q", report);
  ASSERT_EQ(awq("AWQ_TEST_KILL_AT=write", args).rc, 137);
  const Outcome again = awq("", args);
  ASSERT_EQ(again.rc, 0) << again.out;
  const auto [resumed_total, resumed_search] = seconds();
  const auto j = nlohmann::json::parse(test::file_bytes(root_ / "report.json"));
  EXPECT_EQ(j["resumed_blocks"], 6);
  // Replaying kept scales and clips is arithmetic on the weights alone: no forward, no candidate.
  EXPECT_LT(resumed_search, 0.25 * full_search);
  std::printf(
      "full run %.2f s (search %.2f s); resumed after a kill in the final write %.2f s "
      "(search %.3f s)\n",
      full_total, full_search, resumed_total, resumed_search);
  test::expect_same_dirs(root_ / "full", root_ / "q");
}

TEST_F(Resume, MixtureOfExpertsAndQuantizedPropagationResumeExactly) {
  // A small Qwen3-MoE: 4 experts (2 per token), every layer sparse.
  const fs::path cfg = root_ / "moe.json";
  std::ofstream(cfg) << R"({"model_type":"qwen3_moe","hidden_size":128,"intermediate_size":256,
    "moe_intermediate_size":128,"num_experts":4,"num_experts_per_tok":2,"norm_topk_prob":true,
    "num_hidden_layers":4,"num_attention_heads":4,"num_key_value_heads":2,"head_dim":32,
    "vocab_size":32000,"max_position_embeddings":4096,"rms_norm_eps":1e-6,"rope_theta":1000000.0,
    "decoder_sparse_step":1,"mlp_only_layers":[],"tie_word_embeddings":false,
    "torch_dtype":"bfloat16"})";
  const fs::path moe = model("moe", "--config " + cfg.string());
  ASSERT_EQ(awq("", quantize_args(moe, "full")).rc, 0);
  const std::string args = quantize_args(moe, "q");
  const std::string out =
      kill_and_resume(root_, args, args, "search:2", root_ / "q", root_ / "full");
  EXPECT_NE(out.find("awq: resuming: layers 0-1 of 4"), std::string::npos) << out;
  fs::remove_all(root_ / "full");

  const fs::path m = model("m", "--shape tiny --layers 6");
  const std::string prop = quantize_args(m, "q", "--propagate quantized");
  ASSERT_EQ(awq("", quantize_args(m, "full", "--propagate quantized")).rc, 0);
  const std::string out2 =
      kill_and_resume(root_, prop, prop, "kept:2", root_ / "q", root_ / "full");
  EXPECT_NE(out2.find("awq: resuming: layers 0-2 of 6"), std::string::npos) << out2;
}

TEST_F(Resume, ADifferentCommandSetsTheStageAside) {
  const fs::path m = model("m", "--shape tiny --layers 6");
  ASSERT_EQ(awq("", quantize_args(m, "full", "--scale-grid 10")).rc, 0);
  const fs::path q = root_ / "q";
  ASSERT_EQ(awq("AWQ_TEST_KILL_AT=kept:3", quantize_args(m, "q")).rc, 137);
  // Another grid: the kept blocks (searched on 20 points) must not be mixed in.
  const Outcome other = awq("", quantize_args(m, "q", "--scale-grid 10"));
  ASSERT_EQ(other.rc, 0) << other.out;
  EXPECT_NE(other.out.find("not resuming from " + q.string() +
                           ".resume: it was made by a "
                           "different command or input: --scale-grid (kept: 20; now: 10); moved "
                           "it to " +
                           q.string() + ".resume.stale"),
            std::string::npos)
      << other.out;
  test::expect_same_dirs(root_ / "full", q);
  // The set-aside stage is intact: moved back, it resumes the original command.
  fs::remove_all(q);
  fs::rename(q.string() + ".resume.stale", q.string() + ".resume");
  const Outcome back = awq("", quantize_args(m, "q"));
  ASSERT_EQ(back.rc, 0) << back.out;
  EXPECT_NE(back.out.find("awq: resuming: layers 0-3 of 6"), std::string::npos) << back.out;
  // Another calibration text is another input, as is --no-resume a request to start over.
  fs::remove_all(q);
  ASSERT_EQ(awq("AWQ_TEST_KILL_AT=kept:1", quantize_args(m, "q")).rc, 137);
  const Outcome shorter = awq("", quantize_args(m, "q", "--no-resume"));
  ASSERT_EQ(shorter.rc, 0) << shorter.out;
  EXPECT_NE(shorter.out.find("not resuming from " + q.string() + ".resume: --no-resume"),
            std::string::npos)
      << shorter.out;
  EXPECT_EQ(shorter.out.find("awq: resuming"), std::string::npos) << shorter.out;
}

TEST_F(Resume, ADamagedStageIsDetectedAndNotUsed) {
  const fs::path m = model("m", "--shape tiny --layers 6");
  ASSERT_EQ(awq("", quantize_args(m, "full")).rc, 0);
  const fs::path q = root_ / "q", stage = root_ / "q.resume";
  const std::string args = quantize_args(m, "q");
  struct Damage {
    std::string file, what;
    bool truncate;
  };
  for (const Damage& d : {Damage{"activations.bin", "content does not match its hash", false},
                          Damage{"block-0001.json", "content does not match its hash", false},
                          Damage{"block-0002.json", "no seal at its end", true},
                          Damage{"fingerprint.json", "no seal at its end", true}}) {
    ASSERT_EQ(awq("AWQ_TEST_KILL_AT=kept:3", args).rc, 137);
    const fs::path p = stage / d.file;
    std::string bytes = test::file_bytes(p);
    ASSERT_GT(bytes.size(), 100u) << d.file;
    if (d.truncate)
      bytes.resize(bytes.size() - 7);  // a torn write
    else
      bytes[bytes.size() / 2] ^= 0x10;  // one flipped bit in the middle
    std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
    const Outcome again = awq("", args);
    ASSERT_EQ(again.rc, 0) << again.out;
    EXPECT_NE(
        again.out.find("not resuming from " + stage.string() + ": " + p.string() + ": " + d.what),
        std::string::npos)
        << d.file << ": " << again.out;
    EXPECT_EQ(again.out.find("awq: resuming"), std::string::npos) << again.out;
    test::expect_same_dirs(root_ / "full", q);
    fs::remove_all(q);
    fs::remove_all(stage.string() + ".stale");
  }
}

TEST_F(Resume, CtrlCStopsCleanlyKeepingWhatWasFinished) {
  const fs::path m = model("m", "--shape tiny --layers 6");
  ASSERT_EQ(awq("", quantize_args(m, "full")).rc, 0);
  const std::string args = quantize_args(m, "q");
  // SIGINT right after block 2 was kept: the run stops at its next safe point.
  const Outcome stopped = awq("AWQ_TEST_KILL_AT=kept:2 AWQ_TEST_KILL_SIGNAL=2", args);
  EXPECT_EQ(stopped.rc, 130) << stopped.out;
  EXPECT_NE(
      stopped.out.find("awq: interrupted (SIGINT): 3 of 6 layers are kept in " +
                       (root_ / "q.resume").string() + "; the same command resumes from layer 3"),
      std::string::npos)
      << stopped.out;
  // Clean: no staged output, no lock; only the stage.
  EXPECT_EQ(leftovers(root_, {"m", "full"}), std::vector<std::string>{"q.resume"});
  const Outcome again = awq("", args);
  ASSERT_EQ(again.rc, 0) << again.out;
  EXPECT_NE(again.out.find("awq: resuming: layers 0-2 of 6"), std::string::npos) << again.out;
  test::expect_same_dirs(root_ / "full", root_ / "q");
}

}  // namespace
}  // namespace awq
