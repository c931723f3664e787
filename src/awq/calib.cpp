#include "awq/calib.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/files.h"

namespace awq {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kEndOfText = "<|endoftext|>";

// Python's str.strip() whitespace for ASCII text (what the reference applies before encoding).
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r' ||
         (c >= '\x1c' && c <= '\x1f');
}

std::string strip(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && is_space(s[b])) ++b;
  while (e > b && is_space(s[e - 1])) --e;
  return std::string(s.substr(b, e - b));
}

void push_doc(std::vector<std::string>& docs, std::string_view s) {
  std::string d = strip(s);
  if (!d.empty()) docs.push_back(std::move(d));
}

bool blank_line(std::string_view line) {
  return std::all_of(line.begin(), line.end(), is_space);
}

std::vector<std::string> split_paragraphs(const std::string& text) {
  std::vector<std::string> docs;
  size_t doc_begin = std::string::npos;  // start of the current paragraph
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    const size_t end = nl == std::string::npos ? text.size() : nl;
    const std::string_view line(text.data() + pos, end - pos);
    if (blank_line(line)) {
      if (doc_begin != std::string::npos)
        push_doc(docs, std::string_view(text).substr(doc_begin, pos - doc_begin));
      doc_begin = std::string::npos;
    } else if (doc_begin == std::string::npos) {
      doc_begin = pos;
    }
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  if (doc_begin != std::string::npos) push_doc(docs, std::string_view(text).substr(doc_begin));
  return docs;
}

std::vector<std::string> split_end_of_text(const std::string& text) {
  std::vector<std::string> docs;
  size_t pos = 0;
  for (;;) {
    const size_t at = text.find(kEndOfText, pos);
    if (at == std::string::npos) {
      push_doc(docs, std::string_view(text).substr(pos));
      break;
    }
    push_doc(docs, std::string_view(text).substr(pos, at - pos));
    pos = at + kEndOfText.size();
  }
  return docs;
}

std::vector<std::string> split_json_lines(const std::string& text, const std::string& field,
                                          const std::string& source) {
  std::vector<std::string> docs;
  size_t pos = 0;
  int64_t line_no = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    ++line_no;
    const std::string_view line(text.data() + pos, nl - pos);
    pos = nl + 1;
    if (blank_line(line)) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail("{}:{}: not a JSON value ({})", source, line_no, e.what());
    }
    if (j.is_string()) {
      push_doc(docs, j.get<std::string>());
    } else {
      AWQ_CHECK(j.is_object() && j.contains(field) && j[field].is_string(),
                "{}:{}: expected a JSON object with a string field '{}' (choose another with "
                "FILE.jsonl:FIELD)",
                source, line_no, field);
      push_doc(docs, j[field].get<std::string>());
    }
  }
  return docs;
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::vector<std::string> load_file(const std::string& path,
                                   const std::optional<std::string>& field) {
  const std::string text = read_text_file(path);
  DocSplit how = DocSplit::Auto;
  if (field || ends_with(path, ".jsonl")) how = DocSplit::JsonLines;
  return split_documents(text, how, field.value_or("text"), path);
}

// 64-bit mixer (splitmix64): a fixed, documented sequence, identical on every platform.
uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// 20517 -> "20,517": calibration counts run to millions of tokens.
std::string thousands(int64_t v) {
  std::string digits = std::to_string(v < 0 ? -v : v), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return v < 0 ? "-" + out : out;
}

// "1 document", "2 documents".
std::string count(int64_t n, std::string_view noun) {
  return fmt::format("{} {}{}", n, noun, n == 1 ? "" : "s");
}

}  // namespace

std::vector<std::string> split_documents(const std::string& text, DocSplit how,
                                         const std::string& field, const std::string& source) {
  if (how == DocSplit::Auto)
    how = text.find(kEndOfText) != std::string::npos ? DocSplit::EndOfText : DocSplit::Paragraphs;
  switch (how) {
    case DocSplit::EndOfText:
      return split_end_of_text(text);
    case DocSplit::Paragraphs:
      return split_paragraphs(text);
    case DocSplit::JsonLines:
      return split_json_lines(text, field, source);
    case DocSplit::Auto:
      break;
  }
  return {};
}

std::vector<std::string> load_calib_documents(const std::string& spec) {
  std::string path = spec;
  std::optional<std::string> field;
  if (!fs::exists(path)) {  // FILE.jsonl:field
    const size_t colon = spec.rfind(':');
    if (colon != std::string::npos && fs::is_regular_file(spec.substr(0, colon))) {
      path = spec.substr(0, colon);
      field = spec.substr(colon + 1);
      AWQ_CHECK(!field->empty(), "--calib {}: empty field name after ':'", spec);
    }
  }
  AWQ_CHECK(fs::exists(path), "--calib {}: no such file or directory", spec);
  if (!fs::is_directory(path)) return load_file(path, field);
  AWQ_CHECK(!field, "--calib {}: a field can only follow a .jsonl file", spec);
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(path)) {
    const std::string name = e.path().filename().string();
    if (e.is_regular_file() && !name.empty() && name[0] != '.') files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  AWQ_CHECK(!files.empty(), "--calib {}: the directory holds no files", spec);
  std::vector<std::string> docs;
  for (const auto& f : files) {
    auto d = load_file(f, std::nullopt);
    docs.insert(docs.end(), std::make_move_iterator(d.begin()), std::make_move_iterator(d.end()));
  }
  return docs;
}

CalibLong parse_calib_long(const std::string& s) {
  if (s == "split") return CalibLong::Split;
  if (s == "skip") return CalibLong::Skip;
  if (s == "truncate") return CalibLong::Truncate;
  fail("--calib-long {}: expected split, skip or truncate", s);
}

const char* calib_long_name(CalibLong m) {
  switch (m) {
    case CalibLong::Split:
      return "split";
    case CalibLong::Skip:
      return "skip";
    case CalibLong::Truncate:
      return "truncate";
  }
  return "?";
}

CalibBlocks build_calib_blocks(size_t n_docs,
                               const std::function<std::vector<int32_t>(size_t)>& encode,
                               int64_t n_samples, int64_t seqlen, CalibLong long_docs,
                               const std::string& source) {
  AWQ_CHECK(seqlen > 0, "--calib-seqlen must be positive (got {})", seqlen);
  AWQ_CHECK(n_samples > 0, "--calib-samples must be positive (got {})", n_samples);
  CalibBlocks c;
  c.seqlen = seqlen;
  c.long_docs = long_docs;
  const auto take = [&](const std::vector<int32_t>& t, int64_t begin, int64_t end) {
    c.tokens.insert(c.tokens.end(), t.begin() + begin, t.begin() + end);
    ++c.samples;
  };
  for (size_t i = 0; i < n_docs && c.samples < n_samples; ++i) {
    const std::vector<int32_t> t = encode(i);
    if (t.empty()) continue;
    const int64_t len = int64_t(t.size());
    c.tokens_read += len;
    if (len <= seqlen) {
      take(t, 0, len);
      ++c.docs_taken;
      continue;
    }
    ++c.docs_too_long;
    switch (long_docs) {
      case CalibLong::Skip:  // the reference skips, it does not truncate
        break;
      case CalibLong::Truncate:
        take(t, 0, seqlen);
        ++c.docs_taken;
        break;
      case CalibLong::Split:
        // Consecutive pieces, the document's tokens in order (only the first starts with BOS),
        // each a sample. The last piece, shorter than seqlen, is kept: it is what a short document
        // is, and a short document is always taken. Like any sample it joins the stream, so it
        // fills a block together with whatever follows, or ends up in the dropped tail.
        ++c.docs_taken;
        for (int64_t b = 0; b < len && c.samples < n_samples; b += seqlen) {
          take(t, b, std::min(b + seqlen, len));
          ++c.pieces;
        }
        break;
    }
  }
  c.tokens_total = int64_t(c.tokens.size());
  c.n_blocks = c.tokens_total / seqlen;
  // Split and Truncate take at least seqlen tokens of a long document, so only short ones (or
  // skipped long ones) can leave the stream short of a block.
  AWQ_CHECK(c.n_blocks > 0,
            "{}: not enough calibration text: {}{} give {} tokens, fewer than one block of {} (use "
            "more text or a smaller --calib-seqlen{})",
            source, count(c.docs_taken, "usable document"),
            c.docs_too_long > 0
                ? fmt::format(" ({} skipped as longer than {} tokens)", c.docs_too_long, seqlen)
                : "",
            c.tokens_total, seqlen,
            c.docs_too_long > 0 ? ", or --calib-long split to use the long documents" : "");
  c.tokens_dropped = c.tokens_total - c.n_blocks * seqlen;
  c.tokens.resize(size_t(c.n_blocks * seqlen));
  return c;
}

std::string describe_calibration(const CalibBlocks& c) {
  std::string long_docs;
  switch (c.long_docs) {
    case CalibLong::Split:
      long_docs = fmt::format("{} longer than {} tokens split into {}", c.docs_too_long, c.seqlen,
                              count(c.pieces, "piece"));
      break;
    case CalibLong::Skip:
      long_docs = fmt::format("{} skipped as longer than {} tokens", c.docs_too_long, c.seqlen);
      break;
    case CalibLong::Truncate:
      long_docs = fmt::format("{} longer than {} tokens truncated to their first {}",
                              c.docs_too_long, c.seqlen, c.seqlen);
      break;
  }
  return fmt::format("{} ({}), {} tokens used of {} read", count(c.docs_taken, "document"),
                     long_docs, thousands(c.n_blocks * c.seqlen), thousands(c.tokens_read));
}

std::vector<size_t> document_order(size_t n_docs, std::optional<uint64_t> shuffle_seed) {
  std::vector<size_t> order(n_docs);
  for (size_t i = 0; i < n_docs; ++i) order[i] = i;
  if (!shuffle_seed) return order;
  uint64_t state = *shuffle_seed;
  for (size_t i = n_docs; i > 1; --i) {
    // Unbiased bounded draw in [0, i) by rejection.
    const uint64_t bound = uint64_t(i);
    const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t r;
    do r = splitmix64(state);
    while (r >= limit);
    std::swap(order[i - 1], order[size_t(r % bound)]);
  }
  return order;
}

}  // namespace awq
