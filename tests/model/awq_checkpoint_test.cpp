// AutoAWQ GEMM checkpoints: every float linear of a random model quantized (quant layer), packed
// (qweight/qzeros/scales) and written with quantization_config; loaded as dequantized f32, as the
// W4 kernels' form (w4a16, w4a8). The forms agree with each other and with the quantizer's weights.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "base/files.h"
#include "formats/checkpoint_writer.h"
#include "model/model.h"
#include "quant/awq_gemm_pack.h"
#include "quant/quantize.h"
#include "test_util.h"
#include "tiny_model.h"

namespace awq {
namespace {
namespace fs = std::filesystem;

template <typename T>
std::vector<uint8_t> bytes_of(const std::vector<T>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

struct AwqModel {
  fs::path dir;
  std::map<std::string, QuantizedMatrix> q;  // by linear prefix
};

// Quantizes the 2-D *_proj weights of a float model in `src` and writes an AWQ checkpoint.
AwqModel write_awq_model(
    const fs::path& src, const test::TinyWeights& w, const fs::path& dst, int group,
    const std::function<void(std::string&, std::vector<int64_t>&)>& tamper = {}) {
  AwqModel out;
  out.dir = dst;
  const Checkpoint ck = Checkpoint::open(src.string());
  StagedDir sd(dst.string());
  {
    CheckpointWriter cw(sd);
    for (const auto& name : ck.names()) {
      const auto& t = ck.get(name);
      const bool linear = name.find("_proj.weight") != std::string::npos;
      if (!linear) {
        cw.add_f32_as(name, DType::F16, t.shape, w.at(name));
        continue;
      }
      const std::string prefix = name.substr(0, name.size() - 7);
      QuantSpec spec;
      spec.group_size = group;
      QuantizedMatrix qm = quantize(w.at(name).data(), t.shape[0], t.shape[1], spec, name);
      const AwqGemmTensors g = pack_awq_gemm(qm, name);
      std::string qn = prefix + ".qweight";
      std::vector<int64_t> qshape = {g.K, g.N / 8};
      if (tamper) tamper(qn, qshape);
      cw.add(qn, DType::I32, qshape, bytes_of(g.qweight));
      cw.add(prefix + ".qzeros", DType::I32, {g.K / g.group, g.N / 8}, bytes_of(g.qzeros));
      cw.add(prefix + ".scales", DType::F16, {g.K / g.group, g.N}, bytes_of(g.scales_f16));
      out.q.emplace(prefix, std::move(qm));
    }
    cw.finish();
  }
  auto cfg = nlohmann::json::parse(read_text_file((src / "config.json").string()));
  cfg["torch_dtype"] = "float16";
  cfg["quantization_config"] = {{"quant_method", "awq"},
                                {"bits", 4},
                                {"group_size", group},
                                {"zero_point", true},
                                {"version", "gemm"}};
  write_text_file_atomic(sd.path("config.json").string(), cfg.dump(2));
  sd.commit();
  return out;
}

test::TinySpec awq_spec() {
  test::TinySpec s;
  s.hidden = 64;
  s.inter = 96;
  s.heads = 4;
  s.kv_heads = 2;
  return s;
}

TEST(AwqCheckpoint, LoadsInEveryFormAndTheFormsAgree) {
  const auto root = test::scratch_dir("awq_ckpt");
  const auto spec = awq_spec();
  const auto w = test::write_tiny_model(root / "fp", spec);
  const AwqModel am = write_awq_model(root / "fp", w, root / "awq", 32);

  // The run-time default: W4A8 for an AWQ checkpoint (LoadOptions::fastest), the exact W4A16
  // one flag away, full precision in place.
  EXPECT_EQ(weight_form_for(am.dir.string(), "auto").weights, WeightForm::W4);
  EXPECT_TRUE(weight_form_for(am.dir.string(), "auto").w4a8);
  EXPECT_FALSE(weight_form_for(am.dir.string(), "w4").w4a8);
  EXPECT_EQ(weight_form_for((root / "fp").string(), "auto").weights, WeightForm::Native);
  {
    const Model by_default = Model::load(am.dir.string());  // no options: auto
    EXPECT_NE(by_default.block(0)[LinearRole::Q].w4, nullptr);
    EXPECT_TRUE(by_default.block(0)[LinearRole::Q].w4a8);
  }
  EXPECT_EQ(weight_form_for((root / "fp").string(), "f32").weights, WeightForm::F32);
  const Model f32 = Model::load(am.dir.string(), {WeightForm::F32});
  // The working form holds exactly the quantizer's (code - zero) * scale.
  const auto& qm = am.q.at("model.layers.1.mlp.down_proj");
  std::vector<float> deq(size_t(qm.out * qm.in));
  qm.dequantize(deq.data());
  const FloatBuffer& got = f32.block(1)[LinearRole::Down].w.data;
  EXPECT_EQ(std::vector<float>(got.begin(), got.end()), deq);

  const Model w4 = Model::load(am.dir.string(), {WeightForm::W4});
  EXPECT_NE(w4.block(0)[LinearRole::Q].w4, nullptr);
  EXPECT_TRUE(w4.block(0)[LinearRole::Q].w.empty());
  const Model w4a8 = Model::load(am.dir.string(), {WeightForm::W4, true});
  EXPECT_TRUE(w4a8.block(0)[LinearRole::Gate].w4a8);

  std::vector<int32_t> tokens(24);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int32_t((i * 37 + 5) % spec.vocab);
  const Mat a = f32.forward(tokens.data(), 2, 12);
  const Mat b = w4.forward(tokens.data(), 2, 12);
  const Mat c = w4a8.forward(tokens.data(), 2, 12);
  for (int64_t t = 0; t < a.rows; ++t) {
    EXPECT_LT(test::rel_err(b.row(t), a.row(t), a.cols), 1e-4) << t;
    EXPECT_LT(test::rel_err(c.row(t), a.row(t), a.cols), 5e-2) << t;
  }
  // Decoding with the 4-bit kernels matches their prefill.
  auto s = w4.session(12);
  std::vector<float> last;
  for (int64_t t = 0; t < 12; ++t) last = s.feed(tokens[size_t(t)]);
  EXPECT_LT(test::rel_err(last.data(), b.row(11), b.cols), 1e-4);
  // And the quantized model is close to, but not the same as, the float one.
  const Model fp = Model::load((root / "fp").string());
  const Mat d = fp.forward(tokens.data(), 2, 12);
  const double e = test::rel_err(a.row(5), d.row(5), a.cols);
  EXPECT_GT(e, 1e-4);
  EXPECT_LT(e, 0.3);
}

TEST(AwqCheckpoint, WrongQweightShapeNamesTheTensor) {
  const auto root = test::scratch_dir("awq_bad");
  const auto spec = awq_spec();
  const auto w = test::write_tiny_model(root / "fp", spec);
  write_awq_model(root / "fp", w, root / "awq", 32,
                  [](std::string& name, std::vector<int64_t>& shape) {
                    if (name == "model.layers.0.self_attn.v_proj.qweight")
                      std::swap(shape[0], shape[1]);
                  });
  try {
    Model::load((root / "awq").string(), {WeightForm::F32});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.0.self_attn.v_proj.qweight"),
              std::string::npos)
        << e.what();
  }
}

TEST(AwqCheckpoint, GroupTheW4KernelsCannotRunIsAClearError) {
  const auto root = test::scratch_dir("awq_g16");
  const auto spec = awq_spec();
  const auto w = test::write_tiny_model(root / "fp", spec);
  write_awq_model(root / "fp", w, root / "awq", 16);
  EXPECT_NO_THROW(Model::load((root / "awq").string(), {WeightForm::F32}));  // dequantized: fine
  try {
    Model::load((root / "awq").string(), {WeightForm::W4});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("4-bit kernels"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("q_proj"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace awq
