// awq bench: the roofline arithmetic. Bytes per decoded token must equal the sizes of the weight
// tensors computed here from the shape alone; a bench run on a tiny shape must report
// GB/s = bytes/token x tok/s and the roofline from the same bandwidth. The in-memory model must
// compute what the model layer computes. No timing assertions.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include "base/files.h"
#include "eval/bench.h"
#include "formats/checkpoint_writer.h"
#include "kernels/q8.h"
#include "model/model.h"
#include "model/moe.h"
#include "quant/awq_gemm_pack.h"
#include "quant/quantize.h"
#include "test_util.h"
#include "tools/synth.h"

namespace awq {
namespace {

// A shape with every optional piece: GQA, q/k/v biases (qwen2), tied embeddings.
ModelConfig qwen_like_tiny() {
  ModelConfig c = synth_preset("tiny");
  c.model_type = "qwen2";
  c.tie_word_embeddings = true;
  return c;
}

// Size of one packed W4 matrix, from the layout documented in kernels/w4_layout.h: row tiles of
// 16, each 64-byte aligned and holding 16 rows x in nibbles, groups x 16 f32 scales and
// groups x 16 u8 zeros.
int64_t w4_bytes(int64_t out, int64_t in, int64_t group) {
  const int64_t tiles = (out + 15) / 16, groups = in / group;
  const int64_t tile = 16 * in / 2 + groups * 16 * 4 + groups * 16;
  return tiles * ((tile + 63) / 64 * 64);
}

struct Shape {
  int64_t out, in;
};

std::vector<Shape> linear_shapes(const ModelConfig& c) {
  const int64_t d = c.hidden_size, f = c.intermediate_size;
  const int64_t q = c.num_attention_heads * c.head_dim, kv = c.num_key_value_heads * c.head_dim;
  return {{q, d}, {kv, d}, {kv, d}, {d, q}, {f, d}, {f, d}, {d, f}};
}

DecodeBytes expected_bytes(const ModelConfig& c, BenchForm form, int64_t group, bool qkv_bias) {
  DecodeBytes b;
  const int64_t L = c.num_hidden_layers, d = c.hidden_size;
  for (const Shape& s : linear_shapes(c)) {
    switch (form) {
      case BenchForm::F32:
        b.linears += L * s.out * s.in * 4;
        break;
      case BenchForm::F16:
        b.linears += L * s.out * s.in * 2;
        break;
      default:
        b.linears += L * w4_bytes(s.out, s.in, group < 0 ? s.in : group);
    }
  }
  b.norms_biases = (2 * L + 1) * d * 4;
  if (qkv_bias) {
    const auto sh = linear_shapes(c);
    b.norms_biases += L * (sh[0].out + sh[1].out + sh[2].out) * 4;
  }
  b.lm_head = c.vocab_size * d * 2;  // f16 in every form, tied or not
  b.embedding_row = d * 2;
  return b;
}

void expect_bytes_eq(const DecodeBytes& got, const DecodeBytes& want, const std::string& what) {
  EXPECT_EQ(got.linears, want.linears) << what;
  EXPECT_EQ(got.norms_biases, want.norms_biases) << what;
  EXPECT_EQ(got.lm_head, want.lm_head) << what;
  EXPECT_EQ(got.embedding_row, want.embedding_row) << what;
  EXPECT_EQ(got.kv_cache, want.kv_cache) << what;
  EXPECT_EQ(got.total(),
            want.linears + want.norms_biases + want.lm_head + want.embedding_row + want.kv_cache)
      << what;
}

TEST(Bench, BytesPerTokenAreTheTensorSizesOfTheShape) {
  for (const bool qwen : {false, true}) {
    const ModelConfig c = qwen ? qwen_like_tiny() : synth_preset("tiny");
    for (BenchForm f : {BenchForm::F32, BenchForm::F16, BenchForm::W4, BenchForm::W4A8}) {
      for (int g : {32, 128, -1}) {
        if (!(f == BenchForm::W4 || f == BenchForm::W4A8) && g != 128) continue;
        const BenchModel m = make_synthetic_bench_model(c, f, g, 7);
        expect_bytes_eq(m.decode_bytes(), expected_bytes(c, f, g, qwen),
                        fmt::format("{} {} g{}", c.model_type, bench_form_name(f), g));
      }
    }
  }
}

TEST(Bench, W4ReadsAboutFourAndAQuarterBitsPerWeightOnARealShape) {
  // The accounting on TinyLlama's shape, without building it: the packed size per weight is the
  // 4-bit code plus an f32 scale and a u8 zero per 128 weights (rows are a multiple of 16).
  const ModelConfig c = synth_preset("tinyllama-1.1b");
  const DecodeBytes w4 = expected_bytes(c, BenchForm::W4, 128, false);
  const DecodeBytes f16 = expected_bytes(c, BenchForm::F16, 128, false);
  double weights = 0;
  for (const Shape& s : linear_shapes(c)) weights += double(c.num_hidden_layers * s.out * s.in);
  EXPECT_NEAR(double(w4.linears) / weights, 0.5 + 5.0 / 128.0, 1e-9);
  EXPECT_EQ(f16.linears, int64_t(weights) * 2);
  // The decode roofline ratio the design promises (~3.2x with an f16 lm_head).
  EXPECT_GT(double(f16.total()) / double(w4.total()), 3.0);
}

TEST(Bench, PrefillFlopsFollowTheShape) {
  const ModelConfig c = synth_preset("tiny");
  const BenchModel m = make_synthetic_bench_model(c, BenchForm::F16, 128, 1);
  double macs = 0;
  for (const Shape& s : linear_shapes(c)) macs += double(s.out * s.in);
  macs *= double(c.num_hidden_layers);
  for (int64_t T : {1, 17, 64}) {
    const double attn = double(c.num_hidden_layers) * c.num_attention_heads * c.head_dim *
                        (double(T) * double(T + 1) / 2.0) * 2.0;
    const double want = 2.0 * (double(T) * macs + attn + double(c.vocab_size * c.hidden_size));
    EXPECT_DOUBLE_EQ(m.prefill_flops(T), want) << T;
  }
}

TEST(Bench, TinyRunReportsGbsAsBytesTimesTokensPerSecond) {
  BenchOptions o;
  o.shape = "tiny";
  o.threads = 2;
  o.prompt = 24;
  o.decode = 8;
  o.repeats = 3;
  o.forms = {BenchForm::W4A8, BenchForm::F16, BenchForm::W4};
  o.bandwidth_bytes = int64_t(32) << 20;
  const BenchReport r = run_bench(o);
  ASSERT_EQ(r.rows.size(), 3u);
  EXPECT_EQ(r.rows[0].form, "f16");  // f16 first, then w4 and w4a8 from one packed model
  EXPECT_EQ(r.rows[1].form, "w4");
  EXPECT_EQ(r.rows[2].form, "w4a8");
  // The default head: the w4a8 row reads the int8 copy (the run-time default), the others f16.
  EXPECT_EQ(r.rows[0].lm_head, "as stored");
  EXPECT_EQ(r.rows[1].lm_head, "as stored");
  EXPECT_EQ(r.rows[2].lm_head, "q8");
  EXPECT_GT(r.bandwidth_before_gbs, 0.0);
  EXPECT_GT(r.bandwidth_after_gbs, 0.0);
  // One probe before the rows, one before each of the 3 rows x 3 decode runs, one after; the
  // roofline is their median.
  ASSERT_EQ(r.bandwidth_probes.size(), 11u);
  EXPECT_EQ(r.bandwidth_probes.front(), r.bandwidth_before_gbs);
  EXPECT_EQ(r.bandwidth_probes.back(), r.bandwidth_after_gbs);
  EXPECT_EQ(r.bandwidth_gbs, median(r.bandwidth_probes));
  EXPECT_EQ(r.threads, 2);
  const BenchModel probe = make_synthetic_bench_model(r.cfg, BenchForm::F16, 128, 1);
  for (const BenchRow& w : r.rows) {
    SCOPED_TRACE(w.form);
    const BenchForm f = parse_bench_form(w.form);
    DecodeBytes want = expected_bytes(r.cfg, f, 128, false);
    if (f ==
        BenchForm::W4A8)  // the int8 head: 16-row tiles of 32 bytes of codes + 2 of scale per 32
      want.lm_head = (r.cfg.vocab_size + 15) / 16 * ((17 * r.cfg.hidden_size + 63) / 64 * 64);
    // 8 tokens from an empty context read 1..8 positions of keys and values: 4.5 on average.
    want.kv_cache = r.cfg.num_hidden_layers * 2 * r.cfg.kv_dim() * 4 * 9 / 2;
    expect_bytes_eq(w.bytes, want, w.form);
    ASSERT_EQ(w.prompt_runs.size(), 3u);
    ASSERT_EQ(w.decode_runs.size(), 3u);
    for (double v : w.prompt_runs) EXPECT_GT(v, 0.0);
    for (double v : w.decode_runs) EXPECT_GT(v, 0.0);
    EXPECT_GT(w.prompt_cpu_share, 0.0);  // measured, whatever the machine's load
    EXPECT_GT(w.decode_cpu_share, 0.0);
    EXPECT_DOUBLE_EQ(w.decode_tok_s, median(w.decode_runs));
    EXPECT_DOUBLE_EQ(w.prompt_tok_s, median(w.prompt_runs));
    const double bytes = double(w.bytes.total());
    EXPECT_NEAR(w.decode_gbs, bytes * w.decode_tok_s / 1e9, 1e-12 * w.decode_gbs);
    EXPECT_NEAR(w.roofline_fraction, w.decode_gbs / r.bandwidth_gbs, 1e-12);
    EXPECT_NEAR(w.roofline_tok_s, r.bandwidth_gbs * 1e9 / bytes, 1e-9 * w.roofline_tok_s);
    EXPECT_NEAR(w.roofline_tok_s * w.roofline_fraction, w.decode_tok_s, 1e-9 * w.decode_tok_s);
    EXPECT_NEAR(w.prompt_gflops, probe.prefill_flops(o.prompt) * w.prompt_tok_s / 24.0 / 1e9,
                1e-9 * w.prompt_gflops);
  }
  const std::string table = format_bench_report(r);
  for (const char* s : {"| f16", "| w4 ", "| w4a8", "roofline", "GB/s"})
    EXPECT_NE(table.find(s), std::string::npos) << s << "\n" << table;
  const auto j = bench_report_json(r);
  ASSERT_EQ(j["rows"].size(), 3u);
  EXPECT_EQ(j["rows"][1]["bytes_per_token"]["total"].get<int64_t>(), r.rows[1].bytes.total());
}

// Decode after a context: the session holds depth + n positions, and each token's bytes include
// the keys and values it attends over (d + 1 .. d + n positions: d + (n + 1) / 2 on average).
TEST(Bench, DecodeAfterContextCountsItsKeysAndValues) {
  BenchOptions o;
  o.shape = "tiny";
  o.threads = 1;
  o.prompt = 0;
  o.decode = 5;
  o.depth = 200;  // more than prompt and decode: the cache must be sized for depth + n
  o.repeats = 1;
  o.forms = {BenchForm::W4};
  o.bandwidth_bytes = int64_t(8) << 20;
  const BenchReport r = run_bench(o);
  ASSERT_EQ(r.rows.size(), 1u);
  const BenchRow& w = r.rows[0];
  EXPECT_GT(w.decode_tok_s, 0.0);
  EXPECT_GT(w.decode_cpu_share, 0.0);
  const int64_t per_row = r.cfg.num_hidden_layers * 2 * r.cfg.kv_dim() * 4;
  EXPECT_EQ(w.bytes.kv_cache, per_row * 203);  // 201..205 positions
  EXPECT_NEAR(w.decode_gbs, double(w.bytes.total()) * w.decode_tok_s / 1e9, 1e-12 * w.decode_gbs);
  EXPECT_NE(format_bench_report(r).find("after 200 of context"), std::string::npos);
  EXPECT_EQ(bench_report_json(r)["rows"][0]["bytes_per_token"]["kv_cache"].get<int64_t>(),
            per_row * 203);
  o.depth = -1;
  EXPECT_THROW(run_bench(o), Error);
}

TEST(Bench, QuantizedLmHeadIsCountedAsPackedW4) {
  const ModelConfig c = synth_preset("tiny");
  BenchModel m = make_synthetic_bench_model(c, BenchForm::W4, 128, 2);
  BenchSession s(m, 8);
  const std::vector<int32_t> toks = {5, 6, 7};
  const auto before = s.feed(toks);
  m.quantize_lm_head(32);
  DecodeBytes want = expected_bytes(c, BenchForm::W4, 128, false);
  want.lm_head = w4_bytes(c.vocab_size, c.hidden_size, 32);
  expect_bytes_eq(m.decode_bytes(), want, "w4 lm_head");
  s.reset();
  const auto after = s.feed(toks);
  double num = 0, den = 0;
  for (size_t i = 0; i < after.size(); ++i) {
    num += (after[i] - before[i]) * (after[i] - before[i]);
    den += before[i] * before[i];
  }
  EXPECT_GT(num, 0.0);         // the head is quantized now
  EXPECT_LT(num, 0.05 * den);  // and still close
  m.set_w4a8(true);
  EXPECT_TRUE(m.lm_head.w4a8);
  BenchModel f16_copy = make_synthetic_bench_model(c, BenchForm::F16, 128, 2);
  EXPECT_THROW(f16_copy.quantize_lm_head(32), Error);
}

TEST(Bench, DecodeBreakdownCoversEveryWeightOnce) {
  const ModelConfig c = synth_preset("tiny");
  const BenchModel m = make_synthetic_bench_model(c, BenchForm::W4, 128, 5);
  const auto parts = decode_breakdown(m, 2, /*decode_tok_s=*/100.0);
  ASSERT_EQ(parts.size(), size_t(kNumLinearRoles + 2));
  EXPECT_EQ(parts[0].name, "q_proj");
  EXPECT_EQ(parts[kNumLinearRoles].name, "lm_head");
  EXPECT_EQ(parts.back().name, "other");
  int64_t bytes = 0;
  double ms = 0;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    EXPECT_GT(parts[i].ms, 0.0) << parts[i].name;
    bytes += parts[i].bytes;
    ms += parts[i].ms;
  }
  const DecodeBytes want = expected_bytes(c, BenchForm::W4, 128, false);
  EXPECT_EQ(bytes, want.linears + want.lm_head);
  const auto sh = linear_shapes(c);
  EXPECT_EQ(parts[4].bytes, c.num_hidden_layers * w4_bytes(sh[4].out, sh[4].in, 128));  // gate
  EXPECT_NEAR(parts.back().ms, 10.0 - ms, 1e-9);  // 100 tok/s = 10 ms per token
  EXPECT_EQ(parts.back().bytes, 0);
}

double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ab += double(a[i]) * b[i];
    aa += double(a[i]) * a[i];
    bb += double(b[i]) * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

// The int8 lm_head: counted at its packed size (kernels/q8_layout.h: tiles of 16 rows, 1 byte
// per weight plus an f16 scale per 32, 64-byte padded), close to the f16 head, in every form;
// the embedding (tied in "tiny") keeps its f16 rows.
TEST(Bench, Q8LmHeadIsCountedAsItsInt8Bytes) {
  const ModelConfig c = synth_preset("tiny");
  for (BenchForm form : {BenchForm::F16, BenchForm::W4A8}) {
    BenchModel m = make_synthetic_bench_model(c, form, 128, 2);
    BenchSession s(m, 8);
    const std::vector<int32_t> toks = {5, 6, 7};
    const auto before = s.feed(toks);
    const uint8_t* embed = m.embed;
    const int64_t held = m.resident_weight_bytes();
    m.lm_head_to_q8();
    ASSERT_TRUE(m.lm_head.q8);
    // Tied: the f16 rows stay held as the embedding, the int8 copy comes on top.
    EXPECT_EQ(m.resident_weight_bytes(), held + int64_t(m.lm_head.q8->bytes()));
    EXPECT_EQ(m.embed, embed);
    DecodeBytes want = expected_bytes(c, form, 128, false);
    want.lm_head = (c.vocab_size + 15) / 16 * ((17 * c.hidden_size + 63) / 64 * 64);
    expect_bytes_eq(m.decode_bytes(), want, bench_form_name(form));
    s.reset();
    EXPECT_GT(cosine(s.feed(toks), before), 0.999) << bench_form_name(form);
  }
  BenchOptions o;
  o.shape = "tiny";
  o.lm_head_w4 = true;
  o.lm_head_q8 = BenchOptions::HeadQ8::Always;
  EXPECT_THROW(run_bench(o), Error);
}

TEST(Bench, FormsOfOneSeedAreOneModel) {
  // The same random weights in f32, f16 and W4: logits agree up to each form's rounding, and
  // prefill through the KV cache equals feeding token by token.
  const ModelConfig c = qwen_like_tiny();
  const std::vector<int32_t> toks = {1, 50, 7, 300, 511, 2, 99, 128};
  std::vector<std::vector<float>> last;
  for (BenchForm f : {BenchForm::F32, BenchForm::F16, BenchForm::W4, BenchForm::W4A8}) {
    const BenchModel m = make_synthetic_bench_model(c, f, 32, 3);
    BenchSession s(m, 16);
    const auto all = s.feed(toks);
    EXPECT_EQ(s.pos(), 8);
    s.reset();
    std::vector<float> one;
    for (int32_t t : toks) one = s.feed(std::span<const int32_t>(&t, 1));
    ASSERT_EQ(all.size(), size_t(c.vocab_size));
    EXPECT_GT(cosine(all, one), 0.99999) << bench_form_name(f);
    last.push_back(all);
  }
  EXPECT_GT(cosine(last[0], last[1]), 0.9999);    // f16
  EXPECT_GT(cosine(last[0], last[2]), 0.95);      // 4-bit RTN, g32
  EXPECT_GT(cosine(last[2], last[3]), 0.99);      // int8 activations on top
  EXPECT_LT(cosine(last[0], last[2]), 0.999999);  // it is quantized
}

// A random f16 checkpoint of the tiny shape in `dir`; returns its path.
std::string write_tiny_f16(const std::filesystem::path& dir) {
  SynthOptions so;
  so.shape = "tiny";
  so.out_dir = dir.string();
  so.dtype = DType::F16;
  write_synthetic_model(so);
  return so.out_dir;
}

TEST(Bench, CheckpointModelMatchesTheModelLayer) {
  const std::string model_dir = write_tiny_f16(test::scratch_dir("bench_ckpt") / "m");
  const std::vector<int32_t> toks = {3, 1, 4, 1, 5, 9, 2, 6};

  const Model ref = Model::load(model_dir);  // native: f16 rows in place
  auto sess = ref.session(16);
  const auto want = sess.feed(toks);

  const BenchModel f16 = make_checkpoint_bench_model(model_dir, BenchForm::F16, 128);
  BenchSession s(f16, 16);
  const auto got = s.feed(toks);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], want[i]) << i;
  // f16 rows stay in the mapping: the accounting is the file's tensor sizes.
  expect_bytes_eq(f16.decode_bytes(), expected_bytes(f16.cfg, BenchForm::F16, 128, false), "ckpt");

  const BenchModel w4 = make_checkpoint_bench_model(model_dir, BenchForm::W4, 64);
  expect_bytes_eq(w4.decode_bytes(), expected_bytes(w4.cfg, BenchForm::W4, 64, false), "ckpt w4");
  BenchSession s4(w4, 16);
  EXPECT_GT(cosine(s4.feed(toks), want), 0.95);
}

bool same_bits(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// A copy of `m`'s W4 blocks whose linears run one by one (the unfused path): the same packed
// rows, without the fused groups.
std::vector<BlockWeights> unfused_blocks(const std::vector<BlockWeights>& blocks) {
  std::vector<BlockWeights> out = blocks;
  for (auto& b : out)
    for (auto& l : b.lin) l.fused.reset();
  return out;
}

// Fusing q|k|v and gate|up (one kernel call per group in decode) changes no bit of the logits:
// decode token by token, short prefills (fused path) and long ones (per-linear path), with
// q/k/v biases (qwen2), for both activation forms.
TEST(Bench, FusedW4GroupsAreBitIdenticalToUnfused) {
  const ModelConfig c = qwen_like_tiny();
  BenchModel fused = make_synthetic_bench_model(c, BenchForm::W4, 32, 7);
  BenchModel plain = make_synthetic_bench_model(c, BenchForm::W4, 32, 7);
  EXPECT_EQ(fused.fuse_w4_groups(), 2 * int(c.num_hidden_layers));
  EXPECT_EQ(fused.fuse_w4_groups(), 2 * int(c.num_hidden_layers));  // idempotent
  const Linear* qkv[] = {&fused.blocks[0][LinearRole::Q], &fused.blocks[0][LinearRole::K],
                         &fused.blocks[0][LinearRole::V]};
  ASSERT_TRUE(is_fused_group(qkv));
  ASSERT_FALSE(fused.blocks[0][LinearRole::Q].bias.empty());  // biases are stacked too
  expect_bytes_eq(fused.decode_bytes(), plain.decode_bytes(), "fused");
  const std::vector<int32_t> toks = {1, 50, 7, 300, 511, 2, 99, 128, 5, 17, 400, 3, 8};
  for (bool a8 : {false, true}) {
    fused.set_w4a8(a8);
    plain.set_w4a8(a8);
    BenchSession sf(fused, 32), sp(plain, 32);
    for (size_t i = 0; i < toks.size(); ++i) {
      const auto a = sf.feed(std::span<const int32_t>(&toks[i], 1));
      const auto b = sp.feed(std::span<const int32_t>(&toks[i], 1));
      ASSERT_TRUE(same_bits(a, b)) << (a8 ? "w4a8" : "w4") << " decode token " << i;
    }
    for (size_t n : {size_t(5), size_t(8), size_t(13)}) {  // <= 8 tokens: fused; 13: per linear
      sf.reset();
      sp.reset();
      const std::span<const int32_t> p(toks.data(), n);
      ASSERT_TRUE(same_bits(sf.feed(p), sp.feed(p))) << (a8 ? "w4a8" : "w4") << " prefill " << n;
    }
  }
}

// The same through the model layer: an AutoAWQ checkpoint loaded with --weights w4 / w4a8 is
// fused at load (Model::load), and its logits equal those of the same linears run one by one.
TEST(Bench, LoadedAwqModelIsFusedAndBitIdenticalToUnfused) {
  const auto dir = test::scratch_dir("bench_fused_awq");
  const std::string fp_dir = write_tiny_f16(dir / "fp");
  // RTN to an AutoAWQ GEMM checkpoint (g32), everything else copied as f16.
  const Checkpoint src = Checkpoint::open(fp_dir);
  StagedDir sd((dir / "awq").string());
  {
    CheckpointWriter cw(sd);
    for (const auto& name : src.names()) {
      const auto& t = src.get(name);
      std::vector<float> v(size_t(t.numel()));
      convert_to_f32(t.dtype, t.data, t.numel(), v.data());
      if (name.find("_proj.weight") == std::string::npos) {
        cw.add_f32_as(name, DType::F16, t.shape, v);
        continue;
      }
      QuantSpec spec;
      spec.group_size = 32;
      const AwqGemmTensors g =
          pack_awq_gemm(quantize(v.data(), t.shape[0], t.shape[1], spec, name));
      auto bytes = [](const auto& vec) {
        std::vector<uint8_t> b(vec.size() * sizeof(vec[0]));
        std::memcpy(b.data(), vec.data(), b.size());
        return b;
      };
      const std::string prefix = name.substr(0, name.size() - 7);
      cw.add(prefix + ".qweight", DType::I32, {g.K, g.N / 8}, bytes(g.qweight));
      cw.add(prefix + ".qzeros", DType::I32, {g.K / g.group, g.N / 8}, bytes(g.qzeros));
      cw.add(prefix + ".scales", DType::F16, {g.K / g.group, g.N}, bytes(g.scales_f16));
    }
    cw.finish();
  }
  auto cfg = nlohmann::json::parse(read_text_file(fp_dir + "/config.json"));
  cfg["quantization_config"] = {{"quant_method", "awq"},
                                {"bits", 4},
                                {"group_size", 32},
                                {"zero_point", true},
                                {"version", "gemm"}};
  write_text_file_atomic(sd.path("config.json").string(), cfg.dump(2));
  sd.commit();

  const std::string awq_dir = (dir / "awq").string();
  const std::vector<int32_t> toks = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5};
  for (bool a8 : {false, true}) {
    const Model fused = Model::load(awq_dir, {WeightForm::W4, a8});
    const Linear* gate_up[] = {&fused.block(1)[LinearRole::Gate], &fused.block(1)[LinearRole::Up]};
    ASSERT_TRUE(is_fused_group(gate_up));
    std::vector<BlockWeights> blocks;
    for (int64_t l = 0; l < fused.n_layers(); ++l) blocks.push_back(fused.block(l));
    const Model plain = Model::from_blocks(std::make_shared<Checkpoint>(Checkpoint::open(awq_dir)),
                                           fused.config(), unfused_blocks(blocks));
    ASSERT_FALSE(plain.block(1)[LinearRole::Gate].fused);
    auto sf = fused.session(16), sp = plain.session(16);
    for (size_t i = 0; i < toks.size(); ++i)
      ASSERT_TRUE(same_bits(sf.feed(toks[i]), sp.feed(toks[i])))
          << (a8 ? "w4a8" : "w4") << " token " << i;
    for (int64_t T : {4, 11}) {
      const Mat a = fused.forward(toks.data(), 1, T), b = plain.forward(toks.data(), 1, T);
      ASSERT_TRUE(same_bits(a.data, b.data)) << (a8 ? "w4a8" : "w4") << " prefill " << T;
    }
  }
}

TEST(Bench, DecodeBreakdownOfAFusedModelTimesEachGroupOnce) {
  const ModelConfig c = synth_preset("tiny");
  BenchModel m = make_synthetic_bench_model(c, BenchForm::W4A8, 128, 5);
  m.fuse_w4_groups();
  const auto parts = decode_breakdown(m, 2, /*decode_tok_s=*/100.0);
  std::vector<std::string> names;
  for (const auto& p : parts) names.push_back(p.name);
  EXPECT_EQ(names, (std::vector<std::string>{"q|k|v", "o_proj", "gate|up", "down_proj", "lm_head",
                                             "other"}));
  int64_t bytes = 0;
  for (const auto& p : parts) bytes += p.bytes;
  const DecodeBytes want = expected_bytes(c, BenchForm::W4, 128, false);
  EXPECT_EQ(bytes, want.linears + want.lm_head);
  const auto sh = linear_shapes(c);
  EXPECT_EQ(parts[2].bytes, 2 * c.num_hidden_layers * w4_bytes(sh[4].out, sh[4].in, 128));
}

TEST(Bench, BadOptionsAreErrors) {
  EXPECT_THROW(parse_bench_form("q4_0"), Error);
  BenchOptions o;
  EXPECT_THROW(run_bench(o), Error);  // neither --model nor --shape
  o.shape = "tiny";
  o.model_dir = "/nonexistent";
  EXPECT_THROW(run_bench(o), Error);  // both
  o.model_dir.clear();
  o.shape = "no-such-shape";
  EXPECT_THROW(run_bench(o), Error);
  // A group size the 4-bit kernels cannot run names the tensor.
  try {
    make_synthetic_bench_model(synth_preset("tiny"), BenchForm::W4, 48, 1);
    FAIL() << "group 48 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.0"), std::string::npos) << e.what();
  }
  EXPECT_DOUBLE_EQ(median({3, 1, 2}), 2.0);
  EXPECT_DOUBLE_EQ(median({4, 1, 2, 3}), 2.5);
}

// --- Mixture of experts --------------------------------------------------------------------

// Tiny sparse shapes of each MoE family (widths multiples of 32 for the W4 groups): Qwen3-MoE
// (q/k norms, top-k renormalized), Qwen2-MoE (q/k/v biases, a shared expert with its sigmoid gate,
// layer 1 dense through mlp_only_layers) and Mixtral (every layer sparse).
ModelConfig tiny_moe(const std::string& family) {
  nlohmann::json j = {
      {"hidden_size", 128},       {"num_hidden_layers", 2}, {"num_attention_heads", 4},
      {"num_key_value_heads", 2}, {"vocab_size", 512},      {"max_position_embeddings", 256},
      {"rms_norm_eps", 1e-5},     {"rope_theta", 10000.0},  {"tie_word_embeddings", false}};
  if (family == "qwen3_moe") {
    j["model_type"] = "qwen3_moe";
    j["intermediate_size"] = 256;
    j["head_dim"] = 64;
    j["num_experts"] = 8;
    j["num_experts_per_tok"] = 2;
    j["moe_intermediate_size"] = 64;
    j["norm_topk_prob"] = true;
  } else if (family == "qwen2_moe") {
    j["model_type"] = "qwen2_moe";
    j["num_hidden_layers"] = 3;
    j["intermediate_size"] = 256;  // the dense layer's width
    j["num_experts"] = 6;
    j["num_experts_per_tok"] = 2;
    j["moe_intermediate_size"] = 64;
    j["shared_expert_intermediate_size"] = 96;
    j["mlp_only_layers"] = {1};
  } else {
    j["model_type"] = "mixtral";
    j["intermediate_size"] = 64;  // the experts' width
    j["num_local_experts"] = 4;
    j["num_experts_per_tok"] = 2;
  }
  j["architectures"] = {find_architecture(j["model_type"])->hf_class};
  return ModelConfig::from_json(j, "tiny " + family);
}

const char* const kMoeFamilies[] = {"qwen3_moe", "qwen2_moe", "mixtral"};

int64_t linear_bytes(BenchForm form, int64_t out, int64_t in, int64_t group) {
  switch (form) {
    case BenchForm::F32:
      return out * in * 4;
    case BenchForm::F16:
      return out * in * 2;
    default:
      return w4_bytes(out, in, group);
  }
}

// What one decoded token reads, from the shape alone: attention, norms and biases of every
// layer; in a dense layer its MLP, in a sparse one the f32 router, the shared expert with its
// [hidden] gate and k experts (not the E resident ones). `resident` gets every weight held.
DecodeBytes expected_moe_bytes(const ModelConfig& c, BenchForm form, int64_t g, int64_t* resident) {
  DecodeBytes b;
  const int64_t d = c.hidden_size, q = c.q_dim(), kv = c.kv_dim();
  const bool biases = c.model_type == "qwen2_moe", qk_norm = c.model_type == "qwen3_moe";
  auto ffn = [&](int64_t I) {
    return 2 * linear_bytes(form, I, d, g) + linear_bytes(form, d, I, g);
  };
  int64_t held = 0;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const int64_t attn = linear_bytes(form, q, d, g) + 2 * linear_bytes(form, kv, d, g) +
                         linear_bytes(form, d, q, g);
    b.linears += attn;
    held += attn;
    b.norms_biases +=
        2 * d * 4 + (qk_norm ? 2 * c.head_dim * 4 : 0) + (biases ? (q + 2 * kv) * 4 : 0);
    if (!c.is_moe_layer(l)) {
      b.linears += ffn(c.intermediate_size);
      held += ffn(c.intermediate_size);
      continue;
    }
    int64_t moe = c.num_experts * d * 4;  // the router, f32
    if (c.shared_expert_intermediate_size > 0)
      moe += d * 4 + ffn(c.shared_expert_intermediate_size);
    b.linears += moe + c.num_experts_per_tok * ffn(c.moe_intermediate_size);
    held += moe + c.num_experts * ffn(c.moe_intermediate_size);
  }
  b.norms_biases += d * 4;
  b.lm_head = c.vocab_size * d * 2;
  b.embedding_row = d * 2;
  if (resident) *resident = held + 2 * c.vocab_size * d * 2;  // + embedding and lm_head, f16
  return b;
}

TEST(BenchMoe, BytesPerTokenAreTheActiveWeights) {
  for (const char* fam : kMoeFamilies) {
    const ModelConfig c = tiny_moe(fam);
    for (BenchForm f : {BenchForm::F32, BenchForm::F16, BenchForm::W4, BenchForm::W4A8}) {
      const std::string what = fmt::format("{} {}", fam, bench_form_name(f));
      BenchModel m = make_synthetic_bench_model(c, f, 32, 7);
      int64_t resident = 0;
      const DecodeBytes want = expected_moe_bytes(c, f, 32, &resident);
      expect_bytes_eq(m.decode_bytes(), want, what);
      EXPECT_EQ(m.resident_weight_bytes(), resident) << what;
      // k of E experts: the blocks' bytes per token are well under those held.
      const int64_t held_linears = resident - 2 * c.vocab_size * c.hidden_size * 2;
      EXPECT_LT(double(want.linears), 0.7 * double(held_linears)) << what;
      if (is_w4(f)) {  // fusing each expert's gate|up moves no byte
        EXPECT_GT(m.fuse_w4_groups(), 0);
        expect_bytes_eq(m.decode_bytes(), want, what + " fused");
        EXPECT_EQ(m.resident_weight_bytes(), resident) << what;
      }
    }
  }
}

TEST(BenchMoe, RealShapeReadsAboutATenthOfItsWeights) {
  // Qwen3-30B-A3B's accounting from its shape, without building it: a token reads the router
  // and 8 of 128 experts of each layer (~3.3B active of ~30.5B parameters).
  const ModelConfig c = synth_preset("qwen3-30b-a3b");
  int64_t resident = 0;
  const DecodeBytes w4 = expected_moe_bytes(c, BenchForm::W4, 128, &resident);
  EXPECT_LT(double(w4.total()), 0.15 * double(resident));
  EXPECT_GT(double(w4.total()), 0.05 * double(resident));
  const double params = double(c.active_parameter_count());
  EXPECT_NEAR(params / 1e9, 3.3, 0.2);
}

TEST(BenchMoe, PrefillFlopsCountKExpertsPerToken) {
  const ModelConfig c = tiny_moe("qwen2_moe");
  const BenchModel m = make_synthetic_bench_model(c, BenchForm::F16, 32, 1);
  const int64_t d = c.hidden_size, q = c.q_dim(), kv = c.kv_dim();
  double macs = 0;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    macs += double(2 * q * d + 2 * kv * d);
    if (!c.is_moe_layer(l)) {
      macs += 3.0 * double(c.intermediate_size * d);
      continue;
    }
    macs += double(c.num_experts * d + d);  // router and the shared expert's gate
    macs += 3.0 * double(c.shared_expert_intermediate_size * d);
    macs += 3.0 * double(c.num_experts_per_tok * c.moe_intermediate_size * d);
  }
  for (int64_t T : {1, 9}) {
    const double attn = double(c.num_hidden_layers) * double(q) * double(T) * double(T + 1);
    EXPECT_DOUBLE_EQ(m.prefill_flops(T), 2.0 * (double(T) * macs + double(c.vocab_size * d) + attn))
        << T;
  }
}

TEST(BenchMoe, FormsOfOneSeedAreOneModel) {
  // As for dense shapes: the same random MoE in f32, f16 and W4 gives logits that agree up to
  // each form's rounding, and prefill through the KV cache equals decoding token by token.
  const std::vector<int32_t> toks = {1, 50, 7, 300, 511, 2, 99, 128, 5, 17};
  for (const char* fam : kMoeFamilies) {
    SCOPED_TRACE(fam);
    const ModelConfig c = tiny_moe(fam);
    std::vector<std::vector<float>> last;
    for (BenchForm f : {BenchForm::F32, BenchForm::F16, BenchForm::W4, BenchForm::W4A8}) {
      BenchModel m = make_synthetic_bench_model(c, f, 32, 3);
      if (is_w4(f)) m.fuse_w4_groups();
      BenchSession s(m, 16);
      const auto all = s.feed(toks);
      s.reset();
      std::vector<float> one;
      for (int32_t t : toks) one = s.feed(std::span<const int32_t>(&t, 1));
      ASSERT_EQ(all.size(), size_t(c.vocab_size));
      EXPECT_GT(cosine(all, one), 0.99999) << bench_form_name(f);
      last.push_back(all);
    }
    EXPECT_GT(cosine(last[0], last[1]), 0.9999);    // f16
    EXPECT_GT(cosine(last[0], last[2]), 0.95);      // 4-bit RTN, g32
    EXPECT_GT(cosine(last[2], last[3]), 0.99);      // int8 activations on top
    EXPECT_LT(cosine(last[0], last[2]), 0.999999);  // it is quantized
  }
}

// Random routing sends every token to k distinct experts and, over many tokens, uses all of
// them about equally (what the decode bytes assume: any k experts cost the same).
TEST(BenchMoe, RandomRoutersSpreadTokensOverTheExperts) {
  ModelConfig c = tiny_moe("qwen3_moe");
  const BenchModel m = make_synthetic_bench_model(c, BenchForm::F32, 32, 5);
  const int64_t n = 800, d = c.hidden_size, E = c.num_experts, k = c.num_experts_per_tok;
  Mat x(n, d);
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1.7f, 1.7f);  // about unit RMS, as normed inputs
  for (float& v : x.data) v = u(rng);
  const MoeRouting r = moe_route(c, m.blocks[0].moe, x);
  std::vector<int64_t> count(size_t(E), 0);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < k; ++j) ++count[size_t(r.expert[size_t(t * k + j)])];
  for (int64_t e = 0; e < E; ++e) {
    EXPECT_GT(count[size_t(e)], n * k / E / 2) << e;
    EXPECT_LT(count[size_t(e)], n * k / E * 2) << e;
  }
}

// Fusing every expert's gate|up (one kernel call each in decode) changes no bit.
TEST(BenchMoe, FusedExpertsAreBitIdenticalToUnfused) {
  const ModelConfig c = tiny_moe("qwen2_moe");
  BenchModel fused = make_synthetic_bench_model(c, BenchForm::W4, 32, 7);
  const BenchModel plain = make_synthetic_bench_model(c, BenchForm::W4, 32, 7);
  // 3 layers of q|k|v; dense gate|up in layer 1; 6 experts + 1 shared in layers 0 and 2.
  EXPECT_EQ(fused.fuse_w4_groups(), 3 + 1 + 2 * 7);
  const FfnWeights& e0 = fused.blocks[0].moe.experts[0];
  const Linear* gate_up[] = {&e0.gate, &e0.up};
  ASSERT_TRUE(is_fused_group(gate_up));
  const std::vector<int32_t> toks = {1, 50, 7, 300, 511, 2, 99, 128, 5, 17, 400, 3, 8};
  BenchSession sf(fused, 32), sp(plain, 32);
  for (size_t i = 0; i < toks.size(); ++i)
    ASSERT_TRUE(same_bits(sf.feed(std::span<const int32_t>(&toks[i], 1)),
                          sp.feed(std::span<const int32_t>(&toks[i], 1))))
        << "decode token " << i;
}

TEST(BenchMoe, EveryFormRunsThroughRunBench) {
  for (const char* fam : kMoeFamilies) {
    SCOPED_TRACE(fam);
    const ModelConfig c = tiny_moe(fam);
    BenchOptions o;
    o.model_dir = std::string("tiny ") + fam;  // names the custom source in the report
    o.build_model_cfg = c;
    o.build_model = [&](BenchForm f) { return make_synthetic_bench_model(c, f, 32, 1); };
    o.threads = 2;
    o.prompt = 12;
    o.decode = 6;
    o.repeats = 1;
    o.breakdown = true;
    o.forms = {BenchForm::F32, BenchForm::F16, BenchForm::W4, BenchForm::W4A8};
    o.bandwidth_bytes = int64_t(8) << 20;
    const BenchReport r = run_bench(o);
    ASSERT_EQ(r.rows.size(), 4u);
    for (const BenchRow& w : r.rows) {
      SCOPED_TRACE(w.form);
      EXPECT_GT(w.prompt_tok_s, 0.0);
      EXPECT_GT(w.decode_tok_s, 0.0);
      DecodeBytes want = expected_moe_bytes(c, parse_bench_form(w.form), 32, nullptr);
      if (w.lm_head == "q8")  // the default head of the w4a8 row: its int8 copy
        want.lm_head = (c.vocab_size + 15) / 16 * ((17 * c.hidden_size + 63) / 64 * 64);
      EXPECT_EQ(w.lm_head == "q8", w.form == "w4a8");
      want.kv_cache = c.num_hidden_layers * 2 * c.kv_dim() * 4 * 7 / 2;  // 1..6 positions
      expect_bytes_eq(w.bytes, want, w.form);
      EXPECT_GT(w.resident_bytes, w.bytes.total());
      // The breakdown times k experts per sparse layer and covers every byte but the KV cache.
      int64_t bytes = 0;
      bool experts = false, shared = false;
      for (const DecodePart& p : w.parts) {
        bytes += p.bytes;
        // "expert gate|up" where W4 fused them, "expert gate_proj" and "expert up_proj" if not.
        experts = experts || p.name.starts_with("expert ");
        shared = shared || p.name.starts_with("shared ");
      }
      EXPECT_EQ(bytes, want.linears + want.lm_head);
      EXPECT_TRUE(experts);
      EXPECT_EQ(shared, c.shared_expert_intermediate_size > 0);
    }
    const std::string table = format_bench_report(r);
    EXPECT_NE(table.find(fmt::format("experts:   {} per sparse layer", c.num_experts)),
              std::string::npos)
        << table;
    const auto j = bench_report_json(r);
    EXPECT_EQ(j["config"]["num_experts"].get<int64_t>(), c.num_experts);
    EXPECT_EQ(j["rows"][2]["resident_bytes"].get<int64_t>(), r.rows[2].resident_bytes);
  }
}

TEST(BenchMoe, CheckpointModelMatchesTheModelLayer) {
  const auto dir = test::scratch_dir("bench_moe_ckpt");
  for (const char* fam : kMoeFamilies) {
    SCOPED_TRACE(fam);
    const std::string cp = (dir / (std::string(fam) + ".json")).string();
    nlohmann::json j = tiny_moe(fam).raw;
    write_text_file_atomic(cp, j.dump(2));
    SynthOptions so;
    so.shape.clear();
    so.config_path = cp;
    so.out_dir = (dir / fam).string();
    so.dtype = DType::F16;
    write_synthetic_model(so);
    const std::vector<int32_t> toks = {3, 1, 4, 1, 5, 9, 2, 6};

    const Model ref = Model::load(so.out_dir);  // native: f16 rows in place, router f32
    auto sess = ref.session(16);
    const auto want = sess.feed(toks);

    const BenchModel f16 = make_checkpoint_bench_model(so.out_dir, BenchForm::F16, 32);
    BenchSession s(f16, 16);
    const auto got = s.feed(toks);
    ASSERT_TRUE(same_bits(got, want));
    expect_bytes_eq(f16.decode_bytes(), expected_moe_bytes(f16.cfg, BenchForm::F16, 32, nullptr),
                    "ckpt f16");
    EXPECT_EQ(f16.decode_bytes().linears + f16.decode_bytes().lm_head, ref.weight_bytes());

    BenchModel w4 = make_checkpoint_bench_model(so.out_dir, BenchForm::W4, 32);
    w4.fuse_w4_groups();
    expect_bytes_eq(w4.decode_bytes(), expected_moe_bytes(w4.cfg, BenchForm::W4, 32, nullptr),
                    "ckpt w4");
    BenchSession s4(w4, 16);
    EXPECT_GT(cosine(s4.feed(toks), want), 0.95);
  }
}

TEST(BenchMoe, LayersOptionKeepsTheFirstBlocksOfAShape) {
  BenchOptions o;
  o.shape = "tiny";
  o.layers = 1;
  o.threads = 1;
  o.prompt = 4;
  o.decode = 2;
  o.repeats = 1;
  o.forms = {BenchForm::F16};
  o.bandwidth_bytes = int64_t(8) << 20;
  const BenchReport r = run_bench(o);
  EXPECT_EQ(r.cfg.num_hidden_layers, 1);
  EXPECT_EQ(r.shape_layers, synth_preset("tiny").num_hidden_layers);
  DecodeBytes want = expected_bytes(r.cfg, BenchForm::F16, 128, false);
  want.kv_cache = 2 * r.cfg.kv_dim() * 4 * 3 / 2;
  expect_bytes_eq(r.rows.at(0).bytes, want, "1 layer");
  EXPECT_NE(format_bench_report(r).find("1 of the shape's 2 layers (--layers)"), std::string::npos)
      << format_bench_report(r);
  EXPECT_EQ(bench_report_json(r)["config"]["shape_layers"].get<int64_t>(), 2);
  o.layers = -1;
  EXPECT_THROW(run_bench(o), Error);
  o.layers = 1;
  o.shape.clear();
  o.model_dir = "/nonexistent";
  try {
    run_bench(o);
    FAIL() << "--layers with --model accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--layers"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace awq
