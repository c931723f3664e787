// AWQ on every supported family (tiny configs from tiny_model.h, one per model_type and feature):
// folding is exact, in memory and through the written checkpoint (Gemma's (1 + w) norms, Phi-3's
// fused tensors), and the AutoAWQ output is exactly the fake-quant model, loadable by awq::Model.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "awq/block_search.h"
#include "awq/pipeline.h"
#include "awq/writer.h"
#include "base/error.h"
#include "base/files.h"
#include "base/half.h"
#include "eval/perplexity.h"
#include "formats/checkpoint.h"
#include "model/block.h"
#include "model/model.h"
#include "quant/awq_gemm_pack.h"
#include "quant/quantize.h"
#include "test_util.h"
#include "tiny_model.h"

namespace awq {
namespace {
namespace fs = std::filesystem;

Mat random_input(int64_t rows, int64_t cols, uint64_t seed) {
  Mat x(rows, cols);
  uint64_t s = seed;
  for (auto& v : x.data) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    v = float(int64_t(s >> 40) % 2001 - 1000) / 500.0f;
  }
  return x;
}

std::vector<float> random_scales(int64_t n, uint64_t seed) {
  std::vector<float> s(static_cast<size_t>(n));
  uint64_t st = seed;
  for (auto& v : s) {
    st = st * 6364136223846793005ull + 1442695040888963407ull;
    v = 0.3f + 2.7f * float(st >> 40) / float(1 << 24);
  }
  return s;
}

double max_abs(const Mat& m) {
  double r = 0;
  for (float v : m.data) r = std::max(r, double(std::fabs(v)));
  return r;
}

double max_abs_diff(const Mat& a, const Mat& b) {
  EXPECT_EQ(a.size(), b.size());
  double r = 0;
  for (int64_t i = 0; i < std::min(a.size(), b.size()); ++i)
    r = std::max(r, double(std::fabs(a.data[size_t(i)] - b.data[size_t(i)])));
  return r;
}

// Random scales for every group that applies to the block (all of them, also those the search
// leaves off by default: the fold must be exact for any of them). Returns the number applied.
int random_groups(const Architecture& arch, const BlockWeights& w, uint64_t seed,
                  std::vector<GroupResult>* groups) {
  int applied = 0;
  for (const auto& g : arch.scaling_groups) {
    GroupResult r;
    r.name = g.name;
    r.layers = g.layers;
    r.applied = group_applies(g, w);
    if (r.applied) r.scales = random_scales(w[g.layers[0]].in, seed + groups->size());
    applied += r.applied;
    groups->push_back(r);
  }
  return applied;
}

// v→o folds only where v's rows are o's columns one to one: MHA (no GQA).
int expected_groups(const ModelConfig& c) {
  return c.num_key_value_heads == c.num_attention_heads ? 4 : 3;
}

struct FamilyModel {
  std::string dir;
  ModelConfig cfg;
  const Architecture* arch = nullptr;
};

FamilyModel make_model(const fs::path& root, const std::string& family,
                       const test::FamilyModelOptions& o = {}) {
  FamilyModel m;
  m.dir = (root / "model").string();
  test::write_family_model(m.dir, family, o);
  m.cfg = ModelConfig::load(m.dir);
  m.arch = find_architecture(m.cfg.model_type);
  return m;
}

class Family : public ::testing::TestWithParam<std::string> {};

// Folding random scales into every scaling group of every block leaves the f32 block output
// unchanged (norm folds, Gemma's (1 + w) multipliers, linear→linear folds into v's rows and up's,
// which for Phi-3 are rows of the fused tensors), and a GQA model skips v→o.
TEST_P(Family, RandomScalesKeepEveryBlockOutput) {
  const fs::path root = test::scratch_dir("fold_" + GetParam());
  const FamilyModel m = make_model(root, GetParam());
  const Checkpoint ck = Checkpoint::open(m.dir);
  const int64_t n_seq = 2, T = 20;  // longer than the sliding windows (8)
  for (int64_t l = 0; l < m.cfg.num_hidden_layers; ++l) {
    const Mat x = random_input(n_seq * T, m.cfg.hidden_size, 7 + uint64_t(l));
    BlockWeights w = load_block_f32(ck, m.cfg, *m.arch, l);
    Mat ref;
    BlockCapture cap;
    block_forward(m.cfg, w, x, n_seq, T, ref, &cap);
    std::vector<GroupResult> groups;
    EXPECT_EQ(random_groups(*m.arch, w, 11 + 10 * uint64_t(l), &groups), expected_groups(m.cfg));
    apply_block_scales(*m.arch, l, w, &cap, groups);
    Mat out;
    BlockCapture cap2;
    block_forward(m.cfg, w, x, n_seq, T, out, &cap2);
    EXPECT_LE(max_abs_diff(out, ref), 1e-5 * max_abs(ref)) << "layer " << l;
    for (LinearRole r : {LinearRole::Q, LinearRole::O, LinearRole::Gate, LinearRole::Down}) {
      const Mat& a = capture_input(cap, r);
      const Mat& b = capture_input(cap2, r);
      EXPECT_LE(max_abs_diff(a, b), 1e-5 * max_abs(b)) << linear_role_name(r);
    }
    const BlockWeights w0 = load_block_f32(ck, m.cfg, *m.arch, l);
    EXPECT_GT(max_abs_diff(w0[LinearRole::Q].w, w[LinearRole::Q].w), 1e-3);
    EXPECT_GT(max_abs_diff(w0[LinearRole::Down].w, w[LinearRole::Down].w), 1e-3);
  }
  fs::remove_all(root);
}

// The same folds written out (ModelWriter, f32, unquantized) and read back as a model: the
// checkpoint computes the same function. This is where the norm convention matters: Gemma's
// folded norm must be written as (1 + w)/s − 1 and Phi-3's v rows land in qkv_proj.
TEST_P(Family, FoldedCheckpointComputesTheSameFunction) {
  const fs::path root = test::scratch_dir("foldwrite_" + GetParam());
  const FamilyModel m = make_model(root, GetParam());
  const Checkpoint ck = Checkpoint::open(m.dir);
  const std::string out_dir = (root / "folded").string();
  {
    StagedDir staged(out_dir);
    ModelWriter writer(staged, m.cfg, *m.arch, false, DType::F32);
    writer.add_embeddings(ck);
    for (int64_t l = 0; l < m.cfg.num_hidden_layers; ++l) {
      BlockWeights w = load_block_f32(ck, m.cfg, *m.arch, l);
      std::vector<GroupResult> groups;
      random_groups(*m.arch, w, 31 + 10 * uint64_t(l), &groups);
      apply_block_scales(*m.arch, l, w, nullptr, groups);
      writer.add_block(l, w, {});
    }
    writer.finish(ck, m.dir);
    staged.commit();
  }
  // The same tensor names and shapes as the input (fused tensors stay fused).
  const Checkpoint out = Checkpoint::open(out_dir);
  std::vector<std::string> a = ck.names(), b = out.names();
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  EXPECT_EQ(a, b);
  for (const auto& n : a)
    EXPECT_EQ(out.has(n) ? out.get(n).shape : std::vector<int64_t>{}, ck.get(n).shape) << n;

  const Model base = Model::load(m.dir, LoadOptions{WeightForm::F32});
  const Model folded = Model::load(out_dir, LoadOptions{WeightForm::F32});
  const CalibBlocks text = test::random_calib(2, 24, m.cfg.vocab_size, 5);
  const Mat y0 = base.forward(text.tokens.data(), 2, 24);
  const Mat y1 = folded.forward(text.tokens.data(), 2, 24);
  EXPECT_LE(max_abs_diff(y0, y1), 2e-5 * max_abs(y0));
  fs::remove_all(root);
}

// The attention group's search measures the block's own attention: the identity candidate's loss
// is round-to-nearest q/k/v scored on the attention this layer computes (its q/k norms, its
// window and RoPE; here the last layer, which differs from layer 0 in the families with
// local/global layers).
TEST_P(Family, SearchScoresTheLayersOwnAttention) {
  const fs::path root = test::scratch_dir("search_" + GetParam());
  const FamilyModel m = make_model(root, GetParam());
  const Checkpoint ck = Checkpoint::open(m.dir);
  const int64_t n_seq = 2, T = 20, layer = m.cfg.num_hidden_layers - 1;
  const Mat x = random_input(n_seq * T, m.cfg.hidden_size, 3);
  const BlockWeights w = load_block_f32(ck, m.cfg, *m.arch, layer);
  Mat y;
  BlockCapture cap;
  block_forward(m.cfg, w, x, n_seq, T, y, &cap);
  ScaleSearchOptions opt;
  opt.spec = QuantSpec{4, 32, true};
  opt.mode = ScaleMode::X;
  opt.n_grid = 2;
  const auto groups = search_block_scales(m.cfg, *m.arch, layer, w, cap, n_seq, T, opt);
  ASSERT_EQ(groups[0].name, "attn.qkv");
  BlockWeights rtn = w;
  for (LinearRole r : {LinearRole::Q, LinearRole::K, LinearRole::V})
    fake_quantize(rtn[r].w.data.data(), rtn[r].out, rtn[r].in, opt.spec);
  Mat out;
  attention_forward(m.cfg, rtn, cap.attn_in, n_seq, T, out);
  double mse = 0;
  for (int64_t i = 0; i < out.size(); ++i) {
    const double d = double(out.data[size_t(i)]) - double(cap.attn_out.data[size_t(i)]);
    mse += d * d;
  }
  mse /= double(out.size());
  EXPECT_NEAR(groups[0].rtn_loss, mse, 1e-4 * mse);
  fs::remove_all(root);
}

template <typename T>
std::vector<T> raw(const TensorInfo& t) {
  std::vector<T> v(t.nbytes / sizeof(T));
  std::memcpy(v.data(), t.data, t.nbytes);
  return v;
}

// AWQ at W4 g32 written as AutoAWQ GEMM and as fake-quant: every stored linear (the fused ones as
// one [K, N/8] tensor with N the stacked rows) dequantizes bit for bit to the fake-quant weight;
// both load through awq::Model and evaluate alike.
TEST_P(Family, AutoAwqDequantizesToFakeQuantAndLoadsBack) {
  const fs::path root = test::scratch_dir("formats_" + GetParam());
  const FamilyModel m = make_model(root, GetParam());
  const CalibBlocks calib = test::random_calib(4, 24, m.cfg.vocab_size, 3);
  QuantizeOptions o;
  o.model_dir = m.dir;
  o.out_dir = (root / "awq").string();
  o.spec = QuantSpec{4, 32, true};
  o.calib_tokens = &calib;
  o.progress = false;
  o.quiet = true;
  const QuantizeReport rep = quantize_model(o);
  // q and k are never clipped, also where they are rows of Phi-3's qkv_proj; v and the rest are.
  for (const auto& b : rep.blocks) {
    std::vector<LinearRole> clipped;
    for (const auto& c : b.clips) clipped.push_back(c.role);
    EXPECT_EQ(clipped, (std::vector<LinearRole>{LinearRole::V, LinearRole::O, LinearRole::Gate,
                                                LinearRole::Up, LinearRole::Down}));
  }
  o.out_dir = (root / "fake").string();
  o.format = OutputFormat::FakeQuant;
  quantize_model(o);

  const Checkpoint a = Checkpoint::open((root / "awq").string());
  const Checkpoint f = Checkpoint::open((root / "fake").string());
  const Checkpoint in = Checkpoint::open(m.dir);
  const ModelConfig cfg = ModelConfig::load((root / "awq").string());
  EXPECT_EQ(cfg.model_type, m.cfg.model_type);
  ASSERT_TRUE(cfg.quant.has_value());
  EXPECT_EQ(cfg.torch_dtype, "float16");  // an f32 checkpoint is written as f16
  const Architecture& arch = *m.arch;
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    for (LinearRole r : kAllLinearRoles) {
      const StoredRows rows = stored_rows(cfg, arch, r);
      const std::string name = arch.stored_linear_name(l, r);
      if (arch.is_fused(r)) {
        EXPECT_FALSE(a.has(arch.linear_name(l, r) + ".qweight"));
      }
      if (rows.row0 != 0) continue;
      EXPECT_FALSE(a.has(name + ".weight"));
      const int64_t N = rows.rows, K = linear_shape(cfg, r).second;
      const TensorInfo& fq = f.get(name + ".weight", {N, K});
      AwqGemmTensors t;
      t.K = K;
      t.N = N;
      t.group = 32;
      t.qweight = raw<int32_t>(a.get(name + ".qweight", {K, N / 8}));
      t.qzeros = raw<int32_t>(a.get(name + ".qzeros", {K / 32, N / 8}));
      t.scales_f16 = raw<uint16_t>(a.get(name + ".scales", {K / 32, N}));
      const QuantizedMatrix q = unpack_awq_gemm(t, true, name);
      std::vector<float> deq(size_t(N * K));
      q.dequantize(deq.data());
      ASSERT_EQ(fq.dtype, DType::F16);
      const std::vector<uint16_t> want = raw<uint16_t>(fq);
      int64_t mismatches = 0;
      for (size_t i = 0; i < deq.size(); ++i) mismatches += f32_to_f16(deq[i]) != want[i];
      EXPECT_EQ(mismatches, 0) << name;
    }
  }
  // Every unquantized tensor of the input is in both outputs under its own name, identical in
  // both (norms folded alike, F16); Gemma-3 multimodal's vision side byte for byte as it was, and
  // kept out of the quantized modules.
  const std::string text_prefix = text_model_prefix(arch);
  for (const std::string& n : in.names()) {
    if (n.ends_with("_proj.weight")) continue;
    ASSERT_TRUE(a.has(n)) << n;
    ASSERT_TRUE(f.has(n)) << n;
    if (n.starts_with(text_prefix)) {
      EXPECT_EQ(a.get(n).dtype, DType::F16) << n;
      EXPECT_EQ(raw<uint16_t>(a.get(n)), raw<uint16_t>(f.get(n))) << n;
    } else {
      EXPECT_EQ(a.get(n).dtype, in.get(n).dtype) << n;
      EXPECT_EQ(raw<uint8_t>(a.get(n)), raw<uint8_t>(in.get(n))) << n;
    }
  }
  if (m.cfg.multimodal) {
    EXPECT_EQ(cfg.quant->modules_to_not_convert,
              (std::vector<std::string>{"multi_modal_projector", "vision_tower"}));
    const auto j = nlohmann::json::parse(read_text_file((root / "awq" / "config.json").string()));
    EXPECT_EQ(j["model_type"], "gemma3");
    EXPECT_TRUE(j.contains("text_config") && j["text_config"].contains("hidden_size"));
    EXPECT_TRUE(j["quantization_config"].is_object());
    EXPECT_FALSE(j["text_config"].contains("quantization_config"));
  }

  // Both load and compute the same model: the AutoAWQ one dequantizes to f32 what the fake-quant
  // one holds rounded to f16.
  const Model ma = Model::load((root / "awq").string(), LoadOptions{WeightForm::F32});
  const Model mf = Model::load((root / "fake").string(), LoadOptions{WeightForm::F32});
  const Model base = Model::load(m.dir, LoadOptions{WeightForm::F32});
  const CalibBlocks text = test::random_calib(2, 32, cfg.vocab_size, 9);
  PerplexityOptions po;
  po.ctx = 32;
  po.progress = false;
  const PerplexityResult ra = perplexity(ma, text.tokens, 1, po, &base);
  const PerplexityResult rf = perplexity(mf, text.tokens, 1, po, &base);
  EXPECT_NEAR(ra.ppl, rf.ppl, 1e-3 * rf.ppl);
  ASSERT_TRUE(ra.kld && rf.kld);
  EXPECT_NEAR(ra.kld->mean, rf.kld->mean, 0.02 * rf.kld->mean + 1e-6);
  EXPECT_GT(rf.kld->mean, 0.0);
  fs::remove_all(root);
}

INSTANTIATE_TEST_SUITE_P(AllFamilies, Family, ::testing::ValuesIn(test::family_names()),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

// A bf16 checkpoint stays bf16: unquantized tensors keep their bytes (RTN folds nothing) and
// config.json says bfloat16; AWQ's scales stay F16 as the layout requires.
TEST(Families, Bf16CheckpointIsWrittenInBf16) {
  const fs::path root = test::scratch_dir("bf16_gemma3");
  test::FamilyModelOptions mo;
  mo.dtype = DType::BF16;
  const FamilyModel m = make_model(root, "gemma3_text", mo);
  QuantizeOptions o;
  o.model_dir = m.dir;
  o.out_dir = (root / "rtn").string();
  o.method = QuantMethod::Rtn;
  o.spec = QuantSpec{4, 32, true};
  o.progress = false;
  o.quiet = true;
  quantize_model(o);
  const Checkpoint in = Checkpoint::open(m.dir);
  const Checkpoint out = Checkpoint::open(o.out_dir);
  EXPECT_EQ(ModelConfig::load(o.out_dir).torch_dtype, "bfloat16");
  for (const std::string& n : in.names()) {
    if (n.ends_with("_proj.weight")) continue;
    ASSERT_TRUE(out.has(n)) << n;
    EXPECT_EQ(out.get(n).dtype, DType::BF16) << n;
    EXPECT_EQ(raw<uint16_t>(out.get(n)), raw<uint16_t>(in.get(n))) << n;
  }
  EXPECT_EQ(out.get("model.layers.0.self_attn.q_proj.scales").dtype, DType::F16);
  fs::remove_all(root);
}

// Scaling groups are data: a group can be off by default for a family (ScalingGroup::
// off_by_default; none is today: Gemma-3's input_layernorm → q,k,v measured better on than off),
// --group-on / --group-off change the defaults, unknown names are errors.
TEST(Families, ScalingGroupsTurnOffAndOn) {
  Architecture g3 = *find_architecture("gemma3_text");
  const Architecture& llama = *find_architecture("llama");
  QuantizeOptions o;
  EXPECT_TRUE(skipped_groups(g3, o).empty());
  g3.scaling_groups[0].off_by_default = true;  // what llm-compressor does for Gemma-3
  EXPECT_EQ(skipped_groups(g3, o), std::vector<std::string>{"attn.qkv"});
  EXPECT_TRUE(skipped_groups(llama, o).empty());
  o.groups_off = {"mlp.down"};
  EXPECT_EQ(skipped_groups(llama, o), std::vector<std::string>{"mlp.down"});
  o.groups_on = {"attn.qkv"};
  EXPECT_EQ(skipped_groups(g3, o), std::vector<std::string>{"mlp.down"});
  o.groups_off = {"attn.qkv"};
  EXPECT_THROW(skipped_groups(g3, o), Error);  // both off and on
  o.groups_on.clear();
  o.groups_off = {"attn.qk"};
  EXPECT_THROW(skipped_groups(llama, o), Error);

  // A skipped group is neither searched nor folded.
  const fs::path root = test::scratch_dir("groups_off");
  const FamilyModel m = make_model(root, "llama");
  const CalibBlocks calib = test::random_calib(4, 16, m.cfg.vocab_size, 3);
  QuantizeOptions q;
  q.model_dir = m.dir;
  q.out_dir = (root / "out").string();
  q.spec = QuantSpec{4, 32, true};
  q.calib_tokens = &calib;
  q.progress = false;
  q.quiet = true;
  q.groups_off = {"attn.qkv", "mlp.gate_up"};
  const QuantizeReport rep = quantize_model(q);
  for (const auto& b : rep.blocks)
    for (const auto& g : b.groups) EXPECT_EQ(g.applied, g.name == "mlp.down") << g.name;
  const Checkpoint in = Checkpoint::open(m.dir), out = Checkpoint::open(q.out_dir);
  const std::string norm = "model.layers.0.input_layernorm.weight";
  const auto n_in = in.read_vec(norm, m.cfg.hidden_size),
             n_out = out.read_vec(norm, m.cfg.hidden_size);
  for (size_t i = 0; i < n_in.size(); ++i) EXPECT_EQ(n_out[i], round_to_f16(n_in[i]));
  fs::remove_all(root);
}

}  // namespace
}  // namespace awq
