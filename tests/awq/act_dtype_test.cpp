// --act-dtype: activations kept in 16 bits (awq/act_store.h, awq/kept_capture.h). The kept path
// with f32 storage must reproduce the block search exactly (the orchestration adds nothing); in
// bf16 the pipeline must keep half the bytes, choose mostly the same scales as f32, stay
// thread-count invariant and resume byte-identically.
#include <gtest/gtest.h>

#include <filesystem>

#include "awq/act_store.h"
#include "awq/block_search.h"
#include "awq/fold.h"
#include "awq/gram_loss.h"
#include "awq/kept_capture.h"
#include "awq/pipeline.h"
#include "awq/scales.h"
#include "base/error.h"
#include "base/half.h"
#include "base/interrupt.h"
#include "base/thread_pool.h"
#include "formats/checkpoint.h"
#include "model/block.h"
#include "test_util.h"
#include "tiny_model.h"

namespace awq {
namespace {
namespace fs = std::filesystem;

Mat random_mat(int64_t rows, int64_t cols, uint64_t seed, float scale) {
  Mat x(rows, cols);
  uint64_t s = seed;
  for (auto& v : x.data) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    v = scale * float(int64_t(s >> 40) % 2001 - 1000) / 997.0f;
  }
  return x;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ActDtype, ParsesItsNamesAndRejectsOthers) {
  EXPECT_EQ(parse_act_dtype("f32"), ActDtype::F32);
  EXPECT_EQ(parse_act_dtype("bf16"), ActDtype::Bf16);
  EXPECT_EQ(parse_act_dtype("f16"), ActDtype::F16);
  for (const char* bad : {"fp16", "BF16", "", "f8"}) {
    const std::string e = error_of([&] { parse_act_dtype(bad); });
    EXPECT_NE(e.find(std::string("--act-dtype ") + bad + ":"), std::string::npos) << e;
    EXPECT_NE(e.find("bf16"), std::string::npos) << e;
  }
}

TEST(ActMat, RoundsOnceAndComesBackExactly) {
  const Mat x = random_mat(37, 70, 5, 300.0f);  // odd sizes: conversion chunks end mid-row
  for (ActDtype d : {ActDtype::Bf16, ActDtype::F16}) {
    ActMat a(d);
    a.put(Mat(x), "x");
    EXPECT_EQ(a.bytes(), size_t(x.size()) * 2);
    EXPECT_EQ(a.rows(), 37);
    Mat y = a.take();
    EXPECT_TRUE(a.empty());
    ASSERT_EQ(y.rows, 37);
    ASSERT_EQ(y.cols, 70);
    for (int64_t i = 0; i < x.size(); ++i) {
      const float v = x.data[size_t(i)];
      const float r = d == ActDtype::Bf16 ? bf16_to_f32(f32_to_bf16(v)) : round_to_f16(v);
      ASSERT_EQ(y.data[size_t(i)], r) << i;
    }
    // Rounding a value that came from 16 bits changes nothing.
    const Mat y0 = y;
    a.put(std::move(y), "y");
    EXPECT_EQ(a.take().data, y0.data);
  }
  ActMat f(ActDtype::F32);
  f.put(Mat(x), "x");
  EXPECT_EQ(f.bytes(), size_t(x.size()) * 4);
  EXPECT_EQ(f.take().data, x.data);
}

TEST(ActMat, F16OverflowNamesTheMatrix) {
  Mat x = random_mat(4, 8, 1, 1.0f);
  x.at(2, 3) = 70000.0f;  // Gemma's residual stream reaches such values
  ActMat a(ActDtype::F16);
  const std::string e = error_of([&] { a.put(Mat(x), "layer 3 down_proj input"); });
  EXPECT_NE(e.find("layer 3 down_proj input"), std::string::npos) << e;
  EXPECT_NE(e.find("--act-dtype bf16"), std::string::npos) << e;
  ActMat b(ActDtype::Bf16);
  b.put(std::move(x), "x");  // bf16 has f32's range
  EXPECT_EQ(b.take().at(2, 3), 70144.0f);
}

// Reading rows and dividing columns in place: exactly what take / copy / divide / put give, in
// every dtype, without the whole matrix ever in f32.
TEST(ActMat, ReadRowsAndDivideColumnsInPlaceAreTakeAndPut) {
  const Mat x = random_mat(37, 70, 9, 30.0f);
  std::vector<float> s(70);
  for (size_t j = 0; j < s.size(); ++j) s[j] = 0.3f + 0.05f * float(j);
  for (ActDtype d : {ActDtype::F32, ActDtype::Bf16, ActDtype::F16}) {
    ActMat a(d);
    a.put(Mat(x), "x");
    ActMat b(d);
    b.put(Mat(x), "x");
    const Mat whole = b.take();
    const RowSource rows = a.rows_source();
    EXPECT_EQ(rows.rows, 37);
    EXPECT_EQ(rows.cols, 70);
    Mat part;
    rows.read_into(5, 11, part);
    ASSERT_EQ(part.rows, 11);
    for (int64_t i = 0; i < part.size(); ++i)
      ASSERT_EQ(part.data[size_t(i)], whole.data[size_t(5 * 70 + i)]) << act_dtype_name(d) << i;
    a.divide_columns(s, "x");
    Mat divided = whole;
    divide_columns(divided, s);
    b.put(std::move(divided), "x / s");
    EXPECT_EQ(a.take().data, b.take().data) << act_dtype_name(d);
  }
  ActMat h(ActDtype::F16);
  h.put(Mat(x), "x");
  std::vector<float> tiny(70, 1e-4f);
  const std::string e = error_of([&] { h.divide_columns(tiny, "layer 2 o_proj input / s"); });
  EXPECT_NE(e.find("layer 2 o_proj input / s"), std::string::npos) << e;
}

// The Gram matrices from rows read in chunks equal those of the whole matrix: the scale search's
// (input_gram, bit for bit) and the clip objective's factors (bit for bit where the whole-matrix
// version sums chunks too: few groups; to rounding where it sums each group in one call).
TEST(RowSource, ChunkedGramsEqualTheWholeMatrixs) {
  // Ragged: the scale search's Gram reads 2048 rows, then 773; the clip factors' 256 at a time,
  // the last 5.
  const Mat x = random_mat(2048 + 3 * 256 + 5, 512, 11, 1.0f);
  RowSource src;
  src.rows = x.rows;
  src.cols = x.cols;
  int reads = 0;
  src.read = [&](int64_t r0, int64_t n, float* dst) {
    ++reads;
    std::copy(x.row(r0), x.row(r0) + n * x.cols, dst);
  };
  EXPECT_EQ(input_gram(src).g, input_gram(x).g);
  EXPECT_EQ(reads, 2);
  for (int group : {256, 32}) {  // 2 groups (the chunked branch), 16 groups (one call per group)
    const QuantSpec spec{4, group, true};
    reads = 0;
    const ClipInputs a = prepare_clip_inputs(src, spec, "x", /*read_bytes=*/1);
    EXPECT_EQ(reads, 12);  // one Gram chunk (256 rows) per read
    const ClipInputs b = prepare_clip_inputs(x.data.data(), x.rows, x.cols, spec, "x");
    ASSERT_TRUE(a.triangular && b.triangular);
    ASSERT_EQ(a.u.size(), b.u.size());
    if (group == 256) {
      EXPECT_EQ(a.u, b.u);
    } else {
      for (size_t i = 0; i < a.u.size(); ++i)
        ASSERT_NEAR(a.u[i], b.u[i], 1e-5f * (1.0f + std::abs(b.u[i]))) << i;
    }
  }
  Mat bad = x;
  bad.at(600, 7) = std::numeric_limits<float>::quiet_NaN();
  src.read = [&](int64_t r0, int64_t n, float* dst) {
    std::copy(bad.row(r0), bad.row(r0) + n * bad.cols, dst);
  };
  const std::string e = error_of([&] { prepare_clip_inputs(src, QuantSpec{4, 32, true}, "t"); });
  EXPECT_NE(e.find("token 600, channel 7"), std::string::npos) << e;
}

// The kept path with f32 storage computes what the block search computes, bit for bit: each
// group searched alone, its reference recomputed, the clips merged back in role order.
TEST(KeptCapture, F32StorageReproducesTheBlockSearch) {
  const std::string dir = (test::scratch_dir("kept-f32") / "model").string();
  test::write_tiny_model(dir, {});
  const Checkpoint ck = Checkpoint::open(dir);
  const ModelConfig cfg = ModelConfig::load(dir);
  const Architecture& arch = *find_architecture(cfg.model_type);
  const int64_t n_seq = 8, T = 16;
  const Mat x = random_mat(n_seq * T, cfg.hidden_size, 7, 2.0f);
  ScaleSearchOptions opt;
  opt.spec = QuantSpec{4, 16, true};
  opt.clip_aware = true;
  opt.screen_seqs = 4;
  const ClipOptions copt;

  BlockWeights w = load_block_f32(ck, cfg, arch, 0);
  BlockCapture cap;
  Mat y;
  block_forward(cfg, w, x, n_seq, T, y, &cap);
  const std::vector<GroupResult> groups = search_block_scales(cfg, arch, 0, w, cap, n_seq, T, opt);
  apply_block_scales(arch, 0, w, &cap, groups);
  const std::vector<ClipResult> clips = search_block_clips(arch, 0, w, cap, opt.spec, copt);

  BlockWeights wk = load_block_f32(ck, cfg, arch, 0);
  BlockCapture kcap;
  KeptCapture kept(ActDtype::F32);
  keep_capture(kcap, kept, 0);
  Mat yk;
  block_forward(cfg, wk, x, n_seq, T, yk, &kcap);
  EXPECT_EQ(yk.data, y.data);
  EXPECT_TRUE(kcap.attn_out.empty() && kcap.down_in.empty());  // moved into `kept` or dropped
  EXPECT_EQ(kept.down_in.rows(), n_seq * T);
  const std::vector<GroupResult> kgroups =
      search_kept_scales(cfg, arch, 0, wk, kept, n_seq, T, opt);
  ASSERT_EQ(kgroups.size(), groups.size());
  int applied = 0;
  for (size_t i = 0; i < groups.size(); ++i) {
    EXPECT_EQ(kgroups[i].name, groups[i].name);
    EXPECT_EQ(kgroups[i].applied, groups[i].applied) << groups[i].name;
    EXPECT_EQ(kgroups[i].choice.label(), groups[i].choice.label()) << groups[i].name;
    EXPECT_EQ(kgroups[i].scales, groups[i].scales) << groups[i].name;
    EXPECT_EQ(kgroups[i].loss, groups[i].loss) << groups[i].name;
    applied += groups[i].applied;
  }
  EXPECT_EQ(applied, 4);
  apply_kept_scales(arch, 0, wk, kept, kgroups);
  const std::vector<ClipResult> kclips = search_kept_clips(arch, 0, wk, kept, opt.spec, copt, 0);
  ASSERT_EQ(kclips.size(), clips.size());
  for (size_t i = 0; i < clips.size(); ++i) {
    EXPECT_EQ(kclips[i].role, clips[i].role);
    EXPECT_EQ(kclips[i].choice.hi, clips[i].choice.hi);
    EXPECT_EQ(kclips[i].choice.lo, clips[i].choice.lo);
  }
  EXPECT_TRUE(kept.down_in.empty());  // released after its linear's clip search
}

// down_proj's input reaches the kept store a chunk of MLP rows at a time (2304 rows: the MLP's
// chunks of 2048 and 256), never whole in f32: the same values and mean |x| as the whole capture.
TEST(KeptCapture, DownInputArrivesInChunksWithTheWholeCapturesValues) {
  const std::string dir = (test::scratch_dir("kept-chunks") / "model").string();
  test::write_tiny_model(dir, {});
  const Checkpoint ck = Checkpoint::open(dir);
  const ModelConfig cfg = ModelConfig::load(dir);
  const Architecture& arch = *find_architecture(cfg.model_type);
  const int64_t n_seq = 9, T = 256;
  const Mat x = random_mat(n_seq * T, cfg.hidden_size, 3, 2.0f);
  const BlockWeights w = load_block_f32(ck, cfg, arch, 0);
  BlockCapture cap;
  Mat y;
  block_forward(cfg, w, x, n_seq, T, y, &cap);
  ASSERT_EQ(cap.down_in.rows, 2304);
  for (ActDtype d : {ActDtype::F32, ActDtype::Bf16}) {
    BlockCapture kcap;
    KeptCapture kept(d);
    keep_capture(kcap, kept, 0);
    Mat yk;
    block_forward(cfg, w, x, n_seq, T, yk, &kcap);
    EXPECT_EQ(yk.data, y.data);
    EXPECT_TRUE(kcap.down_in.empty());
    EXPECT_EQ(kept.mean[size_t(LinearRole::Down)], mean_abs_columns(cap.down_in));
    const Mat kd = kept.down_in.take();
    ASSERT_EQ(kd.rows, cap.down_in.rows);
    for (int64_t i = 0; i < kd.size(); ++i) {
      const float v = cap.down_in.data[size_t(i)];
      ASSERT_EQ(kd.data[size_t(i)], d == ActDtype::F32 ? v : bf16_to_f32(f32_to_bf16(v))) << i;
    }
  }
}

// Streamed one sequence at a time (what a 70B block's 16-bit inputs need), the search chooses what
// the whole-matrix search chooses: the same scales, the losses to rounding (the chunks' squared
// errors are summed in another order).
TEST(KeptCapture, StreamedOneSequenceAtATimeChoosesTheSame) {
  const std::string dir = (test::scratch_dir("kept-stream") / "model").string();
  test::write_tiny_model(dir, {});
  const Checkpoint ck = Checkpoint::open(dir);
  const ModelConfig cfg = ModelConfig::load(dir);
  const Architecture& arch = *find_architecture(cfg.model_type);
  const int64_t n_seq = 8, T = 16;
  const Mat x = random_mat(n_seq * T, cfg.hidden_size, 7, 2.0f);
  ScaleSearchOptions opt;
  opt.spec = QuantSpec{4, 16, true};
  opt.clip_aware = true;
  opt.screen_seqs = 4;
  opt.keep = 1;  // finalists in two halves: both stream from the middle of the data

  const BlockWeights w = load_block_f32(ck, cfg, arch, 0);
  BlockCapture cap;
  Mat y;
  block_forward(cfg, w, x, n_seq, T, y, &cap);
  const std::vector<GroupResult> groups = search_block_scales(cfg, arch, 0, w, cap, n_seq, T, opt);

  BlockCapture kcap;
  KeptCapture kept(ActDtype::F32);
  keep_capture(kcap, kept, 0);
  block_forward(cfg, w, x, n_seq, T, y, &kcap);
  opt.stream_chunk_bytes = 1;  // one sequence per chunk
  const std::vector<GroupResult> streamed =
      search_kept_scales(cfg, arch, 0, w, kept, n_seq, T, opt);
  ASSERT_EQ(streamed.size(), groups.size());
  for (size_t i = 0; i < groups.size(); ++i) {
    EXPECT_EQ(streamed[i].choice.label(), groups[i].choice.label()) << groups[i].name;
    EXPECT_EQ(streamed[i].scales, groups[i].scales) << groups[i].name;
    EXPECT_NEAR(streamed[i].loss, groups[i].loss, 1e-12 * groups[i].loss) << groups[i].name;
    EXPECT_NEAR(streamed[i].rtn_loss, groups[i].rtn_loss, 1e-12 * groups[i].rtn_loss)
        << groups[i].name;
  }
  EXPECT_EQ(kept.down_in.rows(), n_seq * T);  // read, never taken
}

struct Fixture {
  fs::path root;
  std::string model;
  CalibBlocks calib;
};

Fixture make(const std::string& name, int64_t layers) {
  test::TinyModelOptions mo;
  mo.kv_heads = 2;
  mo.layers = layers;
  Fixture f;
  f.root = test::scratch_dir(name);
  f.model = (f.root / "model").string();
  test::write_tiny_model(f.model, mo);
  f.calib = test::random_calib(12, 16, mo.vocab, 5);
  return f;
}

QuantizeOptions options(const Fixture& f, const std::string& out, ActDtype d) {
  QuantizeOptions o;
  o.model_dir = f.model;
  o.out_dir = (f.root / out).string();
  o.spec = QuantSpec{4, 16, true};
  o.calib_tokens = &f.calib;
  o.scale_screen = 0.25;
  o.act_dtype = d;
  o.progress = false;
  o.quiet = true;
  return o;
}

TEST(Pipeline16, Bf16HalvesTheKeptBytesAgreesWithF32AndIsThreadInvariant) {
  const Fixture f = make("act16", 2);
  const int saved = num_threads();
  set_num_threads(2);
  const QuantizeReport r32 = quantize_model(options(f, "f32", ActDtype::F32));
  const QuantizeReport r16 = quantize_model(options(f, "bf16-t2", ActDtype::Bf16));
  set_num_threads(1);
  quantize_model(options(f, "bf16-t1", ActDtype::Bf16));
  set_num_threads(saved);
  test::expect_same_dirs(f.root / "bf16-t1", f.root / "bf16-t2");
  EXPECT_EQ(r16.act_dtype, "bf16");
  // Tokens x (next input + q/k/v, o, gate/up, down inputs [+ attention, MLP outputs in f32]):
  // 192 x (32 + 32 + 32 + 32 + 48 [+ 32 + 32]).
  EXPECT_EQ(r32.act_bytes, 192 * 240 * 4);
  EXPECT_EQ(r16.act_bytes, 192 * 176 * 2);
  // The rounding moves the search's inputs by 2^-9 relative: most choices stand.
  int same = 0, applied = 0;
  ASSERT_EQ(r16.blocks.size(), r32.blocks.size());
  for (size_t b = 0; b < r32.blocks.size(); ++b)
    for (size_t g = 0; g < r32.blocks[b].groups.size(); ++g) {
      const GroupResult &a = r32.blocks[b].groups[g], &c = r16.blocks[b].groups[g];
      ASSERT_EQ(a.applied, c.applied);
      if (!a.applied) continue;
      ++applied;
      same += a.choice.label() == c.choice.label();
    }
  EXPECT_EQ(applied, 6);  // 3 groups a block: v->o does not apply under GQA
  EXPECT_GE(same, applied - 1);
  // The weights were searched on other inputs: the output differs, a little.
  EXPECT_NE(test::file_bytes(f.root / "f32" / "model.safetensors"),
            test::file_bytes(f.root / "bf16-t2" / "model.safetensors"));
  const QuantizeReport r16h = quantize_model(options(f, "f16", ActDtype::F16));
  EXPECT_EQ(r16h.act_bytes, r16.act_bytes);
}

TEST(Pipeline16, RefusesGptqAndResumesByteIdentical) {
  const Fixture f = make("act16-resume", 4);
  QuantizeOptions g = options(f, "gptq", ActDtype::Bf16);
  g.method = QuantMethod::Gptq;
  const std::string e = error_of([&] { quantize_model(g); });
  EXPECT_NE(e.find("--act-dtype bf16"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(g.out_dir));

  quantize_model(options(f, "full", ActDtype::Bf16));
  const QuantizeOptions o = options(f, "q", ActDtype::Bf16);
  const auto interrupt_after_block_1 = [&] {
    const InterruptScope scope;
    ::setenv("AWQ_TEST_KILL_AT", "kept:1", 1);
    ::setenv("AWQ_TEST_KILL_SIGNAL", "2", 1);  // SIGINT
    EXPECT_THROW(quantize_model(o), Interrupted);
    ::unsetenv("AWQ_TEST_KILL_AT");
    ::unsetenv("AWQ_TEST_KILL_SIGNAL");
    EXPECT_FALSE(fs::exists(o.out_dir));
  };
  interrupt_after_block_1();
  // The same command in f32 does not take the bf16 blocks (the option is in the fingerprint).
  QuantizeOptions o32 = o;
  o32.act_dtype = ActDtype::F32;
  EXPECT_EQ(quantize_model(o32).resumed_blocks, 0);
  fs::remove_all(o.out_dir);
  interrupt_after_block_1();
  const QuantizeReport resumed = quantize_model(o);
  EXPECT_EQ(resumed.resumed_blocks, 2);
  test::expect_same_dirs(f.root / "full", o.out_dir);
}

}  // namespace
}  // namespace awq
