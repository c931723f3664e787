// --method gptq and awq-gptq through the whole pipeline on a tiny dense model: determinism, the
// report, --load-search with GPTQ, and the options GPTQ refuses. (The AutoAWQ layout round trip
// of every method, dense and MoE, is MoeAwq.AutoAwqDequantizesToTheFakeQuantWeights.)
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "awq/pipeline.h"
#include "awq/shard.h"
#include "base/error.h"
#include "base/files.h"
#include "base/interrupt.h"
#include "base/thread_pool.h"
#include "test_util.h"
#include "tiny_model.h"

namespace awq {
namespace {
namespace fs = std::filesystem;

struct Fixture {
  fs::path root;
  std::string model;
  CalibBlocks calib;
};

Fixture make(const std::string& name) {
  Fixture f;
  f.root = test::scratch_dir(name);
  f.model = (f.root / "model").string();
  test::TinyModelOptions mo;
  mo.kv_heads = 2;
  test::write_tiny_model(f.model, mo);
  f.calib = test::random_calib(6, 16, mo.vocab, 3);
  return f;
}

QuantizeOptions options(const Fixture& f, const std::string& out, QuantMethod m) {
  QuantizeOptions o;
  o.model_dir = f.model;
  o.out_dir = (f.root / out).string();
  o.method = m;
  o.spec = QuantSpec{4, 16, true};
  o.calib_tokens = &f.calib;
  o.progress = false;
  o.quiet = true;
  return o;
}

TEST(GptqPipeline, ByteIdenticalForOneAndTwoThreads) {
  const Fixture f = make("gptq_threads");
  const int saved = num_threads();
  for (const QuantMethod m : {QuantMethod::Gptq, QuantMethod::AwqGptq}) {
    const std::string tag = method_name(m);
    set_num_threads(1);
    quantize_model(options(f, tag + "_t1", m));
    set_num_threads(2);
    quantize_model(options(f, tag + "_t2", m));
    test::expect_same_dirs(f.root / (tag + "_t1"), f.root / (tag + "_t2"));
  }
  set_num_threads(saved);
  // Not RTN's bytes, nor each other's.
  quantize_model(options(f, "rtn", QuantMethod::Rtn));
  const auto bytes = [&](const std::string& d) {
    return test::file_bytes(f.root / d / "model.safetensors");
  };
  EXPECT_TRUE(bytes("gptq_t1") != bytes("rtn"));
  EXPECT_TRUE(bytes("awq-gptq_t1") != bytes("gptq_t1"));
}

// The report has, per linear, GPTQ's output error beside plain rounding's (GPTQ lower on every
// one here), the stage time, and awq-gptq also AWQ's scale choices.
TEST(GptqPipeline, ReportHasEveryLinearsLossBeforeAndAfter) {
  const Fixture f = make("gptq_report");
  for (const QuantMethod m : {QuantMethod::Gptq, QuantMethod::AwqGptq}) {
    QuantizeOptions o = options(f, method_name(m), m);
    o.report_path = (f.root / (std::string(method_name(m)) + ".json")).string();
    const QuantizeReport r = quantize_model(o);
    EXPECT_EQ(r.method, method_name(m));
    ASSERT_EQ(r.blocks.size(), 2u);
    for (const auto& b : r.blocks) {
      EXPECT_EQ(b.gptq.size(), 7u);  // q, k, v, o, gate, up, down
      for (const auto& g : b.gptq) {
        EXPECT_LT(g.loss, g.rtn_loss)
            << method_name(m) << " layer " << b.layer << " " << linear_role_name(g.role);
        EXPECT_DOUBLE_EQ(g.damp, 0.01);
      }
      EXPECT_EQ(b.groups.empty(), m == QuantMethod::Gptq);
      EXPECT_EQ(b.clips.empty(), m == QuantMethod::Gptq);
    }
    EXPECT_GT(r.times.gptq, 0);
    const auto j = nlohmann::json::parse(read_text_file(o.report_path));
    EXPECT_EQ(j["method"], method_name(m));
    EXPECT_TRUE(j["seconds"].contains("gptq"));
    const auto& lin = j["layers"][0]["linears"][0];
    EXPECT_LT(lin["gptq_loss_vs_rtn"].get<double>(), 1.0);
  }
}

// A saved AWQ search replayed under awq-gptq (the calibration still runs: GPTQ needs its inputs)
// gives the bytes of the run that searched.
TEST(GptqPipeline, LoadSearchWithGptqReproducesTheRun) {
  const Fixture f = make("gptq_load");
  QuantizeOptions o = options(f, "searched", QuantMethod::AwqGptq);
  o.save_search = (f.root / "search.json").string();
  quantize_model(o);
  QuantizeOptions r = options(f, "replayed", QuantMethod::AwqGptq);
  r.load_search = o.save_search;
  quantize_model(r);
  test::expect_same_dirs(f.root / "searched", f.root / "replayed");
  // Without calibration it is refused, before any output exists.
  r.calib_tokens = nullptr;
  r.out_dir = (f.root / "nocalib").string();
  try {
    quantize_model(r);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--calib is required for --method awq-gptq"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(f.root / "nocalib"));
}

// An interrupted GPTQ run keeps each finished block's quantized linears (their calibration inputs
// are gone once the next block runs) and the re-run writes the bytes of an uninterrupted one; a
// damaged kept file is detected and the run starts over.
TEST(GptqPipeline, InterruptedRunResumesByteIdentical) {
  const Fixture f = make("gptq_resume");
  for (const QuantMethod m : {QuantMethod::Gptq, QuantMethod::AwqGptq}) {
    const std::string tag = method_name(m);
    SCOPED_TRACE(tag);
    quantize_model(options(f, tag + "_full", m));
    const QuantizeOptions o = options(f, tag, m);
    const fs::path stage = o.out_dir + ".resume";
    const auto interrupt_after = [&](const char* point) {
      const InterruptScope scope;
      ::setenv("AWQ_TEST_KILL_AT", point, 1);
      ::setenv("AWQ_TEST_KILL_SIGNAL", "2", 1);  // SIGINT
      EXPECT_THROW(quantize_model(o), Interrupted) << point;
      ::unsetenv("AWQ_TEST_KILL_AT");
      ::unsetenv("AWQ_TEST_KILL_SIGNAL");
      EXPECT_FALSE(fs::exists(o.out_dir));
    };
    interrupt_after("kept:0");
    ASSERT_TRUE(fs::exists(stage / "block-0000.q"));
    const QuantizeReport resumed = quantize_model(o);
    EXPECT_EQ(resumed.resumed_blocks, 1);
    test::expect_same_dirs(f.root / (tag + "_full"), o.out_dir);
    EXPECT_FALSE(fs::exists(stage));
    // A flipped byte in a kept block's linears: set aside, started over, the same bytes.
    fs::remove_all(o.out_dir);
    interrupt_after("kept:0");
    std::string q = test::file_bytes(stage / "block-0000.q");
    q[q.size() / 2] ^= 1;
    std::ofstream(stage / "block-0000.q", std::ios::binary | std::ios::trunc) << q;
    const QuantizeReport restarted = quantize_model(o);
    EXPECT_EQ(restarted.resumed_blocks, 0);
    EXPECT_TRUE(fs::exists(stage.string() + ".stale"));
    test::expect_same_dirs(f.root / (tag + "_full"), o.out_dir);
  }
}

// Shards of a GPTQ run keep their blocks' quantized linears; the merge writes the bytes of one run.
TEST(GptqPipeline, ShardsMergeIntoTheBytesOfOneRun) {
  const Fixture f = make("gptq_shards");
  for (const QuantMethod m : {QuantMethod::Gptq, QuantMethod::AwqGptq}) {
    const std::string tag = method_name(m);
    SCOPED_TRACE(tag);
    quantize_model(options(f, tag + "_full", m));
    std::vector<std::string> shards;
    for (int k = 1; k <= 2; ++k) {
      QuantizeOptions o = options(f, tag + "_shard" + std::to_string(k), m);
      o.shard_index = k;
      o.shard_count = 2;
      quantize_model(o);
      shards.push_back(o.out_dir);
    }
    EXPECT_TRUE(fs::exists(fs::path(shards[1]) / "block-0001.q"));
    EXPECT_FALSE(fs::exists(fs::path(shards[0]) / "block-0001.q"));
    QuantizeOptions mo =
        merge_options({shards[1], shards[0]}, "", (f.root / (tag + "_merged")).string());
    mo.progress = false;
    mo.quiet = true;
    EXPECT_EQ(mo.method, m);
    quantize_model(mo);
    test::expect_same_dirs(f.root / (tag + "_full"), f.root / (tag + "_merged"));
  }
}

TEST(GptqPipeline, RefusedCombinationsNameTheOption) {
  const Fixture f = make("gptq_bad");
  auto message = [&](QuantizeOptions o) {
    try {
      quantize_model(o);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  QuantizeOptions a = options(f, "a", QuantMethod::Rtn);
  a.calib_tokens = nullptr;
  a.shard_index = 1;
  a.shard_count = 2;
  EXPECT_NE(message(a).find("--shard splits an AWQ or GPTQ run; it cannot be combined with "
                            "--method rtn"),
            std::string::npos)
      << message(a);
  QuantizeOptions b = options(f, "b", QuantMethod::Gptq);
  b.save_search = (f.root / "s.json").string();
  EXPECT_NE(message(b).find("--save-search: --method gptq searches no scales"), std::string::npos);
  QuantizeOptions c = options(f, "c", QuantMethod::AwqGptq);
  c.format = OutputFormat::FakeQuant;
  c.no_quantize = true;
  EXPECT_NE(message(c).find("--no-quantize"), std::string::npos);
  EXPECT_THROW(parse_method("gptq2"), Error);
  EXPECT_EQ(parse_method("awq-gptq"), QuantMethod::AwqGptq);
  for (const char* d : {"a", "b", "c"}) EXPECT_FALSE(fs::exists(f.root / d)) << d;
}

}  // namespace
}  // namespace awq
