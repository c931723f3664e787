// Files from strangers: a real checkpoint (a small random llama written by `awq synth`) and its
// GGUF export, damaged in many seeded ways — bytes of the safetensors header and the GGUF
// metadata overwritten, files cut short, sizes replaced by absurd ones, config.json and
// tokenizer.json fields given wrong types, huge values or deleted — and each run through `awq
// inspect` and `awq eval`, as a user would. Every run must either succeed (some damage is
// harmless, e.g. a changed weight byte) or fail with exit status 1 and an `awq: error:` line
// naming the damaged file: never a signal, an internal error (a C++ exception nobody turned into
// a message), a hang or an allocation sized by a lie.
#include <gtest/gtest.h>

#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "test_util.h"

namespace awq {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;

void spit(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary | std::ios::trunc)
      .write(bytes.data(), std::streamsize(bytes.size()));
}

class HostileInput : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new fs::path(test::scratch_dir("hostile_input"));
    std::string out;
    ASSERT_EQ(test::run_command(test::awq_binary() + " synth --shape tiny --out " +
                                    (*root_ / "model").string() + " > /dev/null 2>&1",
                                &out),
              0);
    ASSERT_EQ(test::run_command(test::awq_binary() + " export-gguf --model " +
                                    (*root_ / "model").string() + " --out " +
                                    (*root_ / "model.gguf").string() + " > /dev/null 2>&1",
                                &out),
              0);
    std::ifstream text(test::data_path("text/tinystories-valid-a.txt"));
    std::string t(2000, '\0');
    text.read(t.data(), std::streamsize(t.size()));
    t.resize(size_t(text.gcount()));
    if (t.empty()) t = "Once upon a time there was a little girl who liked to read books.\n";
    spit(*root_ / "eval.txt", t);
  }
  static void TearDownTestSuite() {
    delete root_;
    root_ = nullptr;
  }

  // Runs inspect and eval on `model` (a directory or a .gguf file); checks the outcome as the file
  // comment says. `what` names the damage in failure messages.
  static void expect_clean_outcome(const fs::path& model, const std::string& what) {
    for (const std::string& cmd :
         {"inspect " + model.string(), "eval --model " + model.string() + " --text " +
                                           (*root_ / "eval.txt").string() +
                                           " --ctx 32 --max-windows 1 -t 1"}) {
      std::string err;
      const int rc = test::run_command(
          "timeout 60 " + test::awq_binary() + " " + cmd + " 2>&1 >/dev/null", &err);
      ++runs_;
      if (rc == 0) continue;
      const std::string first = err.substr(0, err.find('\n'));
      EXPECT_EQ(rc, 1) << what << " | awq " << cmd << " | exit " << rc << " (124: hung)\n" << err;
      EXPECT_EQ(first.rfind("awq: error: ", 0), 0u) << what << " | awq " << cmd << "\n" << err;
      EXPECT_NE(first.find(model.string()), std::string::npos)
          << what << " | the message does not name " << model << "\n"
          << err;
    }
  }

  static fs::path* root_;
  static int runs_;
};
fs::path* HostileInput::root_ = nullptr;
int HostileInput::runs_ = 0;

TEST_F(HostileInput, DamagedSafetensorsHeader) {
  const fs::path good = *root_ / "model";
  const std::string st = test::file_bytes(good / "model.safetensors");
  uint64_t n = 0;
  std::memcpy(&n, st.data(), 8);
  ASSERT_LT(n, st.size());
  const fs::path bad = *root_ / "bad_st";
  fs::remove_all(bad);
  fs::copy(good, bad);
  std::mt19937_64 rng(11);
  const char* huge[] = {"99999999999999999999", "18446744073709551615", "4294967296",
                        "9223372036854775807", "-1"};
  for (int i = 0; i < 60; ++i) {
    std::string b = st;
    std::string what;
    switch (i % 4) {
      case 0: {  // a few header bytes overwritten (the length field included)
        for (int k = int(rng() % 4); k >= 0; --k) b[rng() % (8 + n)] = char(rng() % 256);
        what = "header bytes overwritten";
        break;
      }
      case 1: {  // cut short
        b.resize(rng() % b.size());
        what = "truncated to " + std::to_string(b.size()) + " bytes";
        break;
      }
      case 2: {  // one number of the header JSON (a shape or an offset) replaced
        std::string h = b.substr(8, n);
        std::vector<size_t> starts;
        for (size_t k = 0; k < h.size(); ++k)
          if (std::isdigit(uint8_t(h[k])) && (k == 0 || !std::isdigit(uint8_t(h[k - 1]))))
            starts.push_back(k);
        const size_t s = starts[rng() % starts.size()];
        size_t e = s;
        while (e < h.size() && std::isdigit(uint8_t(h[e]))) ++e;
        h = h.substr(0, s) + huge[rng() % 5] + h.substr(e);
        const uint64_t hn = h.size();
        b = std::string(reinterpret_cast<const char*>(&hn), 8) + h + st.substr(8 + n);
        what = "a header number replaced";
        break;
      }
      default: {  // the header length itself absurd
        const uint64_t v = uint64_t(1) << (20 + rng() % 44);
        std::memcpy(b.data(), &v, 8);
        what = "header length " + std::to_string(v);
      }
    }
    spit(bad / "model.safetensors", b);
    expect_clean_outcome(bad, "safetensors #" + std::to_string(i) + ": " + what);
  }
}

TEST_F(HostileInput, DamagedConfigJson) {
  const fs::path good = *root_ / "model";
  const json base = json::parse(test::file_bytes(good / "config.json"));
  const fs::path bad = *root_ / "bad_config";
  fs::remove_all(bad);
  fs::copy(good, bad);
  const std::vector<json> values = {
      0,   -1,  3,       int64_t(1) << 31, int64_t(1) << 40, int64_t(1) << 62,
      1.5, "x", nullptr, json::array(),    json::object(),   1e308};
  int i = 0;
  for (const auto& [key, unused] : base.items()) {
    for (const json& v : values) {
      json c = base;
      c[key] = v;
      spit(bad / "config.json", c.dump());
      expect_clean_outcome(bad, "config.json " + key + " = " + v.dump());
    }
    json c = base;
    c.erase(key);
    spit(bad / "config.json", c.dump());
    expect_clean_outcome(bad, "config.json without " + key);
    ++i;
  }
  EXPECT_GT(i, 10) << "the synthetic config has few keys: the test would prove little";
  spit(bad / "config.json", test::file_bytes(good / "config.json").substr(0, 40));  // cut mid-JSON
  expect_clean_outcome(bad, "config.json truncated");
}

TEST_F(HostileInput, DamagedTokenizerJson) {
  const fs::path good = *root_ / "model";
  const json base = json::parse(test::file_bytes(good / "tokenizer.json"));
  const fs::path bad = *root_ / "bad_tokenizer";
  fs::remove_all(bad);
  fs::copy(good, bad);
  // Every object member and the first elements of arrays, down the tree (not into the vocab,
  // whose entries are all alike), given each wrong value or removed.
  std::vector<json::json_pointer> paths;
  std::vector<std::pair<json::json_pointer, const json*>> todo = {{json::json_pointer(), &base}};
  while (!todo.empty()) {
    auto [p, node] = todo.back();
    todo.pop_back();
    if (node->is_object()) {
      for (const auto& [k, v] : node->items()) {
        paths.push_back(p / k);
        if (k != "vocab") todo.emplace_back(p / k, &v);
      }
    } else if (node->is_array()) {
      for (size_t k = 0; k < node->size() && k < 2; ++k) {
        paths.push_back(p / k);
        todo.emplace_back(p / k, &(*node)[k]);
      }
    }
  }
  ASSERT_GT(paths.size(), size_t(20));
  std::mt19937_64 rng(13);
  const std::vector<json> values = {nullptr,        -1,  int64_t(1) << 40, "x", json::array(),
                                    json::object(), true};
  for (const auto& p : paths) {
    json t = base;
    const json v = values[rng() % values.size()];
    t[p] = v;
    spit(bad / "tokenizer.json", t.dump());
    expect_clean_outcome(bad, "tokenizer.json " + p.to_string() + " = " + v.dump());
    t = base;
    t[p.parent_pointer()].is_object() ? void(t[p.parent_pointer()].erase(p.back()))
                                      : void(t[p.parent_pointer()].erase(std::stoul(p.back())));
    spit(bad / "tokenizer.json", t.dump());
    expect_clean_outcome(bad, "tokenizer.json without " + p.to_string());
  }
}

TEST_F(HostileInput, DamagedGguf) {
  const std::string g = test::file_bytes(*root_ / "model.gguf");
  const fs::path bad = *root_ / "bad.gguf";
  std::mt19937_64 rng(17);
  // The metadata and tensor infos (the parts a reader interprets) sit in the first ~20 KB.
  const size_t meta = std::min<size_t>(g.size(), 20000);
  for (int i = 0; i < 90; ++i) {
    std::string b = g;
    std::string what;
    switch (i % 3) {
      case 0: {
        for (int k = int(rng() % 4); k >= 0; --k) b[rng() % meta] = char(rng() % 256);
        what = "metadata bytes overwritten";
        break;
      }
      case 1: {
        b.resize(rng() % b.size());
        what = "truncated to " + std::to_string(b.size()) + " bytes";
        break;
      }
      default: {  // a count, length or offset replaced by an absurd one (8-aligned guess)
        const uint64_t vals[] = {uint64_t(1) << 62, uint64_t(1) << 32, ~uint64_t(0) >> 1,
                                 1000000000000ull};
        const size_t at = (rng() % (meta - 8)) & ~size_t(7);
        std::memcpy(b.data() + at, &vals[rng() % 4], 8);
        what = "8 bytes at " + std::to_string(at) + " made absurd";
      }
    }
    spit(bad, b);
    expect_clean_outcome(bad, "gguf #" + std::to_string(i) + ": " + what);
  }
  // A string that is not UTF-8 (GGUF requires it): the first merge's first byte made a lead byte
  // without its continuation. Key, then value type (4), element type (4), count (8), length (8).
  const std::string key = "tokenizer.ggml.merges";
  const size_t k = g.find(key);
  ASSERT_NE(k, std::string::npos) << "the tiny model's GGUF has no merges to damage";
  std::string b = g;
  b[k + key.size() + 24] = char(0xD4);
  spit(bad, b);
  expect_clean_outcome(bad, "a merge string that is not UTF-8");
  std::printf("HostileInput: %d runs of awq so far\n", runs_);
}

}  // namespace
}  // namespace awq
