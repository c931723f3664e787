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
