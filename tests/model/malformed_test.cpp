// Bad inputs reach the user as one clear awq::Error naming the file and the tensor or field, never
// a crash: each case is a model directory broken in one way, loaded through Model::load.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "base/files.h"
#include "formats/checkpoint_writer.h"
#include "model/model.h"
#include "test_util.h"
#include "tiny_model.h"

namespace awq {
namespace {
namespace fs = std::filesystem;

// A valid tiny model in a fresh scratch directory.
fs::path good_model(const std::string& name, test::TinyWeights* w = nullptr,
                    test::TinySpec spec = {}) {
  const fs::path dir = test::scratch_dir(name) / "m";
  auto weights = test::write_tiny_model(dir, spec);
  if (w) *w = std::move(weights);
  return dir;
}

std::string load_error(const fs::path& dir, const LoadOptions& o = {}) {
  try {
    Model::load(dir.string(), o);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

#define EXPECT_MENTIONS(msg, what) EXPECT_NE((msg).find(what), std::string::npos) << (msg)

// Rewrites model.safetensors with a hand-made header (8-byte length, JSON) and data bytes.
void write_raw_safetensors(const fs::path& path, const std::string& header, size_t data_bytes,
                           int64_t claimed = -1) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  const uint64_t n = claimed >= 0 ? uint64_t(claimed) : header.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out.write(header.data(), std::streamsize(header.size()));
  const std::string zeros(data_bytes, '\0');
  out.write(zeros.data(), std::streamsize(zeros.size()));
}

// Rewrites the checkpoint from `w`, with `edit` applied to the list of (name, shape, dtype).
struct Entry {
  std::string name;
  std::vector<int64_t> shape;
  DType dtype = DType::F32;
  std::vector<float> values;
};
void rewrite(const fs::path& dir, const test::TinyWeights& w,
             const std::function<void(std::vector<Entry>&)>& edit) {
  const Checkpoint old = Checkpoint::open(dir.string());
  std::vector<Entry> entries;
  for (const auto& name : old.names())
    entries.push_back({name, old.get(name).shape, DType::F32, w.at(name)});
  edit(entries);
  const std::string cfg = read_text_file((dir / "config.json").string());
  StagedDir out(dir.string());
  CheckpointWriter cw(out);
  for (const auto& e : entries) cw.add_f32_as(e.name, e.dtype, e.shape, e.values);
  cw.finish();
  write_text_file_atomic(out.path("config.json").string(), cfg);
  out.commit();
}

TEST(Malformed, TruncatedSafetensors) {
  const auto dir = good_model("trunc");
  const fs::path f = dir / "model.safetensors";
  fs::resize_file(f, fs::file_size(f) - 100);
  const std::string msg = load_error(dir);
  EXPECT_MENTIONS(msg, f.string());
  EXPECT_MENTIONS(msg, "out of range");
}

TEST(Malformed, HeaderLengthPastTheEnd) {
  const auto dir = good_model("hdrlen");
  write_raw_safetensors(dir / "model.safetensors", "{}", 16, 1 << 20);
  const std::string msg = load_error(dir);
  EXPECT_MENTIONS(msg, (dir / "model.safetensors").string());
  EXPECT_MENTIONS(msg, "past the end");
}

TEST(Malformed, OverlappingOffsets) {
  const auto dir = good_model("overlap");
  write_raw_safetensors(dir / "model.safetensors",
                        R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                        R"("b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})",
                        24);
  const std::string msg = load_error(dir);
  EXPECT_MENTIONS(msg, (dir / "model.safetensors").string());
  EXPECT_MENTIONS(msg, "overlap");
}

TEST(Malformed, OutOfRangeOffsets) {
  const auto dir = good_model("range");
  write_raw_safetensors(
      dir / "model.safetensors",
      R"({"model.norm.weight":{"dtype":"F32","shape":[32],"data_offsets":[0,128]}})", 64);
  const std::string msg = load_error(dir);
  EXPECT_MENTIONS(msg, "model.norm.weight");
  EXPECT_MENTIONS(msg, "out of range");
}

TEST(Malformed, UnknownDtype) {
  const auto dir = good_model("dtype");
  write_raw_safetensors(
      dir / "model.safetensors",
      R"({"model.norm.weight":{"dtype":"F8_E9M9","shape":[32],"data_offsets":[0,32]}})", 32);
  const std::string msg = load_error(dir);
  EXPECT_MENTIONS(msg, "model.norm.weight");
  EXPECT_MENTIONS(msg, "F8_E9M9");
}

TEST(Malformed, MissingTensor) {
  test::TinyWeights w;
  const auto dir = good_model("missing", &w);
  rewrite(dir, w, [](std::vector<Entry>& e) {
    std::erase_if(e,
                  [](const Entry& x) { return x.name == "model.layers.1.mlp.down_proj.weight"; });
  });
  const std::string msg = load_error(dir);
  EXPECT_MENTIONS(msg, "model.layers.1.mlp.down_proj.weight");
  EXPECT_MENTIONS(msg, "not found");
}

TEST(Malformed, WrongShape) {
  test::TinyWeights w;
  const auto dir = good_model("shape", &w);
  rewrite(dir, w, [](std::vector<Entry>& e) {
    for (auto& x : e)
      if (x.name == "model.layers.0.self_attn.k_proj.weight") x.shape = {32, 16};  // transposed
  });
  const std::string msg = load_error(dir);
  EXPECT_MENTIONS(msg, "model.layers.0.self_attn.k_proj.weight");
  EXPECT_MENTIONS(msg, "[32, 16], expected [16, 32]");
  EXPECT_MENTIONS(msg, "model.safetensors");
}

TEST(Malformed, IntegerWeight) {
  test::TinyWeights w;
  const auto dir = good_model("intweight", &w);
  const fs::path f = dir / "model.safetensors";
  const Checkpoint ck = Checkpoint::open(dir.string());
  // Re-declare the embedding as I32 with the same byte size.
  std::string header = "{";
  size_t off = 0;
  bool first = true;
  for (const auto& name : ck.names()) {
    const auto& t = ck.get(name);
    header +=
        fmt::format(R"({}"{}":{{"dtype":"{}","shape":[{}],"data_offsets":[{},{}]}})",
                    first ? "" : ",", name, name == "model.embed_tokens.weight" ? "I32" : "F32",
                    fmt::join(t.shape, ","), off, off + t.nbytes);
    off += t.nbytes;
    first = false;
  }
  header += "}";
  write_raw_safetensors(f, header, off);
  const std::string msg = load_error(dir);
  EXPECT_MENTIONS(msg, "model.embed_tokens.weight");
  EXPECT_MENTIONS(msg, "I32");
}

void edit_config(const fs::path& dir, const std::function<void(nlohmann::json&)>& edit) {
  auto j = nlohmann::json::parse(read_text_file((dir / "config.json").string()));
  edit(j);
  write_text_file_atomic((dir / "config.json").string(), j.dump());
}

TEST(Malformed, ConfigMissingField) {
  const auto dir = good_model("cfg_missing");
  edit_config(dir, [](nlohmann::json& j) { j.erase("hidden_size"); });
  const std::string msg = load_error(dir);
  EXPECT_MENTIONS(msg, (dir / "config.json").string());
  EXPECT_MENTIONS(msg, "hidden_size");
}

TEST(Malformed, ConfigUnsupportedModelTypeListsTheSupportedOnes) {
  const auto dir = good_model("cfg_type");
  edit_config(dir, [](nlohmann::json& j) { j["model_type"] = "gpt2"; });
  const std::string msg = load_error(dir);
  EXPECT_MENTIONS(msg, "config.json");
  EXPECT_MENTIONS(msg, "gpt2");
  EXPECT_MENTIONS(msg, "llama, mistral, qwen2");
}

TEST(Malformed, ConfigNotJson) {
  const auto dir = good_model("cfg_json");
  write_text_file_atomic((dir / "config.json").string(), "{\"model_type\": \"llama\",");
  const std::string msg = load_error(dir);
  EXPECT_MENTIONS(msg, (dir / "config.json").string());
  EXPECT_MENTIONS(msg, "invalid JSON");
}

TEST(Malformed, ConfigShapesDisagreeWithTheTensors) {
  const auto dir = good_model("cfg_shape");
  edit_config(dir, [](nlohmann::json& j) { j["intermediate_size"] = 50; });
  const std::string msg = load_error(dir);
  EXPECT_MENTIONS(msg, "model.layers.0.mlp.gate_proj.weight");
  EXPECT_MENTIONS(msg, "expected [50, 32]");
}

TEST(Malformed, NoCheckpointFiles) {
  const auto dir = good_model("no_weights");
  fs::remove(dir / "model.safetensors");
  const std::string msg = load_error(dir);
  EXPECT_MENTIONS(msg, dir.string());
  EXPECT_MENTIONS(msg, "model.safetensors");
}

TEST(Malformed, TokenOutsideTheVocabulary) {
  const auto dir = good_model("bad_token");
  const Model m = Model::load(dir.string());
  const std::vector<int32_t> t = {1, 2, 64};
  try {
    m.forward(t.data(), 1, 3);
    FAIL();
  } catch (const Error& e) {
    EXPECT_MENTIONS(std::string(e.what()), "token id 64");
  }
}

TEST(Malformed, W4FormNeedsAnAwqCheckpoint) {
  const auto dir = good_model("w4_plain");
  const std::string msg = load_error(dir, {WeightForm::W4});
  EXPECT_MENTIONS(msg, "quantization_config");
}

}  // namespace
}  // namespace awq
