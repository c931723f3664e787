// The GGUF writer checked byte by byte against the v3 layout, the reader against what the writer
// wrote, and malformed files (truncated, lying counts and offsets, unknown types) against clear
// errors.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>

#include "base/error.h"
#include "gguf/gguf_file.h"
#include "test_util.h"

namespace awq::gguf {
namespace {

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

template <typename T>
T at(const std::vector<uint8_t>& b, size_t off) {
  T v;
  EXPECT_LE(off + sizeof(T), b.size());
  std::memcpy(&v, b.data() + off, sizeof(T));
  return v;
}

template <typename T>
void poke(std::vector<uint8_t>& b, size_t off, T v) {
  std::memcpy(b.data() + off, &v, sizeof(T));
}

std::string str_at(const std::vector<uint8_t>& b, size_t& off) {
  const uint64_t n = at<uint64_t>(b, off);
  off += 8;
  std::string s(reinterpret_cast<const char*>(b.data() + off), size_t(n));
  off += size_t(n);
  return s;
}

// Expects construction of GgufFile to throw an awq::Error whose message has every fragment.
void expect_error(const std::string& path, std::initializer_list<std::string> fragments) {
  try {
    GgufFile f(path);
    FAIL() << "no error for " << path;
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const auto& frag : fragments)
      EXPECT_NE(msg.find(frag), std::string::npos) << "'" << frag << "' not in: " << msg;
    EXPECT_NE(msg.find(path), std::string::npos) << "error does not name the file: " << msg;
  }
}

// A small file: one KV of every scalar type, a string, arrays, and three tensors.
struct Sample {
  std::string path;
  std::vector<float> f32_data;
  std::vector<uint8_t> q4_bytes;
};

Sample write_sample(const std::string& dir) {
  Sample s;
  s.path = dir + "/sample.gguf";
  GgufWriter w;
  w.set("general.architecture", Value::string("llama"));
  w.set("t.u8", Value::u8(200));
  w.set("t.i8", Value::i8(-5));
  w.set("t.u16", Value::u16(60000));
  w.set("t.i16", Value::i16(-30000));
  w.set("t.u32", Value::u32(4000000000u));
  w.set("t.i32", Value::i32(-7));
  w.set("t.f32", Value::f32(1.5f));
  w.set("t.bool", Value::boolean(true));
  w.set("t.u64", Value::u64(1ull << 40));
  w.set("t.i64", Value::i64(-(1ll << 40)));
  w.set("t.f64", Value::f64(0.125));
  w.set("t.strs", Value::strings({"a", "", "héllo"}));
  const float fs[] = {0.5f, -2.0f};
  w.set("t.f32s", Value::f32s(fs));
  const int32_t is[] = {3, -4, 5};
  w.set("t.i32s", Value::i32s(is));
  s.f32_data = {1, 2, 3, 4, 5, 6};
  std::vector<uint8_t> fb(24);
  std::memcpy(fb.data(), s.f32_data.data(), 24);
  w.add_tensor("vec", GgmlType::F32, {3, 2}, fb);  // 24 bytes: padded to 32
  s.q4_bytes.resize(2 * 3 * sizeof(BlockQ4_1));    // ne = {64, 3}: 2 blocks per row
  for (size_t i = 0; i < s.q4_bytes.size(); ++i) s.q4_bytes[i] = uint8_t(i * 7 + 1);
  w.add_tensor("blk.0.attn_q.weight", GgmlType::Q4_1, {64, 3}, s.q4_bytes);
  w.add_tensor("empty", GgmlType::F16, {0}, std::vector<uint8_t>{});
  w.write(s.path);
  return s;
}

TEST(GgufWriter, HeaderKvAndTensorInfoFollowV3Layout) {
  const auto dir = test::scratch_dir("gguf_layout").string();
  const Sample s = write_sample(dir);
  const auto b = read_bytes(s.path);
  ASSERT_GE(b.size(), 24u);
  EXPECT_EQ(std::string(b.begin(), b.begin() + 4), "GGUF");
  EXPECT_EQ(at<uint32_t>(b, 4), 3u);
  EXPECT_EQ(at<uint64_t>(b, 8), 3u);    // tensors
  EXPECT_EQ(at<uint64_t>(b, 16), 16u);  // 15 keys set + general.alignment
  size_t off = 24;
  // First KV: string key, u32 type 8, string value.
  EXPECT_EQ(str_at(b, off), "general.architecture");
  EXPECT_EQ(at<uint32_t>(b, off), 8u);
  off += 4;
  EXPECT_EQ(str_at(b, off), "llama");
  // Second: u8 = 200 (type 0, one byte).
  EXPECT_EQ(str_at(b, off), "t.u8");
  EXPECT_EQ(at<uint32_t>(b, off), 0u);
  EXPECT_EQ(b[off + 4], 200);
  off += 5;
  EXPECT_EQ(str_at(b, off), "t.i8");
  EXPECT_EQ(at<uint32_t>(b, off), 1u);
  EXPECT_EQ(int8_t(b[off + 4]), -5);
  off += 5;
  EXPECT_EQ(str_at(b, off), "t.u16");
  EXPECT_EQ(at<uint32_t>(b, off), 2u);
  EXPECT_EQ(at<uint16_t>(b, off + 4), 60000);
  off += 6;
  EXPECT_EQ(str_at(b, off), "t.i16");
  EXPECT_EQ(at<uint32_t>(b, off), 3u);
  off += 6;
  EXPECT_EQ(str_at(b, off), "t.u32");
  EXPECT_EQ(at<uint32_t>(b, off), 4u);
  EXPECT_EQ(at<uint32_t>(b, off + 4), 4000000000u);
  off += 8;
  EXPECT_EQ(str_at(b, off), "t.i32");
  EXPECT_EQ(at<uint32_t>(b, off), 5u);
  EXPECT_EQ(at<int32_t>(b, off + 4), -7);
  off += 8;
  EXPECT_EQ(str_at(b, off), "t.f32");
  EXPECT_EQ(at<uint32_t>(b, off), 6u);
  EXPECT_EQ(at<float>(b, off + 4), 1.5f);
  off += 8;
  EXPECT_EQ(str_at(b, off), "t.bool");
  EXPECT_EQ(at<uint32_t>(b, off), 7u);
  EXPECT_EQ(b[off + 4], 1);
  off += 5;
  EXPECT_EQ(str_at(b, off), "t.u64");
  EXPECT_EQ(at<uint32_t>(b, off), 10u);
  EXPECT_EQ(at<uint64_t>(b, off + 4), 1ull << 40);
  off += 12;
  EXPECT_EQ(str_at(b, off), "t.i64");
  EXPECT_EQ(at<uint32_t>(b, off), 11u);
  off += 12;
  EXPECT_EQ(str_at(b, off), "t.f64");
  EXPECT_EQ(at<uint32_t>(b, off), 12u);
  EXPECT_EQ(at<double>(b, off + 4), 0.125);
  off += 12;
  // Array of strings: type 9, element type 8, u64 count, then strings.
  EXPECT_EQ(str_at(b, off), "t.strs");
  EXPECT_EQ(at<uint32_t>(b, off), 9u);
  EXPECT_EQ(at<uint32_t>(b, off + 4), 8u);
  EXPECT_EQ(at<uint64_t>(b, off + 8), 3u);
  off += 16;
  EXPECT_EQ(str_at(b, off), "a");
  EXPECT_EQ(str_at(b, off), "");
  EXPECT_EQ(str_at(b, off), "héllo");
  EXPECT_EQ(str_at(b, off), "t.f32s");
  EXPECT_EQ(at<uint32_t>(b, off), 9u);
  EXPECT_EQ(at<uint32_t>(b, off + 4), 6u);
  EXPECT_EQ(at<uint64_t>(b, off + 8), 2u);
  EXPECT_EQ(at<float>(b, off + 16), 0.5f);
  EXPECT_EQ(at<float>(b, off + 20), -2.0f);
  off += 24;
  EXPECT_EQ(str_at(b, off), "t.i32s");
  EXPECT_EQ(at<uint32_t>(b, off + 4), 5u);
  off += 16 + 12;
  EXPECT_EQ(str_at(b, off), "general.alignment");
  EXPECT_EQ(at<uint32_t>(b, off), 4u);  // u32, as llama.cpp requires
  EXPECT_EQ(at<uint32_t>(b, off + 4), 32u);
  off += 8;
  // Tensor infos: name, n_dims, ne (ne[0] first), type, offset.
  EXPECT_EQ(str_at(b, off), "vec");
  EXPECT_EQ(at<uint32_t>(b, off), 2u);
  EXPECT_EQ(at<uint64_t>(b, off + 4), 3u);
  EXPECT_EQ(at<uint64_t>(b, off + 12), 2u);
  EXPECT_EQ(at<uint32_t>(b, off + 20), 0u);  // F32
  EXPECT_EQ(at<uint64_t>(b, off + 24), 0u);
  off += 32;
  EXPECT_EQ(str_at(b, off), "blk.0.attn_q.weight");
  EXPECT_EQ(at<uint32_t>(b, off), 2u);
  EXPECT_EQ(at<uint64_t>(b, off + 4), 64u);
  EXPECT_EQ(at<uint64_t>(b, off + 12), 3u);
  EXPECT_EQ(at<uint32_t>(b, off + 20), 3u);   // Q4_1
  EXPECT_EQ(at<uint64_t>(b, off + 24), 32u);  // 24 bytes of "vec" padded to 32
  off += 32;
  EXPECT_EQ(str_at(b, off), "empty");
  EXPECT_EQ(at<uint32_t>(b, off), 1u);
  EXPECT_EQ(at<uint64_t>(b, off + 4), 0u);
  EXPECT_EQ(at<uint32_t>(b, off + 12), 1u);          // F16
  EXPECT_EQ(at<uint64_t>(b, off + 16), 32u + 128u);  // 120 bytes of Q4_1 padded to 128
  off += 24;
  // Zero padding to 32, then the data.
  const size_t data = (off + 31) / 32 * 32;
  for (size_t i = off; i < data; ++i) EXPECT_EQ(b[i], 0) << i;
  EXPECT_EQ(at<float>(b, data + 0), 1.0f);
  EXPECT_EQ(at<float>(b, data + 20), 6.0f);
  for (size_t i = 24; i < 32; ++i) EXPECT_EQ(b[data + i], 0);
  EXPECT_EQ(std::memcmp(b.data() + data + 32, s.q4_bytes.data(), s.q4_bytes.size()), 0);
  EXPECT_EQ(b.size(), data + 32 + 128);  // each tensor padded, the last one too
}

TEST(GgufReader, ReadsBackWhatTheWriterWrote) {
  const auto dir = test::scratch_dir("gguf_roundtrip").string();
  const Sample s = write_sample(dir);
  GgufFile f(s.path);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.data_offset() % 32, 0u);
  EXPECT_EQ(f.metadata().size(), 16u);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_int("t.u8"), 200);
  EXPECT_EQ(f.get_int("t.i8"), -5);
  EXPECT_EQ(f.get_int("t.u16"), 60000);
  EXPECT_EQ(f.get_int("t.i16"), -30000);
  EXPECT_EQ(f.get_int("t.u32"), 4000000000ll);
  EXPECT_EQ(f.get_int("t.i32"), -7);
  EXPECT_EQ(f.get_float("t.f32"), 1.5);
  EXPECT_TRUE(f.get_bool("t.bool", false));
  EXPECT_EQ(f.get_int("t.u64"), 1ll << 40);
  EXPECT_EQ(f.get_int("t.i64"), -(1ll << 40));
  EXPECT_EQ(f.get_float("t.f64"), 0.125);
  EXPECT_EQ(f.get_strings("t.strs"), (std::vector<std::string>{"a", "", "héllo"}));
  EXPECT_EQ(f.get_floats("t.f32s"), (std::vector<float>{0.5f, -2.0f}));
  EXPECT_EQ(f.get_ints("t.i32s"), (std::vector<int64_t>{3, -4, 5}));
  EXPECT_EQ(f.find("t.i32s")->type_str(), "array[i32]");
  EXPECT_EQ(f.get_int("absent", 42), 42);
  ASSERT_EQ(f.tensors().size(), 3u);
  const GgufTensor& v = f.tensor("vec");
  EXPECT_EQ(v.ne, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(v.rows(), 2);
  EXPECT_EQ(v.cols(), 3);
  EXPECT_EQ(v.nbytes, 24u);
  EXPECT_EQ(std::memcmp(v.data, s.f32_data.data(), 24), 0);
  const GgufTensor& q = f.tensor("blk.0.attn_q.weight");
  EXPECT_EQ(q.type, GgmlType::Q4_1);
  EXPECT_EQ(q.nbytes, 120u);
  EXPECT_EQ(q.offset, 32u);
  EXPECT_EQ(std::memcmp(q.data, s.q4_bytes.data(), 120), 0);
  EXPECT_EQ(f.tensor("empty").nbytes, 0u);
  // Type mismatches and absent keys name the file and the key.
  try {
    f.get_string("t.u32");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'t.u32' is u32, expected a string"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(f.get_int("missing.key"), Error);
  EXPECT_THROW(f.tensor("nope"), Error);
}

TEST(GgufWriter, RespectsCustomAlignmentAndRejectsBadTensors) {
  const auto dir = test::scratch_dir("gguf_align").string();
  GgufWriter w(64);
  w.add_tensor("a", GgmlType::F16, {5}, std::vector<uint8_t>(10, 1));
  w.add_tensor("b", GgmlType::Q8_0, {32, 2}, std::vector<uint8_t>(68, 2));
  w.write(dir + "/a.gguf");
  GgufFile f(dir + "/a.gguf");
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  EXPECT_EQ(f.tensor("b").offset, 64u);
  EXPECT_EQ(f.file_size(), f.data_offset() + 64 + 128);  // 10 → 64, 68 → 128

  GgufWriter bad;
  EXPECT_THROW(bad.add_tensor("q", GgmlType::Q4_0, {48, 2}, std::vector<uint8_t>{}),
               Error);  // 48 % 32
  EXPECT_THROW(bad.add_tensor(std::string(64, 'x'), GgmlType::F32, {1}, std::vector<uint8_t>(4)),
               Error);
  EXPECT_THROW(bad.add_tensor("d", GgmlType::F32, {1, 1, 1, 1, 1}, std::vector<uint8_t>(4)), Error);
  bad.add_tensor("dup", GgmlType::F32, {1}, std::vector<uint8_t>(4));
  EXPECT_THROW(bad.add_tensor("dup", GgmlType::F32, {1}, std::vector<uint8_t>(4)), Error);
  EXPECT_THROW(GgufWriter(24), Error);
  // A producer that yields the wrong size fails the write, and nothing is left under the name.
  GgufWriter lying;
  lying.add_tensor("t", GgmlType::F32, {4}, std::vector<uint8_t>(12));
  EXPECT_THROW(lying.write(dir + "/lying.gguf"), Error);
  EXPECT_FALSE(std::filesystem::exists(dir + "/lying.gguf"));
}

// Offsets within sample.gguf of fields the malformed-file tests corrupt.
struct SampleLayout {
  std::vector<uint8_t> bytes;
  size_t vec_info = 0;  // start of tensor info "vec" (its name length)
  size_t q_info = 0;
};

SampleLayout layout_of(const std::string& path) {
  SampleLayout l;
  l.bytes = read_bytes(path);
  const std::string needle = "vec";
  for (size_t i = 8; i + 3 <= l.bytes.size(); ++i) {
    if (at<uint64_t>(l.bytes, i - 8) == 3 && std::memcmp(l.bytes.data() + i, "vec", 3) == 0) {
      l.vec_info = i - 8;
      break;
    }
  }
  l.q_info = l.vec_info + 8 + 3 + 4 + 16 + 4 + 8;
  return l;
}

TEST(GgufReader, RejectsMalformedFilesWithClearErrors) {
  const auto dir = test::scratch_dir("gguf_bad").string();
  const Sample s = write_sample(dir);
  const SampleLayout l = layout_of(s.path);
  ASSERT_GT(l.vec_info, 0u);
  const std::string p = dir + "/bad.gguf";
  auto with = [&](auto edit) {
    auto b = l.bytes;
    edit(b);
    write_bytes(p, b);
  };

  with([](auto& b) { b[0] = 'X'; });
  expect_error(p, {"not a GGUF file"});
  with([](auto& b) { poke<uint32_t>(b, 4, 1); });
  expect_error(p, {"version 1"});
  with([](auto& b) { poke<uint32_t>(b, 4, 4); });
  expect_error(p, {"version 4"});
  with([](auto& b) { poke<uint32_t>(b, 4, 0x03000000); });
  expect_error(p, {"big-endian"});
  with([](auto& b) { poke<uint64_t>(b, 16, 1ull << 40); });
  expect_error(p, {"claims 1099511627776 metadata entries"});
  with([](auto& b) { poke<uint64_t>(b, 8, 1ull << 50); });
  expect_error(p, {"tensors, more than"});
  // A string length that points past the end.
  with([](auto& b) { poke<uint64_t>(b, 24, 1ull << 33); });
  expect_error(p, {"truncated", "key of metadata entry 0"});
  // Truncated in the middle of the header, and in the middle of the data.
  with([&](auto& b) { b.resize(l.vec_info + 10); });
  expect_error(p, {"truncated", "tensor"});
  with([](auto& b) { b.resize(b.size() - 100); });
  expect_error(p, {"blk.0.attn_q.weight", "runs past the end"});
  // Tensor info lies: too many dims, unknown type, misaligned and overlapping offsets.
  const size_t vec_dims = l.vec_info + 8 + 3;
  with([&](auto& b) { poke<uint32_t>(b, vec_dims, 5); });
  expect_error(p, {"'vec'", "5 dimensions"});
  const size_t q_type = l.q_info + 8 + 19 + 4 + 16;
  with([&](auto& b) { poke<uint32_t>(b, q_type, 12); });
  expect_error(p, {"'blk.0.attn_q.weight'", "Q4_K (12)", "does not read"});
  with([&](auto& b) { poke<uint32_t>(b, q_type, 77); });
  expect_error(p, {"'blk.0.attn_q.weight'", "unknown (77)"});
  with([&](auto& b) { poke<uint64_t>(b, q_type + 4, 40); });
  expect_error(p, {"'blk.0.attn_q.weight'", "not a multiple of the alignment"});
  with([&](auto& b) { poke<uint64_t>(b, q_type + 4, 0); });
  expect_error(p, {"overlap", "'vec'", "'blk.0.attn_q.weight'"});
  with([&](auto& b) { poke<uint64_t>(b, q_type + 4, 1ull << 40); });
  expect_error(p, {"'blk.0.attn_q.weight'", "runs past the end"});
  // ne[0] not a multiple of the block size (Q4_1 with 48 columns).
  with([&](auto& b) { poke<uint64_t>(b, l.q_info + 8 + 19 + 4, 48); });
  expect_error(p, {"'blk.0.attn_q.weight'", "multiple of 32"});
}

TEST(GgufReader, RejectsDuplicateTensorNames) {
  const auto dir = test::scratch_dir("gguf_dup_tensor").string();
  GgufWriter w;
  w.add_tensor("aaa", GgmlType::F32, {1}, std::vector<uint8_t>(4));
  w.add_tensor("bbb", GgmlType::F32, {1}, std::vector<uint8_t>(4));
  w.write(dir + "/t.gguf");
  auto b = read_bytes(dir + "/t.gguf");
  for (size_t i = 24; i + 3 <= b.size(); ++i) {
    if (std::memcmp(b.data() + i, "bbb", 3) == 0) std::memcpy(b.data() + i, "aaa", 3);
  }
  write_bytes(dir + "/t2.gguf", b);
  expect_error(dir + "/t2.gguf", {"tensor 'aaa' appears twice"});
}

TEST(GgufReader, RejectsBadAlignmentAndDuplicateKeys) {
  const auto dir = test::scratch_dir("gguf_bad2").string();
  {
    GgufWriter w;
    w.set("a.key", Value::u32(1));
    w.set("b.key", Value::u32(2));
    w.write(dir + "/dup.gguf");
  }
  auto b = read_bytes(dir + "/dup.gguf");
  // Rename "b.key" to "a.key".
  for (size_t i = 24; i + 5 <= b.size(); ++i) {
    if (std::memcmp(b.data() + i, "b.key", 5) == 0) b[i] = 'a';
  }
  write_bytes(dir + "/dup2.gguf", b);
  expect_error(dir + "/dup2.gguf", {"'a.key' appears twice"});

  GgufWriter w;
  w.set("general.alignment", Value::u32(32));
  w.write(dir + "/al.gguf");
  b = read_bytes(dir + "/al.gguf");
  // The value sits after the key "general.alignment" and its u32 type tag.
  for (size_t i = 24; i + 17 <= b.size(); ++i) {
    if (std::memcmp(b.data() + i, "general.alignment", 17) == 0) poke<uint32_t>(b, i + 17 + 4, 48);
  }
  write_bytes(dir + "/al2.gguf", b);
  expect_error(dir + "/al2.gguf", {"general.alignment 48 is not a power of two"});
}

TEST(GgufReader, ReadsTheReferenceVocabFiles) {
  AWQ_REQUIRE_DATA("tokenizers/llamacpp-vectors/ggml-vocab-llama-spm.gguf");
  GgufFile f(test::data_path("tokenizers/llamacpp-vectors/ggml-vocab-llama-spm.gguf"));
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.tensors().size(), 0u);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_strings("tokenizer.ggml.tokens").size(), 32000u);
  EXPECT_EQ(f.get_floats("tokenizer.ggml.scores").size(), 32000u);
  EXPECT_EQ(f.get_ints("tokenizer.ggml.token_type")[0], 2);  // <unk>: unknown
  EXPECT_EQ(f.get_int("tokenizer.ggml.bos_token_id"), 1);
  EXPECT_TRUE(f.get_bool("tokenizer.ggml.add_bos_token", false));
}

}  // namespace
}  // namespace awq::gguf
