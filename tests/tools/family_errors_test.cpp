// Family configs and checkpoints that awq.cpp cannot compute exactly are refused with one clear
// error naming the file and the key or tensor — never silently run as something else.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/files.h"
#include "model/model.h"
#include "test_util.h"
#include "tools/synth.h"

namespace awq {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;

json tiny(const std::string& type) {
  return {{"model_type", type},     {"hidden_size", 64},        {"intermediate_size", 96},
          {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"num_key_value_heads", 2},
          {"vocab_size", 300}};
}

std::string config_error(const json& j) {
  try {
    ModelConfig::from_json(j, "dir/config.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

#define EXPECT_MENTIONS(msg, what) EXPECT_NE((msg).find(what), std::string::npos) << (msg)

TEST(FamilyErrors, UnknownRopeTypeIsNamed) {
  json j = tiny("llama");
  j["rope_scaling"] = {{"rope_type", "su-per"}, {"factor", 2.0}};
  const std::string e = config_error(j);
  EXPECT_MENTIONS(e, "dir/config.json");
  EXPECT_MENTIONS(e, "'su-per'");
  EXPECT_MENTIONS(e, "longrope");  // lists what is supported
}

TEST(FamilyErrors, RopeScalingMissingItsKeys) {
  json j = tiny("llama");
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}};
  EXPECT_MENTIONS(config_error(j), "low_freq_factor");
  j["rope_scaling"] = {{"factor", 8.0}};
  EXPECT_MENTIONS(config_error(j), "no 'rope_type'");
  json p = tiny("phi3");
  p["rope_scaling"] = {{"type", "longrope"},
                       {"short_factor", std::vector<double>(3, 1.0)},
                       {"long_factor", std::vector<double>(8, 1.0)}};
  const std::string e = config_error(p);
  EXPECT_MENTIONS(e, "short_factor");
  EXPECT_MENTIONS(e, "rotary_dim/2 = 8");
}

TEST(FamilyErrors, FeatureTheFamilyLacksIsRefused) {
  for (const char* key : {"attn_logit_softcapping", "final_logit_softcapping",
                          "query_pre_attn_scalar", "sliding_window", "rope_local_base_freq"}) {
    json j = tiny("llama");
    j[key] = 50.0;
    const std::string e = config_error(j);
    EXPECT_MENTIONS(e, key);
    EXPECT_MENTIONS(e, "'llama'");
  }
  json j = tiny("qwen3");
  j["partial_rotary_factor"] = 0.5;
  EXPECT_MENTIONS(config_error(j), "partial_rotary_factor");
  json g = tiny("gemma3_text");
  g["attn_logit_softcapping"] = 50.0;  // HF's Gemma-3 attention ignores it: so do we, loudly
  EXPECT_MENTIONS(config_error(g), "attn_logit_softcapping");
  json a = tiny("llama");
  a["hidden_act"] = "gelu";
  EXPECT_MENTIONS(config_error(a), "hidden_act");
}

TEST(FamilyErrors, Gemma3WithoutTextConfig) {
  json j = tiny("gemma3");
  const std::string e = config_error(j);
  EXPECT_MENTIONS(e, "dir/config.json");
  EXPECT_MENTIONS(e, "text_config");
}

TEST(FamilyErrors, LayerTypesOfTheWrongLength) {
  json j = tiny("gemma3_text");
  j["layer_types"] = {"sliding_attention"};
  EXPECT_MENTIONS(config_error(j), "layer_types");
}

// A fused Phi-3 qkv_proj whose height does not match the config's heads: the loader names the
// tensor and both shapes.
TEST(FamilyErrors, FusedTensorOfTheWrongHeight) {
  const fs::path dir = test::scratch_dir("family_errors_fused") / "m";
  fs::create_directories(dir.parent_path());
  json j = tiny("phi3");
  j["num_key_value_heads"] = 4;
  const fs::path cfg = dir.parent_path() / "config.json";
  write_text_file_atomic(cfg.string(), j.dump());
  SynthOptions o;
  o.shape.clear();
  o.config_path = cfg.string();
  o.out_dir = dir.string();
  o.dtype = DType::F32;
  write_synthetic_model(o);
  json c = json::parse(read_text_file((dir / "config.json").string()));
  c["num_key_value_heads"] = 2;  // the tensors have q + 2 x 4 heads' rows
  write_text_file_atomic((dir / "config.json").string(), c.dump());
  try {
    Model::load(dir.string());
    FAIL() << "loaded a qkv_proj of the wrong height";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_MENTIONS(m, "model.layers.0.self_attn.qkv_proj.weight");
    EXPECT_MENTIONS(m, "128");  // 64 + 2 * 2 * 16 rows expected
  }
}

}  // namespace
}  // namespace awq

namespace awq {
namespace {

json tiny_moe(const std::string& type) {
  json j = tiny(type);
  j["num_experts_per_tok"] = 2;
  if (type == "mixtral") {
    j["num_local_experts"] = 4;
  } else {
    j["num_experts"] = 4;
    j["moe_intermediate_size"] = 32;
    if (type == "qwen2_moe") j["shared_expert_intermediate_size"] = 48;
  }
  return j;
}

// A tiny MoE checkpoint written by awq synth from `j`; returns its directory.
fs::path synth_moe(const std::string& name, const json& j) {
  const fs::path dir = test::scratch_dir("family_errors_" + name) / "m";
  const fs::path cfg = dir.parent_path() / "config.json";
  write_text_file_atomic(cfg.string(), j.dump());
  SynthOptions o;
  o.shape.clear();
  o.config_path = cfg.string();
  o.out_dir = dir.string();
  o.dtype = DType::F32;
  write_synthetic_model(o);
  return dir;
}

std::string load_error(const fs::path& dir) {
  try {
    Model::load(dir.string());
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(FamilyErrors, MoeKeyOnADenseFamilyIsRefused) {
  for (const char* key : {"num_experts", "num_local_experts", "num_experts_per_tok",
                          "moe_intermediate_size", "decoder_sparse_step"}) {
    json j = tiny("qwen2");
    j[key] = 4;
    const std::string e = config_error(j);
    EXPECT_MENTIONS(e, "dir/config.json");
    EXPECT_MENTIONS(e, key);
    EXPECT_MENTIONS(e, "not a mixture-of-experts family");
  }
  // Each MoE family reads its own keys only: transformers would ignore the others.
  json m = tiny_moe("mixtral");
  m["mlp_only_layers"] = {0};
  EXPECT_MENTIONS(config_error(m), "mlp_only_layers");
  m = tiny_moe("mixtral");
  m["norm_topk_prob"] = false;  // Mixtral always renormalizes
  EXPECT_MENTIONS(config_error(m), "norm_topk_prob");
  m["norm_topk_prob"] = true;
  EXPECT_EQ(config_error(m), "(no error)");
  json q = tiny_moe("qwen3_moe");
  q["num_local_experts"] = 8;
  EXPECT_MENTIONS(config_error(q), "num_local_experts");
  q = tiny_moe("qwen3_moe");
  q["shared_expert_intermediate_size"] = 64;
  EXPECT_MENTIONS(config_error(q), "shared_expert_intermediate_size");
}

TEST(FamilyErrors, MoeConfigOutOfRange) {
  json j = tiny_moe("qwen3_moe");
  j["num_experts_per_tok"] = 5;
  std::string e = config_error(j);
  EXPECT_MENTIONS(e, "dir/config.json");
  EXPECT_MENTIONS(e, "num_experts_per_tok 5");
  EXPECT_MENTIONS(e, "num_experts 4");
  j = tiny_moe("mixtral");
  j["num_experts_per_tok"] = 0;
  EXPECT_MENTIONS(config_error(j), "num_experts_per_tok 0");
  j = tiny_moe("qwen2_moe");
  j["decoder_sparse_step"] = 0;
  EXPECT_MENTIONS(config_error(j), "decoder_sparse_step");
  j = tiny_moe("qwen2_moe");
  j["mlp_only_layers"] = {"1"};
  EXPECT_MENTIONS(config_error(j), "mlp_only_layers");
  j = tiny_moe("qwen2_moe");
  j["head_dim"] = 32;  // Qwen2-MoE's attention always uses hidden / heads = 16
  EXPECT_MENTIONS(config_error(j), "head_dim 32");
  j = tiny_moe("qwen3_moe");
  j["use_sliding_window"] = true;
  EXPECT_MENTIONS(config_error(j), "use_sliding_window");
}

// The router must be [experts, hidden]: a config that says more experts than the checkpoint has.
TEST(FamilyErrors, RouterOfTheWrongShape) {
  const fs::path dir = synth_moe("router", tiny_moe("mixtral"));
  json c = json::parse(read_text_file((dir / "config.json").string()));
  c["num_local_experts"] = 6;
  write_text_file_atomic((dir / "config.json").string(), c.dump());
  const std::string e = load_error(dir);
  EXPECT_MENTIONS(e, "model.safetensors");
  EXPECT_MENTIONS(e, "model.layers.0.block_sparse_moe.gate.weight");
  EXPECT_MENTIONS(e, "[6, 64]");
}

// An expert's tensor missing from the checkpoint (renamed in the safetensors header, same length).
TEST(FamilyErrors, MissingExpertTensor) {
  const fs::path dir = synth_moe("expert", tiny_moe("qwen2_moe"));
  const fs::path st = dir / "model.safetensors";
  std::string bytes = read_text_file(st.string());
  const std::string from = "model.layers.1.mlp.experts.3.down_proj.weight";
  const std::string to = "model.layers.1.mlp.experts.3.down_prox.weight";
  const size_t at = bytes.find(from);
  ASSERT_NE(at, std::string::npos);
  bytes.replace(at, from.size(), to);
  write_text_file_atomic(st.string(), bytes);
  const std::string e = load_error(dir);
  EXPECT_MENTIONS(e, from);
  EXPECT_MENTIONS(e, "not found");
  // The shared expert's gate likewise.
  const fs::path dir2 = synth_moe("shared_gate", tiny_moe("qwen2_moe"));
  const fs::path st2 = dir2 / "model.safetensors";
  bytes = read_text_file(st2.string());
  const std::string g = "model.layers.0.mlp.shared_expert_gate.weight";
  const size_t at2 = bytes.find(g);
  ASSERT_NE(at2, std::string::npos);
  bytes[at2 + g.size() - 8] = 'W';  // ".Weight"
  write_text_file_atomic(st2.string(), bytes);
  EXPECT_MENTIONS(load_error(dir2), g);
}

// A layer that mlp_only_layers makes dense needs the dense MLP's tensors, and a sparse one its
// router: a config that disagrees with the checkpoint names the missing tensor.
TEST(FamilyErrors, SparseLayerWithoutRouter) {
  json j = tiny_moe("qwen3_moe");
  j["mlp_only_layers"] = {1};
  const fs::path dir = synth_moe("sparse_layers", j);
  EXPECT_EQ(load_error(dir), "(no error)");
  json c = json::parse(read_text_file((dir / "config.json").string()));
  c["mlp_only_layers"] = json::array();
  write_text_file_atomic((dir / "config.json").string(), c.dump());
  EXPECT_MENTIONS(load_error(dir), "model.layers.1.mlp.gate.weight");
}

}  // namespace
}  // namespace awq
