#include "formats/safetensors.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "base/error.h"
#include "base/half.h"
#include "formats/checkpoint.h"
#include "formats/checkpoint_writer.h"
#include "test_util.h"

namespace awq {
namespace {

void write_raw(const std::string& path, const std::string& header, size_t data_bytes,
               int64_t claimed_len = -1) {
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = claimed_len >= 0 ? uint64_t(claimed_len) : header.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out.write(header.data(), std::streamsize(header.size()));
  std::string zeros(data_bytes, '\0');
  out.write(zeros.data(), std::streamsize(zeros.size()));
}

std::string error_of(const std::string& path) {
  try {
    SafetensorsFile f(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Safetensors, RoundTripAllFloatTypes) {
  const auto dir = test::scratch_dir("st_roundtrip");
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  std::vector<float> v(3 * 5);
  for (auto& x : v) x = nd(rng);
  SafetensorsWriter w;
  w.set_metadata("format", "pt");
  w.add_f32_as("a.f32", DType::F32, {3, 5}, v);
  w.add_f32_as("a.f16", DType::F16, {3, 5}, v);
  w.add_f32_as("a.bf16", DType::BF16, {15}, v);
  w.add("i", DType::I32, {2}, std::vector<uint8_t>{1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff});
  const std::string path = (dir / "x.safetensors").string();
  w.write(path);
  SafetensorsFile f(path);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  ASSERT_EQ(f.tensors().size(), 4u);
  const TensorInfo* t = f.find("a.f16");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->shape, (std::vector<int64_t>{3, 5}));
  std::vector<float> back(15);
  convert_to_f32(DType::F32, f.find("a.f32")->data, 15, back.data());
  EXPECT_EQ(back, v);
  convert_to_f32(DType::F16, t->data, 15, back.data());
  for (int i = 0; i < 15; ++i) EXPECT_EQ(back[size_t(i)], round_to_f16(v[size_t(i)]));
  convert_to_f32(DType::BF16, f.find("a.bf16")->data, 15, back.data());
  for (int i = 0; i < 15; ++i) EXPECT_EQ(back[size_t(i)], bf16_to_f32(f32_to_bf16(v[size_t(i)])));
  int32_t iv[2];
  std::memcpy(iv, f.find("i")->data, 8);
  EXPECT_EQ(iv[0], 1);
  EXPECT_EQ(iv[1], -1);
  // The data buffer starts 8-aligned and tensors are packed without holes, as the reference
  // requires.
  uint64_t n;
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(&n), 8);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(std::filesystem::file_size(path), 8 + n + 15 * 4 + 15 * 2 + 15 * 2 + 8);
}

TEST(Safetensors, TruncatedFile) {
  const auto dir = test::scratch_dir("st_trunc");
  const std::string p = (dir / "t.safetensors").string();
  { std::ofstream(p, std::ios::binary) << "abc"; }
  EXPECT_NE(error_of(p).find("truncated"), std::string::npos) << error_of(p);
  EXPECT_NE(error_of(p).find(p), std::string::npos);
}

TEST(Safetensors, HeaderLengthPastEnd) {
  const auto dir = test::scratch_dir("st_hlen");
  const std::string p = (dir / "t.safetensors").string();
  write_raw(p, "{}", 0, 1000);
  EXPECT_NE(error_of(p).find("runs past the end"), std::string::npos) << error_of(p);
}

TEST(Safetensors, DataTruncated) {
  const auto dir = test::scratch_dir("st_data");
  const std::string p = (dir / "t.safetensors").string();
  write_raw(p, R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8);
  const std::string e = error_of(p);
  EXPECT_NE(e.find("'w'"), std::string::npos) << e;
  EXPECT_NE(e.find("out of range"), std::string::npos) << e;
}

TEST(Safetensors, OverlappingOffsets) {
  const auto dir = test::scratch_dir("st_overlap");
  const std::string p = (dir / "t.safetensors").string();
  write_raw(
      p,
      R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
      16);
  const std::string e = error_of(p);
  EXPECT_NE(e.find("overlap"), std::string::npos) << e;
  EXPECT_NE(e.find("'a'"), std::string::npos) << e;
}

TEST(Safetensors, UnknownDtype) {
  const auto dir = test::scratch_dir("st_dtype");
  const std::string p = (dir / "t.safetensors").string();
  write_raw(p, R"({"w":{"dtype":"F8_E9","shape":[4],"data_offsets":[0,4]}})", 4);
  const std::string e = error_of(p);
  EXPECT_NE(e.find("unknown dtype 'F8_E9'"), std::string::npos) << e;
}

TEST(Safetensors, ShapeDoesNotMatchBytes) {
  const auto dir = test::scratch_dir("st_shape");
  const std::string p = (dir / "t.safetensors").string();
  write_raw(p, R"({"w":{"dtype":"F16","shape":[3,3],"data_offsets":[0,16]}})", 16);
  const std::string e = error_of(p);
  EXPECT_NE(e.find("needs 18 bytes"), std::string::npos) << e;
}

TEST(Safetensors, InvalidJson) {
  const auto dir = test::scratch_dir("st_json");
  const std::string p = (dir / "t.safetensors").string();
  write_raw(p, R"({"w":{"dtype":)", 0);
  EXPECT_NE(error_of(p).find("not valid JSON"), std::string::npos) << error_of(p);
}

TEST(Checkpoint, ShardedWriteAndRead) {
  const auto dir = test::scratch_dir("ckpt_sharded");
  const std::string out = (dir / "model").string();
  std::vector<float> v(1000);
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(i);
  {
    StagedDir staged(out);
    CheckpointWriter w(staged, 5000);  // 1250 floats per shard at most
    for (int i = 0; i < 5; ++i) w.add_f32_as(fmt::format("t{}", i), DType::F32, {10, 100}, v);
    w.finish();
    EXPECT_FALSE(std::filesystem::exists(out));  // nothing visible before commit
    staged.commit();
  }
  EXPECT_TRUE(std::filesystem::exists(dir / "model" / "model-00001-of-00005.safetensors"));
  EXPECT_TRUE(std::filesystem::exists(dir / "model" / "model.safetensors.index.json"));
  Checkpoint c = Checkpoint::open(out);
  EXPECT_EQ(c.names().size(), 5u);
  Mat m = c.read_mat("t3", 10, 100);
  EXPECT_EQ(std::vector<float>(m.data.begin(), m.data.end()), v);
  try {
    c.read_mat("t3", 100, 10);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("has shape [10, 100], expected [100, 10]"),
              std::string::npos)
        << e.what();
  }
  try {
    c.get("missing.weight");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'missing.weight' not found"), std::string::npos)
        << e.what();
  }
}

// A shard's tensors wait in a spill file, not in memory: the file grows as tensors come, is gone
// once the shard is written, and the shards are the bytes SafetensorsWriter writes from memory.
TEST(CheckpointWriter, SpillsEachShardToDiskAndWritesTheSameBytes) {
  const auto dir = test::scratch_dir("ckpt_spill");
  std::vector<float> v(1000);
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(i) * 0.25f;
  const std::vector<int64_t> shape{10, 100};
  {
    StagedDir staged((dir / "model").string());
    CheckpointWriter w(staged, 9000);  // two 4000-byte tensors a shard
    const auto spill = staged.path("shard.spill");
    w.add_f32_as("a", DType::F32, shape, v);
    w.add_f32_as("b", DType::F16, shape, v);
    ASSERT_TRUE(std::filesystem::exists(spill));
    EXPECT_EQ(std::filesystem::file_size(spill), 4000u + 2000u);
    w.add_f32_as("c", DType::F32, shape, v);  // shard 0 (a, b) is written; c starts shard 1
    EXPECT_EQ(std::filesystem::file_size(spill), 4000u);
    w.finish();
    EXPECT_FALSE(std::filesystem::exists(spill));
    staged.commit();
  }
  const auto expect_same = [&](const std::vector<std::pair<std::string, DType>>& ts,
                               const std::string& file) {
    SafetensorsWriter m;
    m.set_metadata("format", "pt");
    for (const auto& [name, dt] : ts) m.add_f32_as(name, dt, shape, v);
    m.write((dir / "mem.safetensors").string());
    EXPECT_EQ(test::file_bytes(dir / "mem.safetensors"), test::file_bytes(dir / "model" / file))
        << file;
  };
  expect_same({{"a", DType::F32}, {"b", DType::F16}}, "model-00001-of-00002.safetensors");
  expect_same({{"c", DType::F32}}, "model-00002-of-00002.safetensors");
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir / "model"))
    files.push_back(e.path().filename().string());
  std::sort(files.begin(), files.end());
  EXPECT_EQ(files, (std::vector<std::string>{"model-00001-of-00002.safetensors",
                                             "model-00002-of-00002.safetensors",
                                             "model.safetensors.index.json"}));
}

TEST(Checkpoint, IndexNamesMissingShard) {
  const auto dir = test::scratch_dir("ckpt_badindex");
  std::ofstream(dir / "model.safetensors.index.json")
      << R"({"metadata":{},"weight_map":{"a":"model-00001-of-00002.safetensors"}})";
  try {
    Checkpoint::open(dir.string());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
  }
}

TEST(Checkpoint, NoWeightsInDirectory) {
  const auto dir = test::scratch_dir("ckpt_empty");
  try {
    Checkpoint::open(dir.string());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no model.safetensors"), std::string::npos) << e.what();
  }
}

// Resident bytes (smaps "Rss:") of this process's mapping that contains address p; -1 if none.
int64_t mapping_rss_bytes(const void* p) {
  std::ifstream smaps("/proc/self/smaps");
  const auto a = reinterpret_cast<uintptr_t>(p);
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find('-') < 17) {
      inside = a >= lo && a < hi;
    } else if (inside && line.rfind("Rss:", 0) == 0) {
      return std::stoll(line.substr(4)) * 1024;
    }
  }
  return -1;
}

// A quantize of a checkpoint larger than RAM copies one block after another out of the mapping;
// the copied pages must leave the resident set, or peak RSS grows with every block read.
TEST(Checkpoint, ReadMatLeavesTheMappingsPagesOutOfTheResidentSet) {
  const auto dir = test::scratch_dir("ckpt_rss");
  const std::string out = (dir / "model").string();
  const int64_t rows = 1024, cols = 2048;  // 8 MiB of f32
  std::vector<float> v(size_t(rows * cols));
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(i % 1000) * 0.5f;
  {
    StagedDir staged(out);
    CheckpointWriter w(staged, size_t(1) << 30);
    w.add_f32_as("big", DType::F32, {rows, cols}, v);
    w.finish();
    staged.commit();
  }
  Checkpoint c = Checkpoint::open(out);
  const TensorInfo& t = c.get("big");
  // Touch every page through the mapping: now resident.
  volatile float sink = 0;
  const auto* f = reinterpret_cast<const float*>(t.data);
  for (int64_t i = 0; i < rows * cols; i += 1024) sink = sink + f[i];
  ASSERT_GE(mapping_rss_bytes(t.data), int64_t(t.nbytes) - 8192)
      << "the test needs the mapping resident first (smaps unreadable?)";
  const Mat m = c.read_mat("big", rows, cols);
  EXPECT_LT(mapping_rss_bytes(t.data), int64_t(t.nbytes) / 8)
      << "read_mat copied the tensor but left its pages resident";
  EXPECT_EQ(std::vector<float>(m.data.begin(), m.data.end()), v);
  // The pages come back from the file when touched again: the data is unharmed.
  EXPECT_EQ(std::vector<float>(m.data.begin(), m.data.end()),
            std::vector<float>(f, f + rows * cols));
  EXPECT_EQ(c.read_mat("big", rows, cols).data, m.data);
}

}  // namespace
}  // namespace awq
