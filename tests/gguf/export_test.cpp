// export-gguf round trips: an AWQ checkpoint exported to Q4_1 / Q4_0 reads back as the same
// weights (only m's f16 rounding differs, and it is bounded), the same 4-bit codes, and the same
// perplexity; float checkpoints export exactly to F16/F32; bad inputs fail with clear errors.
#include <gtest/gtest.h>

#include <cmath>

#include "base/error.h"
#include "base/half.h"
#include "formats/checkpoint.h"
#include "gguf/export.h"
#include "gguf/gguf_file.h"
#include "gguf/gguf_model.h"
#include "gguf/inspect_gguf.h"
#include "gguf/llama_layout.h"
#include "kernels/w4.h"
#include "model/awq_dequant.h"
#include "model/model.h"
#include "synthetic.h"
#include "test_util.h"

namespace awq::gguf {
namespace {

constexpr const char* kTok512 = "models/stories260K/tok512.bin";

std::pair<int64_t, int64_t> shape_of(const ModelConfig& c, LinearRole r) {
  switch (r) {
    case LinearRole::Q:
      return {c.q_dim(), c.hidden_size};
    case LinearRole::K:
    case LinearRole::V:
      return {c.kv_dim(), c.hidden_size};
    case LinearRole::O:
      return {c.hidden_size, c.q_dim()};
    case LinearRole::Down:
      return {c.hidden_size, c.intermediate_size};
    default:
      return {c.intermediate_size, c.hidden_size};
  }
}

// Mean negative log-likelihood of tokens[1..] given the prefix, one window.
double mean_nll(const Model& m, const std::vector<int32_t>& tokens) {
  const int64_t T = int64_t(tokens.size());
  const Mat logits = m.forward(tokens.data(), 1, T);
  double sum = 0;
  for (int64_t t = 0; t + 1 < T; ++t) {
    const float* row = logits.row(t);
    double mx = row[0];
    for (int64_t v = 1; v < logits.cols; ++v) mx = std::max(mx, double(row[v]));
    double z = 0;
    for (int64_t v = 0; v < logits.cols; ++v) z += std::exp(double(row[v]) - mx);
    sum += -(double(row[tokens[size_t(t + 1)]]) - mx - std::log(z));
  }
  return sum / double(T - 1);
}

const char* kText =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
    "One day, she saw a big, red ball under a tree. She ran to get it, but a dog got there first.";

struct Exported {
  std::string dir, gguf;
  ExportReport report;
};

Exported export_synthetic(const std::string& name, test::SynthSpec spec, ExportOptions o = {}) {
  Exported e;
  const auto root = test::scratch_dir(name);
  e.dir = (root / "model").string();
  e.gguf = (root / "model.gguf").string();
  test::write_synthetic(e.dir, spec);
  o.model_dir = e.dir;
  o.out_path = e.gguf;
  o.progress = false;
  e.report = export_gguf(o);
  return e;
}

// Every linear of the GGUF (dequantized, rows put back in HF order) against the checkpoint's
// dequantized AWQ weights; returns the largest difference relative to the bound |z·s|·2^-11
// (half an f16 ulp of m), which must stay ≤ 1.
double check_weights_against_checkpoint(const Exported& e, bool expect_exact) {
  const ModelConfig cfg = ModelConfig::load(e.dir);
  const Checkpoint ck = Checkpoint::open(e.dir);
  const Architecture& arch = *find_architecture(cfg.model_type);
  const GgufFile f(e.gguf);
  const bool permutes = gguf_arch_permutes_qk(f.get_string("general.architecture"));
  double worst = 0;
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    for (LinearRole r : kAllLinearRoles) {
      const auto [out, in] = shape_of(cfg, r);
      const std::string name = arch.linear_name(l, r);
      const QuantizedMatrix q = read_awq_linear(ck, name, *cfg.quant, out, in);
      const Mat ref = dequantize_awq_linear(ck, name, *cfg.quant, out, in);
      const GgufTensor& t = f.tensor(gguf_linear_tensor(l, r));
      EXPECT_EQ(t.ne, (std::vector<int64_t>{in, out})) << t.name;
      Mat got = gguf_tensor_f32(t);
      std::vector<int64_t> perm;
      if (permutes && (r == LinearRole::Q || r == LinearRole::K))
        perm = rope_row_permutation(
            out, r == LinearRole::Q ? cfg.num_attention_heads : cfg.num_key_value_heads);
      // GGUF row i holds HF row perm[i].
      for (int64_t i = 0; i < out; ++i) {
        const int64_t src = perm.empty() ? i : perm[size_t(i)];
        for (int64_t c = 0; c < in; ++c) {
          const double diff = std::fabs(double(got.at(i, c)) - double(ref.at(src, c)));
          const int64_t g = src * q.n_groups() + c / q.group;
          const double bound =
              std::fabs(double(q.zeros[size_t(g)]) * q.scales[size_t(g)]) * std::ldexp(1.0, -11);
          if (expect_exact) {
            EXPECT_EQ(got.at(i, c), ref.at(src, c)) << t.name << " row " << i << " col " << c;
            if (got.at(i, c) != ref.at(src, c)) return 1e9;
          } else if (diff > 0) {
            worst = std::max(worst, diff / bound);
          }
        }
      }
    }
  }
  return worst;
}

TEST(ExportGguf, AwqQ4_1RoundTripsWeightsCodesAndPerplexity) {
  AWQ_REQUIRE_DATA(kTok512);
  test::SynthSpec spec;
  spec.tokenizer = "llama2c:" + test::data_path(kTok512);
  const Exported e = export_synthetic("export_q4_1", spec);
  EXPECT_EQ(e.report.arch, "llama");
  EXPECT_EQ(e.report.linear_type, "Q4_1");
  EXPECT_EQ(e.report.quantized_linears, 14);
  EXPECT_EQ(e.report.float_linears, 0);
  EXPECT_EQ(e.report.tokenizer_model, "llama");
  EXPECT_TRUE(e.report.warnings.empty()) << e.report.warnings[0];
  EXPECT_GT(e.report.max_min_rounding_steps, 0.0);
  EXPECT_LT(e.report.max_min_rounding_steps, 0.01);  // under 1% of a quantization step

  // Metadata llama.cpp needs.
  const GgufFile f(e.gguf);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_int("general.file_type"), 3);
  EXPECT_EQ(f.get_int("general.quantization_version"), 2);
  EXPECT_EQ(f.find("general.quantization_version")->type(), ValueType::U32);
  EXPECT_EQ(f.get_int("general.alignment"), 32);
  EXPECT_EQ(f.get_int("llama.block_count"), 2);
  EXPECT_EQ(f.get_int("llama.embedding_length"), 128);
  EXPECT_EQ(f.get_int("llama.feed_forward_length"), 192);
  EXPECT_EQ(f.get_int("llama.attention.head_count"), 4);
  EXPECT_EQ(f.get_int("llama.attention.head_count_kv"), 2);
  EXPECT_EQ(f.get_int("llama.rope.dimension_count"), 32);
  EXPECT_EQ(f.get_int("llama.context_length"), 256);
  EXPECT_EQ(f.get_int("llama.vocab_size"), 512);
  EXPECT_FLOAT_EQ(float(f.get_float("llama.attention.layer_norm_rms_epsilon")), 1e-5f);
  EXPECT_EQ(f.find("llama.rope.freq_base")->type(), ValueType::F32);
  EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(f.get_strings("tokenizer.ggml.tokens").size(), 512u);
  EXPECT_EQ(f.tensor("token_embd.weight").type, GgmlType::F16);
  EXPECT_EQ(f.tensor("token_embd.weight").ne, (std::vector<int64_t>{128, 512}));
  EXPECT_EQ(f.tensor("output.weight").type, GgmlType::F16);
  EXPECT_EQ(f.tensor("output_norm.weight").type, GgmlType::F32);
  EXPECT_EQ(f.tensor("blk.1.ffn_norm.weight").type, GgmlType::F32);
  EXPECT_EQ(f.tensor("blk.1.ffn_down.weight").type, GgmlType::Q4_1);
  EXPECT_EQ(f.tensor("blk.1.ffn_down.weight").ne, (std::vector<int64_t>{192, 128}));
  EXPECT_EQ(f.tensors().size(), 2u + 2u * 9u + 1u);
  const auto insp = inspect_gguf(e.gguf);
  EXPECT_EQ(insp["model_type"], "llama");
  EXPECT_EQ(insp["dtypes"]["Q4_1"]["tensors"], 14);
  EXPECT_EQ(insp["gguf"]["file_type"], 3);
  EXPECT_NE(format_gguf_inspection(insp).find("Q4_1"), std::string::npos);

  // Weights: equal up to m's f16 rounding, bounded by half an f16 ulp of m.
  const double worst = check_weights_against_checkpoint(e, false);
  EXPECT_GT(worst, 0.0);
  EXPECT_LE(worst, 1.0 + 1e-9);

  // The 4-bit codes come back exactly (W4 form), in HF row order.
  const ModelConfig cfg = ModelConfig::load(e.dir);
  const Checkpoint ck = Checkpoint::open(e.dir);
  LoadOptions w4;
  w4.weights = WeightForm::W4;
  std::vector<std::string> notes;
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    const BlockWeights b = load_gguf_block(f, config_from_gguf(f), l, w4, &notes);
    for (LinearRole r : kAllLinearRoles) {
      const auto [out, in] = shape_of(cfg, r);
      const QuantizedMatrix q =
          read_awq_linear(ck, find_architecture("llama")->linear_name(l, r), *cfg.quant, out, in);
      ASSERT_TRUE(b[r].w4) << linear_role_name(r);
      const kernels::W4Matrix& m = *b[r].w4;
      EXPECT_EQ(m.group(), q.group);
      int bad = 0;
      for (int64_t o = 0; o < out; ++o) {
        for (int64_t i = 0; i < in; ++i) bad += m.code(o, i) != q.codes[size_t(o * in + i)];
        for (int64_t g = 0; g < q.n_groups(); ++g) {
          bad += m.scale(o, g) != q.scales[size_t(o * q.n_groups() + g)];
          bad += m.zero(o, g) != q.zeros[size_t(o * q.n_groups() + g)];
        }
      }
      EXPECT_EQ(bad, 0) << "layer " << l << " " << linear_role_name(r);
    }
  }
  EXPECT_TRUE(notes.empty());

  // Config and tokenizer.
  const ModelConfig gc = config_from_gguf(f);
  EXPECT_EQ(gc.hidden_size, cfg.hidden_size);
  EXPECT_EQ(gc.head_dim, cfg.head_dim);
  EXPECT_EQ(gc.rms_norm_eps, cfg.rms_norm_eps);
  EXPECT_EQ(gc.rope_theta, cfg.rope_theta);
  EXPECT_EQ(gc.tie_word_embeddings, false);
  const Tokenizer dir_tok = Tokenizer::from_dir(e.dir);
  const Tokenizer gguf_tok = load_gguf_tokenizer(e.gguf);
  const auto tokens = dir_tok.encode(kText, true);
  EXPECT_EQ(gguf_tok.encode(kText, true), tokens);
  EXPECT_EQ(gguf_tok.decode(tokens, true), dir_tok.decode(tokens, true));

  // Perplexity from both files: native (f32 weights; differs by m's rounding only) and W4 (the
  // same codes, scales and zeros: the same numbers).
  const double nll_ck = mean_nll(Model::load(e.dir, LoadOptions{}), tokens);
  const double nll_gguf = mean_nll(load_gguf_model(e.gguf, LoadOptions{}), tokens);
  EXPECT_NEAR(std::exp(nll_gguf) / std::exp(nll_ck), 1.0, 1e-4) << nll_ck << " vs " << nll_gguf;
  const double w4_ck = mean_nll(Model::load(e.dir, w4), tokens);
  const double w4_gguf = mean_nll(load_gguf_model(e.gguf, w4), tokens);
  EXPECT_EQ(w4_ck, w4_gguf);
  EXPECT_NEAR(w4_ck, nll_ck, 1e-3 * nll_ck);
}

TEST(ExportGguf, SymmetricAwqIsExactQ4_0) {
  test::SynthSpec spec;
  spec.zero_point = false;
  spec.group = 32;
  const Exported e = export_synthetic("export_q4_0", spec);
  EXPECT_EQ(e.report.linear_type, "Q4_0");
  EXPECT_EQ(GgufFile(e.gguf).get_int("general.file_type"), 2);
  EXPECT_EQ(check_weights_against_checkpoint(e, true), 0.0);
}

TEST(ExportGguf, Qwen2KeepsRowOrderAndBiasesWithTiedEmbeddings) {
  test::SynthSpec spec;
  spec.model_type = "qwen2";
  spec.tie = true;
  spec.inter = 256;
  spec.group = 128;  // a group of four blocks sharing d and m
  ExportOptions o;
  o.embeddings = "q8_0";
  const Exported e = export_synthetic("export_qwen2", spec, o);
  EXPECT_EQ(e.report.arch, "qwen2");
  EXPECT_EQ(e.report.tokenizer_model, "gpt2");
  EXPECT_EQ(e.report.tokenizer_pre, "gpt-2");
  const GgufFile f(e.gguf);
  EXPECT_EQ(f.find_tensor("output.weight"), nullptr);
  EXPECT_EQ(f.tensor("token_embd.weight").type, GgmlType::Q8_0);
  EXPECT_EQ(f.get_int("qwen2.block_count"), 2);
  EXPECT_LE(check_weights_against_checkpoint(e, false), 1.0 + 1e-9);
  // Biases are F32 and, without a permutation, equal to the checkpoint's.
  const Checkpoint ck = Checkpoint::open(e.dir);
  for (LinearRole r : {LinearRole::Q, LinearRole::K, LinearRole::V}) {
    const GgufTensor& t = f.tensor(gguf_linear_tensor(1, r, "bias"));
    EXPECT_EQ(t.type, GgmlType::F32);
    const auto ref = ck.read_vec(find_architecture("qwen2")->linear_name(1, r) + ".bias", t.ne[0]);
    const Mat got = gguf_tensor_f32(t);
    EXPECT_EQ(std::vector<float>(got.data.begin(), got.data.end()), ref);
  }
  // Runs: same perplexity within the Q8_0 embedding's error.
  const Tokenizer tok = Tokenizer::from_dir(e.dir);
  const auto tokens = tok.encode(kText, true);
  const GgufLoad g = load_gguf(e.gguf);
  EXPECT_EQ(g.tokenizer.encode(kText, true), tokens);
  const double a = mean_nll(Model::load(e.dir), tokens), b = mean_nll(g.model, tokens);
  EXPECT_NEAR(b, a, 0.01 * a);
}

TEST(ExportGguf, FloatCheckpointsExportExactlyToF16AndF32) {
  test::SynthSpec spec;
  spec.awq = false;
  for (const char* type : {"auto", "f32"}) {
    ExportOptions o;
    o.type = type;
    const Exported e = export_synthetic(std::string("export_float_") + type, spec, o);
    EXPECT_EQ(e.report.linear_type, std::string(type) == "f32" ? "F32" : "F16");
    const GgufFile f(e.gguf);
    EXPECT_EQ(f.get_int("general.file_type"), std::string(type) == "f32" ? 0 : 1);
    // Loaded back (Q/K un-permuted), every weight equals the checkpoint's.
    const ModelConfig cfg = ModelConfig::load(e.dir);
    const Checkpoint ck = Checkpoint::open(e.dir);
    const BlockWeights b = load_gguf_block(f, config_from_gguf(f), 1, LoadOptions{});
    for (LinearRole r : kAllLinearRoles) {
      const auto [out, in] = shape_of(cfg, r);
      EXPECT_EQ(
          b[r].w.data,
          ck.read_mat(find_architecture("llama")->linear_name(1, r) + ".weight", out, in).data)
          << linear_role_name(r);
    }
  }
}

void expect_export_error(const std::string& name, test::SynthSpec spec, ExportOptions o,
                         std::initializer_list<std::string> fragments) {
  try {
    export_synthetic(name, spec, o);
    FAIL() << "no error for " << name;
  } catch (const Error& e) {
    for (const auto& frag : fragments)
      EXPECT_NE(std::string(e.what()).find(frag), std::string::npos)
          << "'" << frag << "' not in: " << e.what();
  }
}

TEST(ExportGguf, ClearErrorsForWhatCannotBeExact) {
  test::SynthSpec spec;
  spec.group = 16;
  expect_export_error("err_group", spec, {},
                      {"group size 16 is not a multiple of 32", "--group-size 32, 64"});
  test::SynthSpec asym;
  ExportOptions q40;
  q40.type = "q4_0";
  expect_export_error("err_q4_0", asym, q40, {"asymmetric", "--type q4_1"});
  test::SynthSpec flt;
  flt.awq = false;
  ExportOptions q41;
  q41.type = "q4_1";
  expect_export_error("err_float_q4", flt, q41, {"needs an AWQ checkpoint", "never re-quantizes"});
  test::SynthSpec odd;
  odd.inter = 176;  // 176 = 5.5 × 32: no group size fits every width
  odd.group = 16;
  expect_export_error("err_width", odd, {}, {"not all multiples of 32", "--type f16"});
}

TEST(ExportGguf, AnyModelLoaderDispatchesOnTheFile) {
  test::SynthSpec spec;
  spec.awq = false;
  const Exported e = export_synthetic("export_dispatch", spec);
  EXPECT_TRUE(is_gguf_file(e.gguf));
  EXPECT_FALSE(is_gguf_file(e.dir));
  EXPECT_FALSE(is_gguf_file(e.dir + "/config.json"));
  const Model a = load_any_model(e.gguf), b = load_any_model(e.dir);
  EXPECT_EQ(a.config().hidden_size, b.config().hidden_size);
  // "auto": a float GGUF file runs as stored, a Q4_0/Q4_1 one on the W4A8 kernels.
  EXPECT_EQ(weight_form_for_any(e.gguf, "auto").weights, WeightForm::Native);
  EXPECT_EQ(weight_form_for_any(e.dir, "auto").weights, WeightForm::Native);
  EXPECT_TRUE(weight_form_for_any(e.gguf, "w4a8").w4a8);
  test::SynthSpec qspec;
  const Exported q = export_synthetic("export_dispatch_q4", qspec);
  const LoadOptions qo = weight_form_for_any(q.gguf, "auto");
  EXPECT_EQ(qo.weights, WeightForm::W4);
  EXPECT_TRUE(qo.w4a8);
  EXPECT_TRUE(load_any_model(q.gguf).block(0)[LinearRole::Q].w4a8);
}

}  // namespace
}  // namespace awq::gguf
