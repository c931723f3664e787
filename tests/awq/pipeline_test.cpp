#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "awq/pipeline.h"
#include "awq/shard.h"
#include "base/error.h"
#include "base/files.h"
#include "base/half.h"
#include "base/interrupt.h"
#include "base/thread_pool.h"
#include "formats/checkpoint.h"
#include "model/architecture.h"
#include "model/config.h"
#include "quant/awq_gemm_pack.h"
#include "quant/quantize.h"
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

Fixture make(const std::string& name, test::TinyModelOptions mo = {}) {
  Fixture f;
  f.root = test::scratch_dir(name);
  f.model = (f.root / "model").string();
  test::write_tiny_model(f.model, mo);
  f.calib = test::random_calib(4, 16, mo.vocab, 3);
  return f;
}

QuantizeOptions options(const Fixture& f, const std::string& out) {
  QuantizeOptions o;
  o.model_dir = f.model;
  o.out_dir = (f.root / out).string();
  o.spec = QuantSpec{4, 16, true};
  o.calib_tokens = &f.calib;
  o.progress = false;
  o.quiet = true;
  return o;
}

std::vector<uint16_t> f16_bits(const TensorInfo& t) {
  EXPECT_EQ(t.dtype, DType::F16) << t.name;
  std::vector<uint16_t> v(size_t(t.numel()));
  std::memcpy(v.data(), t.data, v.size() * 2);
  return v;
}

template <typename T>
std::vector<T> raw(const TensorInfo& t) {
  std::vector<T> v(t.nbytes / sizeof(T));
  std::memcpy(v.data(), t.data, t.nbytes);
  return v;
}

TEST(Pipeline, AutoAwqReadBackEqualsFakeQuantWeights) {
  const Fixture f = make("roundtrip");
  QuantizeOptions o = options(f, "awq");
  const QuantizeReport rep = quantize_model(o);
  EXPECT_EQ(rep.calib_blocks, 4);
  EXPECT_FALSE(
      rep.warnings.empty());  // 32- and 48-wide tensors cannot split for vLLM's Marlin kernels
  o.out_dir = (f.root / "fake").string();
  o.format = OutputFormat::FakeQuant;
  quantize_model(o);

  const Checkpoint a = Checkpoint::open((f.root / "awq").string());
  const Checkpoint q = Checkpoint::open((f.root / "fake").string());
  const ModelConfig cfg = ModelConfig::load((f.root / "awq").string());
  const Architecture& arch = *find_architecture(cfg.model_type);
  ASSERT_TRUE(cfg.quant.has_value());
  EXPECT_EQ(cfg.quant->bits, 4);
  EXPECT_EQ(cfg.quant->group_size, 16);
  EXPECT_TRUE(cfg.quant->zero_point);
  EXPECT_EQ(cfg.torch_dtype, "float16");
  const auto raw_cfg =
      nlohmann::json::parse(read_text_file((f.root / "awq" / "config.json").string()));
  EXPECT_EQ(raw_cfg["quantization_config"]["quant_method"], "awq");
  EXPECT_EQ(raw_cfg["quantization_config"]["version"], "gemm");
  EXPECT_TRUE(fs::exists(f.root / "awq" / "tokenizer_config.json"));
  EXPECT_FALSE(ModelConfig::load((f.root / "fake").string()).quant.has_value());

  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    for (NormRole n : {NormRole::Attn, NormRole::Mlp})
      EXPECT_EQ(f16_bits(a.get(arch.norm_name(l, n))), f16_bits(q.get(arch.norm_name(l, n))));
    for (LinearRole r : kAllLinearRoles) {
      const std::string name = arch.linear_name(l, r);
      EXPECT_FALSE(a.has(name + ".weight"));
      const TensorInfo& qw = a.get(name + ".qweight");
      const TensorInfo& qz = a.get(name + ".qzeros");
      const TensorInfo& sc = a.get(name + ".scales");
      const TensorInfo& fq = q.get(name + ".weight");
      const int64_t N = fq.shape[0], K = fq.shape[1];
      EXPECT_EQ(qw.dtype, DType::I32);
      EXPECT_EQ(qw.shape, (std::vector<int64_t>{K, N / 8}));
      EXPECT_EQ(qz.dtype, DType::I32);
      EXPECT_EQ(qz.shape, (std::vector<int64_t>{K / 16, N / 8}));
      EXPECT_EQ(sc.dtype, DType::F16);
      EXPECT_EQ(sc.shape, (std::vector<int64_t>{K / 16, N}));
      AwqGemmTensors t;
      t.K = K;
      t.N = N;
      t.group = 16;
      t.qweight = raw<int32_t>(qw);
      t.qzeros = raw<int32_t>(qz);
      t.scales_f16 = raw<uint16_t>(sc);
      const QuantizedMatrix m = unpack_awq_gemm(t, true, name);
      std::vector<float> deq(size_t(N * K));
      m.dequantize(deq.data());
      const std::vector<uint16_t> want = f16_bits(fq);
      int64_t mismatches = 0;
      for (size_t i = 0; i < deq.size(); ++i) mismatches += f32_to_f16(deq[i]) != want[i];
      EXPECT_EQ(mismatches, 0) << name;
    }
  }
  EXPECT_EQ(f16_bits(a.get("model.embed_tokens.weight")),
            f16_bits(q.get("model.embed_tokens.weight")));
  EXPECT_TRUE(a.has("lm_head.weight"));
}

TEST(Pipeline, ByteIdenticalForOneAndTwoThreadsAndRepeatedRuns) {
  test::TinyModelOptions mo;
  mo.kv_heads = 2;
  Fixture f = make("determinism", mo);
  f.calib = test::random_calib(12, 16, mo.vocab, 5);  // enough sequences to screen on 4 of them
  const int saved = num_threads();
  QuantizeOptions o = options(f, "t1");
  o.scale_screen = 0.25;
  set_num_threads(1);
  const QuantizeReport rep = quantize_model(o);
  EXPECT_EQ(rep.screen_seqs, 4);
  EXPECT_EQ(rep.finalists, 4);
  set_num_threads(2);
  o.out_dir = (f.root / "t2").string();
  quantize_model(o);
  o.out_dir = (f.root / "t2b").string();
  quantize_model(o);
  set_num_threads(saved);
  test::expect_same_dirs(f.root / "t1", f.root / "t2");
  test::expect_same_dirs(f.root / "t2", f.root / "t2b");
}

TEST(Pipeline, LoadSearchReproducesTheSavedRun) {
  const Fixture f = make("loadsearch");
  QuantizeOptions o = options(f, "searched");
  o.clip_opts.asymmetric = false;  // AutoAWQ's symmetric clipping (the default is asymmetric)
  o.save_search = (f.root / "search.json").string();
  o.report_path = (f.root / "report.json").string();
  const QuantizeReport rep = quantize_model(o);
  ASSERT_EQ(rep.blocks.size(), 2u);
  QuantizeOptions r = options(f, "replayed");
  r.calib_tokens = nullptr;  // no calibration at all
  r.load_search = o.save_search;
  quantize_model(r);
  test::expect_same_dirs(f.root / "searched", f.root / "replayed");
  // The report holds the choices, the stage times and the peak memory.
  const auto j = nlohmann::json::parse(read_text_file(o.report_path));
  EXPECT_EQ(j["layers"].size(), 2u);
  EXPECT_GT(j["peak_rss_bytes"].get<int64_t>(), 0);
  EXPECT_GT(j["scale_search_gflop"].get<double>(), 0);
  for (const char* k :
       {"calib", "capture", "scale_search", "clip_search", "quantize", "write", "total"})
    EXPECT_TRUE(j["seconds"].contains(k)) << k;
  // Asymmetric clip bounds: saved with their lower indices, replayed to the same bytes, and not
  // the symmetric run's output.
  QuantizeOptions a = options(f, "asym");
  ASSERT_TRUE(a.clip_opts.asymmetric);
  a.save_search = (f.root / "search-asym.json").string();
  quantize_model(a);
  const auto sa = nlohmann::json::parse(read_text_file(a.save_search));
  EXPECT_TRUE(sa["layers"][0]["clips"][0].contains("shrink_lo"));
  EXPECT_FALSE(
      nlohmann::json::parse(read_text_file(o.save_search))["layers"][0]["clips"][0].contains(
          "shrink_lo"));
  EXPECT_TRUE(test::file_bytes(f.root / "asym" / "model.safetensors") !=
              test::file_bytes(f.root / "searched" / "model.safetensors"));
  QuantizeOptions ar = options(f, "asym-replayed");
  ar.calib_tokens = nullptr;
  ar.load_search = a.save_search;
  quantize_model(ar);
  test::expect_same_dirs(f.root / "asym", f.root / "asym-replayed");
  // A search made with other quantizer settings is refused.
  r.spec.group_size = 32;
  r.out_dir = (f.root / "bad").string();
  EXPECT_THROW(quantize_model(r), Error);
  EXPECT_FALSE(fs::exists(f.root / "bad"));
}

TEST(Pipeline, RtnIsPlainQuantizationOfTheOriginalWeights) {
  const Fixture f = make("rtn");
  QuantizeOptions o = options(f, "rtn");
  o.method = QuantMethod::Rtn;
  o.calib_tokens = nullptr;
  o.format = OutputFormat::FakeQuant;
  o.spec = QuantSpec{3, 16, false};
  quantize_model(o);
  const Checkpoint in = Checkpoint::open(f.model);
  const Checkpoint out = Checkpoint::open(o.out_dir);
  const std::string name = "model.layers.1.mlp.down_proj.weight";
  Mat w = in.read_mat(name, 32, 48);
  fake_quantize(w.data.data(), 32, 48, o.spec);
  std::vector<uint16_t> want(w.data.size());
  for (size_t i = 0; i < want.size(); ++i) want[i] = f32_to_f16(w.data[i]);
  EXPECT_EQ(f16_bits(out.get(name)), want);
  // Norms untouched (no scales folded) apart from the f16 conversion.
  const auto n_in = in.read_vec("model.layers.0.input_layernorm.weight", 32);
  const auto n_out = out.read_vec("model.layers.0.input_layernorm.weight", 32);
  for (size_t i = 0; i < n_in.size(); ++i) EXPECT_EQ(n_out[i], round_to_f16(n_in[i]));
}

TEST(Pipeline, PadIntermediateAndNoQuantizeKeepTheFunction) {
  const Fixture f = make("pad");
  QuantizeOptions o = options(f, "padded");
  o.pad_intermediate = 64;
  o.format = OutputFormat::FakeQuant;
  o.no_quantize = true;
  quantize_model(o);
  const ModelConfig cfg = ModelConfig::load(o.out_dir);
  EXPECT_EQ(cfg.intermediate_size, 64);
  const Checkpoint out = Checkpoint::open(o.out_dir);
  EXPECT_EQ(out.get("model.layers.0.mlp.gate_proj.weight").shape, (std::vector<int64_t>{64, 32}));
  EXPECT_EQ(out.get("model.layers.0.mlp.down_proj.weight").shape, (std::vector<int64_t>{32, 64}));
  // Padded gate rows stay zero; folded weights differ from the input (scales were applied).
  const Mat g = out.read_mat("model.layers.0.mlp.gate_proj.weight", 64, 32);
  for (int64_t r = 48; r < 64; ++r)
    for (int64_t c = 0; c < 32; ++c) EXPECT_EQ(g.at(r, c), 0.0f);
  // With quantization and AutoAWQ output too (the padded width is a multiple of 8 and 16).
  o.out_dir = (f.root / "padded_awq").string();
  o.format = OutputFormat::AutoAwq;
  o.no_quantize = false;
  o.propagate_quantized = true;
  quantize_model(o);
  EXPECT_EQ(Checkpoint::open(o.out_dir).get("model.layers.1.mlp.down_proj.qweight").shape,
            (std::vector<int64_t>{64, 4}));
}

// Symmetric weights in the GEMM layout: codes q + 8 with every zero point 8, which both readings of
// zero_point=false (AutoAWQ's kernels use qzeros; Marlin's uint4b8 ignores them) dequantize alike.
TEST(Pipeline, SymmetricAutoAwqStoresZeroPointEight) {
  const Fixture f = make("symmetric");
  QuantizeOptions o = options(f, "sym");
  o.spec.zero_point = false;
  quantize_model(o);
  const ModelConfig cfg = ModelConfig::load(o.out_dir);
  ASSERT_TRUE(cfg.quant.has_value());
  EXPECT_FALSE(cfg.quant->zero_point);
  const Checkpoint c = Checkpoint::open(o.out_dir);
  const std::string name = "model.layers.0.mlp.up_proj";
  AwqGemmTensors t;
  t.K = 32;
  t.N = 48;
  t.group = 16;
  t.qweight = raw<int32_t>(c.get(name + ".qweight"));
  t.qzeros = raw<int32_t>(c.get(name + ".qzeros"));
  t.scales_f16 = raw<uint16_t>(c.get(name + ".scales"));
  for (int32_t z : t.qzeros) EXPECT_EQ(uint32_t(z), 0x88888888u);
  const QuantizedMatrix m = unpack_awq_gemm(t, false, name);
  EXPECT_EQ(m.zeros, std::vector<uint8_t>(m.zeros.size(), 8));
}

TEST(Pipeline, BadOptionsFailBeforeAnyOutput) {
  const Fixture f = make("errors");
  auto expect_error = [&](QuantizeOptions o, const std::string& needle) {
    try {
      quantize_model(o);
      ADD_FAILURE() << "expected an error containing '" << needle << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(o.out_dir)) << o.out_dir;
  };
  QuantizeOptions o = options(f, "out");
  o.spec.group_size = 24;  // divides neither 32 nor 48
  expect_error(o, "model.layers.0.self_attn.q_proj");
  o = options(f, "out");
  o.spec.bits = 3;
  expect_error(o, "--format fake-quant");
  o = options(f, "out");
  o.out_dir = f.model;
  try {
    quantize_model(o);
    ADD_FAILURE() << "writing over the input must fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("input"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(fs::exists(fs::path(f.model) / "model.safetensors"));
  o = options(f, "out");
  o.calib_tokens = nullptr;
  o.calib = (f.root / "missing.txt").string();
  expect_error(o, "missing.txt");
  o = options(f, "out");
  o.no_quantize = true;  // needs fake-quant
  expect_error(o, "fake-quant");
  for (double screen : {0.0, 1.5}) {
    o = options(f, "out");
    o.scale_screen = screen;
    expect_error(o, "--scale-screen");
  }
  o = options(f, "out");
  o.spec.f16_scales = false;  // the AutoAWQ layout stores f16 scales
  expect_error(o, "--scale-dtype");
  o = options(f, "out");
  o.scale_finalists = 0;
  expect_error(o, "--scale-finalists");
  o = options(f, "out");
  o.scale_keep = -1;
  expect_error(o, "--scale-keep");
  o = options(f, "out");
  o.scale_grid = 0;
  expect_error(o, "--scale-grid");
}

// The resume stage in process (the CLI tests in tests/cli/resume_test.cpp kill the real binary;
// this one is small enough for the sanitizer run): a run stopped by SIGINT right after block 1
// was kept leaves the stage and no output; the next run takes blocks 0-1 from it and writes the
// same bytes as a run never stopped. A damaged stage is set aside and the run starts over.
TEST(Pipeline, InterruptedRunResumesFromItsStageByteIdentical) {
  test::TinyModelOptions mo;
  mo.layers = 4;
  mo.kv_heads = 2;
  const Fixture f = make("resume", mo);
  const QuantizeReport full = quantize_model(options(f, "full"));
  EXPECT_EQ(full.resumed_blocks, 0);
  const QuantizeOptions o = options(f, "q");
  const fs::path stage = o.out_dir + ".resume";
  const auto interrupt_after = [&](const char* point) {
    const InterruptScope scope;
    ::setenv("AWQ_TEST_KILL_AT", point, 1);
    ::setenv("AWQ_TEST_KILL_SIGNAL", "2", 1);  // SIGINT
    EXPECT_THROW(quantize_model(o), Interrupted) << point;
    ::unsetenv("AWQ_TEST_KILL_AT");
    ::unsetenv("AWQ_TEST_KILL_SIGNAL");
    EXPECT_FALSE(fs::exists(o.out_dir));
    EXPECT_TRUE(fs::exists(stage / "block-0000.json"));
  };
  interrupt_after("kept:1");
  const QuantizeReport resumed = quantize_model(o);
  EXPECT_EQ(resumed.resumed_blocks, 2);
  ASSERT_EQ(resumed.blocks.size(), 4u);
  // The kept results come back whole: the report of the resumed blocks is the searched one.
  for (size_t l = 0; l < 2; ++l)
    for (size_t g = 0; g < full.blocks[l].groups.size(); ++g) {
      const GroupResult &a = full.blocks[l].groups[g], &b = resumed.blocks[l].groups[g];
      EXPECT_EQ(a.applied, b.applied);
      EXPECT_EQ(a.scales, b.scales);
      EXPECT_EQ(a.loss, b.loss);
      EXPECT_EQ(a.flops, b.flops);
    }
  test::expect_same_dirs(f.root / "full", o.out_dir);
  EXPECT_FALSE(fs::exists(stage));

  // A flipped byte in the kept activations: reported, set aside, started over.
  fs::remove_all(o.out_dir);
  interrupt_after("kept:2");
  std::string acts = test::file_bytes(stage / "activations.bin");
  acts[acts.size() / 2] ^= 1;
  std::ofstream(stage / "activations.bin", std::ios::binary | std::ios::trunc) << acts;
  const QuantizeReport restarted = quantize_model(o);
  EXPECT_EQ(restarted.resumed_blocks, 0);
  EXPECT_TRUE(fs::exists(stage.string() + ".stale"));
  test::expect_same_dirs(f.root / "full", o.out_dir);
}

// Shards in process (tests/cli/shard_test.cpp runs the binary with every error): two shards of a
// 4-block model, merged, are the bytes of one run, and the merged report keeps the searched
// results.
TEST(Pipeline, ShardsMergeIntoTheBytesOfOneRun) {
  test::TinyModelOptions mo;
  mo.layers = 4;
  mo.kv_heads = 2;
  const Fixture f = make("shards", mo);
  const QuantizeReport full = quantize_model(options(f, "full"));
  std::vector<std::string> shards;
  for (int k = 1; k <= 2; ++k) {
    QuantizeOptions o = options(f, "shard" + std::to_string(k));
    o.shard_index = k;
    o.shard_count = 2;
    const QuantizeReport r = quantize_model(o);
    EXPECT_EQ(r.blocks.size(), 2u);
    // The ETA counts only the shard's own blocks (shard 2 forwards blocks 0-1 first, cheaply):
    // after its first block, one block's time for the one left; after the last, nothing.
    ASSERT_EQ(r.block_times.size(), 2u);
    const auto& b = r.block_times;
    EXPECT_EQ(b[0].layer, 2 * k - 2);
    EXPECT_EQ(b[1].layer, 2 * k - 1);
    EXPECT_GT(b[0].eta_s, 0);
    EXPECT_EQ(b[1].eta_s, 0);
    EXPECT_GT(b[1].done_s, b[0].done_s);
    // Shard 2's first block finishes after two cheap forwards; counting them as blocks done
    // would predict a third of the time elapsed.
    if (k == 2) {
      EXPECT_GT(b[0].eta_s, 0.5 * b[0].done_s);
    }
    shards.push_back(o.out_dir);
  }
  EXPECT_FALSE(fs::exists(f.root / "shard1" / "block-0002.json"));
  EXPECT_TRUE(fs::exists(f.root / "shard2" / "block-0002.json"));
  QuantizeOptions m = merge_options({shards[1], shards[0]}, "", (f.root / "merged").string());
  m.progress = false;
  m.quiet = true;
  const QuantizeReport merged = quantize_model(m);
  test::expect_same_dirs(f.root / "full", f.root / "merged");
  ASSERT_EQ(merged.blocks.size(), 4u);
  for (size_t l = 0; l < 4; ++l) {
    ASSERT_EQ(merged.blocks[l].groups.size(), full.blocks[l].groups.size());
    for (size_t g = 0; g < full.blocks[l].groups.size(); ++g)
      EXPECT_EQ(merged.blocks[l].groups[g].scales, full.blocks[l].groups[g].scales);
  }
  // Only one shard: an error naming the missing one, nothing written.
  m.merge_shards = {shards[0]};
  m.out_dir = (f.root / "half").string();
  try {
    quantize_model(m);
    ADD_FAILURE() << "merging one of two shards succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("shard 2/2 is missing"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(m.out_dir));
}

}  // namespace
}  // namespace awq
