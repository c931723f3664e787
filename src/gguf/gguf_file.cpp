#include "gguf/gguf_file.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>

#include "base/error.h"
#include "base/files.h"

namespace awq::gguf {
static_assert(std::endian::native == std::endian::little, "GGUF I/O assumes a little-endian host");

namespace {

constexpr uint32_t kMaxDims = 4;
constexpr size_t kMaxName = 64;  // ggml's GGML_MAX_NAME, including the terminating NUL
constexpr const char* kAlignmentKey = "general.alignment";

constexpr GgmlTypeInfo kTypes[] = {
    {GgmlType::F32, "F32", 1, 4},
    {GgmlType::F16, "F16", 1, 2},
    {GgmlType::Q4_0, "Q4_0", 32, sizeof(BlockQ4_0)},
    {GgmlType::Q4_1, "Q4_1", 32, sizeof(BlockQ4_1)},
    {GgmlType::Q8_0, "Q8_0", 32, sizeof(BlockQ8_0)},
};

// Names of every type id ggml has defined, so an unsupported one is reported by name.
const char* any_ggml_type_name(uint32_t id) {
  static const char* const names[] = {
      "F32",   "F16",        "Q4_0",       "Q4_1",      "Q4_2",     "Q4_3",     "Q5_0",
      "Q5_1",  "Q8_0",       "Q8_1",       "Q2_K",      "Q3_K",     "Q4_K",     "Q5_K",
      "Q6_K",  "Q8_K",       "IQ2_XXS",    "IQ2_XS",    "IQ3_XXS",  "IQ1_S",    "IQ4_NL",
      "IQ3_S", "IQ2_S",      "IQ4_XS",     "I8",        "I16",      "I32",      "I64",
      "F64",   "IQ1_M",      "BF16",       "Q4_0_4_4",  "Q4_0_4_8", "Q4_0_8_8", "TQ1_0",
      "TQ2_0", "IQ4_NL_4_4", "IQ4_NL_4_8", "IQ4_NL_8_8"};
  return id < std::size(names) ? names[id] : nullptr;
}

template <typename T>
std::vector<uint8_t> bytes_of(const T& v) {
  std::vector<uint8_t> b(sizeof(T));
  std::memcpy(b.data(), &v, sizeof(T));
  return b;
}

template <typename T>
void put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}

void put_string(std::string& out, std::string_view s) {
  put<uint64_t>(out, s.size());
  out.append(s);
}

uint64_t pad_to(uint64_t x, uint64_t align) {
  return (x + align - 1) / align * align;
}

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

}  // namespace

// --- ggml types -------------------------------------------------------------------------------

std::optional<GgmlType> ggml_type_from_id(uint32_t id) {
  for (const auto& t : kTypes) {
    if (uint32_t(t.type) == id) return t.type;
  }
  return std::nullopt;
}

const GgmlTypeInfo& ggml_type_info(GgmlType t) {
  for (const auto& i : kTypes) {
    if (i.type == t) return i;
  }
  fail("internal: ggml type {} has no info", uint32_t(t));
}

const char* ggml_type_name(GgmlType t) {
  return ggml_type_info(t).name;
}

std::string ggml_type_id_name(uint32_t id) {
  const char* n = any_ggml_type_name(id);
  return fmt::format("{} ({})", n ? n : "unknown", id);
}

std::optional<size_t> ggml_nbytes(GgmlType t, std::span<const int64_t> ne) {
  const GgmlTypeInfo& info = ggml_type_info(t);
  if (ne.empty() || ne[0] < 0 || ne[0] % info.block != 0) return std::nullopt;
  unsigned __int128 n = uint64_t(ne[0] / info.block) * uint64_t(info.block_bytes);
  for (size_t i = 1; i < ne.size(); ++i) {
    if (ne[i] < 0) return std::nullopt;
    n *= uint64_t(ne[i]);
    if (n > std::numeric_limits<int64_t>::max()) return std::nullopt;
  }
  if (n > std::numeric_limits<int64_t>::max()) return std::nullopt;
  return size_t(n);
}

// --- values -----------------------------------------------------------------------------------

const char* value_type_name(ValueType t) {
  switch (t) {
    case ValueType::U8:
      return "u8";
    case ValueType::I8:
      return "i8";
    case ValueType::U16:
      return "u16";
    case ValueType::I16:
      return "i16";
    case ValueType::U32:
      return "u32";
    case ValueType::I32:
      return "i32";
    case ValueType::F32:
      return "f32";
    case ValueType::Bool:
      return "bool";
    case ValueType::String:
      return "string";
    case ValueType::Array:
      return "array";
    case ValueType::U64:
      return "u64";
    case ValueType::I64:
      return "i64";
    case ValueType::F64:
      return "f64";
  }
  return "unknown";
}

size_t value_type_size(ValueType t) {
  switch (t) {
    case ValueType::U8:
    case ValueType::I8:
    case ValueType::Bool:
      return 1;
    case ValueType::U16:
    case ValueType::I16:
      return 2;
    case ValueType::U32:
    case ValueType::I32:
    case ValueType::F32:
      return 4;
    case ValueType::U64:
    case ValueType::I64:
    case ValueType::F64:
      return 8;
    case ValueType::String:
    case ValueType::Array:
      return 0;
  }
  return 0;
}

#define AWQ_GGUF_SCALAR(fn, T, VT) \
  Value Value::fn(T v) {           \
    Value x;                       \
    x.type_ = ValueType::VT;       \
    x.raw_ = bytes_of<T>(v);       \
    return x;                      \
  }
AWQ_GGUF_SCALAR(u8, uint8_t, U8)
AWQ_GGUF_SCALAR(i8, int8_t, I8)
AWQ_GGUF_SCALAR(u16, uint16_t, U16)
AWQ_GGUF_SCALAR(i16, int16_t, I16)
AWQ_GGUF_SCALAR(u32, uint32_t, U32)
AWQ_GGUF_SCALAR(i32, int32_t, I32)
AWQ_GGUF_SCALAR(u64, uint64_t, U64)
AWQ_GGUF_SCALAR(i64, int64_t, I64)
AWQ_GGUF_SCALAR(f32, float, F32)
AWQ_GGUF_SCALAR(f64, double, F64)
#undef AWQ_GGUF_SCALAR

Value Value::boolean(bool v) {
  Value x;
  x.type_ = ValueType::Bool;
  x.raw_ = {uint8_t(v ? 1 : 0)};
  return x;
}

Value Value::string(std::string v) {
  Value x;
  x.type_ = ValueType::String;
  x.str_ = std::move(v);
  return x;
}

Value Value::strings(std::vector<std::string> v) {
  Value x;
  x.type_ = ValueType::Array;
  x.elem_ = ValueType::String;
  x.n_ = v.size();
  x.strs_ = std::move(v);
  return x;
}

Value Value::numeric_array(ValueType elem, size_t n, std::vector<uint8_t> bytes) {
  const size_t es = value_type_size(elem);
  AWQ_CHECK(es > 0, "GGUF array of {} is not a numeric array", value_type_name(elem));
  AWQ_CHECK(bytes.size() == n * es, "GGUF array of {} {}: {} bytes, expected {}", n,
            value_type_name(elem), bytes.size(), n * es);
  Value x;
  x.type_ = ValueType::Array;
  x.elem_ = elem;
  x.n_ = n;
  x.raw_ = std::move(bytes);
  return x;
}

template <typename T>
static std::vector<uint8_t> span_bytes(std::span<const T> v) {
  std::vector<uint8_t> b(v.size_bytes());
  if (!v.empty()) std::memcpy(b.data(), v.data(), v.size_bytes());
  return b;
}

Value Value::f32s(std::span<const float> v) {
  return numeric_array(ValueType::F32, v.size(), span_bytes(v));
}
Value Value::i32s(std::span<const int32_t> v) {
  return numeric_array(ValueType::I32, v.size(), span_bytes(v));
}
Value Value::u32s(std::span<const uint32_t> v) {
  return numeric_array(ValueType::U32, v.size(), span_bytes(v));
}

size_t Value::size() const {
  return is_array() ? n_ : 1;
}

std::string Value::type_str() const {
  if (!is_array()) return value_type_name(type_);
  return fmt::format("array[{}]", value_type_name(elem_));
}

namespace {
// Element i of raw numeric storage of type t as an integer (nullopt for floats / u64 overflow).
std::optional<int64_t> raw_int(ValueType t, const uint8_t* p) {
  switch (t) {
    case ValueType::U8:
      return load<uint8_t>(p);
    case ValueType::I8:
      return load<int8_t>(p);
    case ValueType::U16:
      return load<uint16_t>(p);
    case ValueType::I16:
      return load<int16_t>(p);
    case ValueType::U32:
      return load<uint32_t>(p);
    case ValueType::I32:
      return load<int32_t>(p);
    case ValueType::I64:
      return load<int64_t>(p);
    case ValueType::Bool:
      return load<uint8_t>(p) != 0 ? 1 : 0;
    case ValueType::U64: {
      const uint64_t v = load<uint64_t>(p);
      if (v > uint64_t(std::numeric_limits<int64_t>::max())) return std::nullopt;
      return int64_t(v);
    }
    default:
      return std::nullopt;
  }
}

std::optional<double> raw_float(ValueType t, const uint8_t* p) {
  if (t == ValueType::F32) return load<float>(p);
  if (t == ValueType::F64) return load<double>(p);
  if (t == ValueType::Bool) return std::nullopt;
  if (t == ValueType::U64) return double(load<uint64_t>(p));
  if (auto i = raw_int(t, p)) return double(*i);
  return std::nullopt;
}
}  // namespace

std::optional<int64_t> Value::as_int() const {
  if (is_array() || type_ == ValueType::String || type_ == ValueType::F32 ||
      type_ == ValueType::F64)
    return std::nullopt;
  return raw_int(type_, raw_.data());
}

std::optional<double> Value::as_float() const {
  if (is_array() || type_ == ValueType::String) return std::nullopt;
  return raw_float(type_, raw_.data());
}

std::optional<bool> Value::as_bool() const {
  if (type_ != ValueType::Bool) return std::nullopt;
  return raw_[0] != 0;
}

const std::string* Value::as_string() const {
  return type_ == ValueType::String ? &str_ : nullptr;
}

const std::vector<std::string>* Value::as_strings() const {
  return is_array() && elem_ == ValueType::String ? &strs_ : nullptr;
}

std::optional<std::vector<float>> Value::as_floats() const {
  if (!is_array() || elem_ == ValueType::String || elem_ == ValueType::Bool) return std::nullopt;
  const size_t es = value_type_size(elem_);
  std::vector<float> v(n_);
  for (size_t i = 0; i < n_; ++i) {
    const auto f = raw_float(elem_, raw_.data() + i * es);
    if (!f) return std::nullopt;
    v[i] = float(*f);
  }
  return v;
}

std::optional<std::vector<int64_t>> Value::as_ints() const {
  if (!is_array() || elem_ == ValueType::String || elem_ == ValueType::F32 ||
      elem_ == ValueType::F64)
    return std::nullopt;
  const size_t es = value_type_size(elem_);
  std::vector<int64_t> v(n_);
  for (size_t i = 0; i < n_; ++i) {
    const auto x = raw_int(elem_, raw_.data() + i * es);
    if (!x) return std::nullopt;
    v[i] = *x;
  }
  return v;
}

void Value::serialize(std::string& out) const {
  if (type_ == ValueType::String) {
    put_string(out, str_);
  } else if (type_ == ValueType::Array) {
    put<uint32_t>(out, uint32_t(elem_));
    put<uint64_t>(out, n_);
    if (elem_ == ValueType::String) {
      for (const auto& s : strs_) put_string(out, s);
    } else {
      out.append(reinterpret_cast<const char*>(raw_.data()), raw_.size());
    }
  } else {
    out.append(reinterpret_cast<const char*>(raw_.data()), raw_.size());
  }
}

// --- writer -----------------------------------------------------------------------------------

GgufWriter::GgufWriter(uint32_t alignment) : alignment_(alignment) {
  AWQ_CHECK(alignment > 0 && (alignment & (alignment - 1)) == 0,
            "GGUF alignment must be a power of two (got {})", alignment);
}

void GgufWriter::set(const std::string& key, Value v) {
  if (key == kAlignmentKey) {
    AWQ_CHECK(v.type() == ValueType::U32 && v.as_int() == int64_t(alignment_),
              "GGUF writer: general.alignment must be the u32 {} given to the writer", alignment_);
  }
  auto it = kv_index_.find(key);
  if (it != kv_index_.end()) {
    kv_[it->second].second = std::move(v);
  } else {
    kv_index_[key] = kv_.size();
    kv_.emplace_back(key, std::move(v));
  }
}

bool GgufWriter::has(const std::string& key) const {
  return kv_index_.count(key) > 0;
}

void GgufWriter::add_tensor(const std::string& name, GgmlType type, std::vector<int64_t> ne,
                            TensorProducer produce) {
  AWQ_CHECK(!name.empty() && name.size() < kMaxName,
            "GGUF writer: tensor name '{}' must have 1 to {} bytes", name, kMaxName - 1);
  AWQ_CHECK(!tensor_index_.count(name), "GGUF writer: tensor '{}' added twice", name);
  AWQ_CHECK(!ne.empty() && ne.size() <= kMaxDims,
            "GGUF writer: tensor '{}' has {} dimensions (1 to {})", name, ne.size(), kMaxDims);
  const auto nbytes = ggml_nbytes(type, ne);
  AWQ_CHECK(
      nbytes.has_value(),
      "GGUF writer: tensor '{}' of type {} cannot have ne {} (ne[0] must be a multiple of {})",
      name, ggml_type_name(type), fmt::join(ne, ", "), ggml_type_info(type).block);
  tensor_index_[name] = tensors_.size();
  tensors_.push_back(Tensor{name, type, std::move(ne), *nbytes, data_size_, std::move(produce)});
  data_size_ += pad_to(*nbytes, alignment_);
}

void GgufWriter::add_tensor(const std::string& name, GgmlType type, std::vector<int64_t> ne,
                            std::vector<uint8_t> bytes) {
  auto shared = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
  add_tensor(name, type, std::move(ne), [shared](std::vector<uint8_t>& out) { out.swap(*shared); });
}

std::string GgufWriter::header_bytes() const {
  std::string h;
  h.append("GGUF", 4);
  put<uint32_t>(h, 3);
  put<uint64_t>(h, tensors_.size());
  const bool add_alignment = !has(kAlignmentKey);
  put<uint64_t>(h, kv_.size() + (add_alignment ? 1 : 0));
  auto put_kv = [&](const std::string& key, const Value& v) {
    put_string(h, key);
    put<uint32_t>(h, uint32_t(v.type()));
    v.serialize(h);
  };
  for (const auto& [key, v] : kv_) put_kv(key, v);
  if (add_alignment) put_kv(kAlignmentKey, Value::u32(alignment_));
  for (const auto& t : tensors_) {
    put_string(h, t.name);
    put<uint32_t>(h, uint32_t(t.ne.size()));
    for (int64_t n : t.ne) put<uint64_t>(h, uint64_t(n));
    put<uint32_t>(h, uint32_t(t.type));
    put<uint64_t>(h, t.offset);
  }
  return h;
}

size_t GgufWriter::file_size() const {
  return pad_to(header_bytes().size(), alignment_) + data_size_;
}

void GgufWriter::write(const std::string& path) const {
  const std::string header = header_bytes();
  const std::string zeros(alignment_, '\0');
  write_file_atomic(path, [&](std::ofstream& out) {
    out.write(header.data(), std::streamsize(header.size()));
    out.write(zeros.data(), std::streamsize(pad_to(header.size(), alignment_) - header.size()));
    std::vector<uint8_t> buf;
    for (const auto& t : tensors_) {
      buf.clear();
      t.produce(buf);
      AWQ_CHECK(buf.size() == t.nbytes, "{}: tensor '{}' ({} {}) produced {} bytes, expected {}",
                path, t.name, ggml_type_name(t.type), fmt::join(t.ne, "x"), buf.size(), t.nbytes);
      out.write(reinterpret_cast<const char*>(buf.data()), std::streamsize(buf.size()));
      out.write(zeros.data(), std::streamsize(pad_to(t.nbytes, alignment_) - t.nbytes));
      AWQ_CHECK(out.good(), "{}: write failed: {}", path, std::strerror(errno));
    }
  });
}

// --- reader -----------------------------------------------------------------------------------

int64_t GgufTensor::numel() const {
  int64_t n = 1;
  for (int64_t x : ne) n *= x;
  return n;
}

int64_t GgufTensor::rows() const {
  int64_t n = 1;
  for (size_t i = 1; i < ne.size(); ++i) n *= ne[i];
  return n;
}

std::string GgufTensor::ne_str() const {
  return fmt::format("[{}]", fmt::join(ne, ", "));
}

namespace {

// Bounds-checked reading of the header; every failure names the file, the offset and the item.
class Cursor {
 public:
  Cursor(const uint8_t* p, size_t size, const std::string& path)
      : p_(p), size_(size), path_(path) {}
  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  void need(uint64_t n, const std::string& what) const {
    AWQ_CHECK(n <= remaining(),
              "{}: truncated GGUF: {} needs {} bytes at offset {}, but the file ends at {}", path_,
              what, n, pos_, size_);
  }
  template <typename T>
  T read(const std::string& what) {
    need(sizeof(T), what);
    T v = load<T>(p_ + pos_);
    pos_ += sizeof(T);
    return v;
  }
  std::string read_string(const std::string& what) {
    const uint64_t n = read<uint64_t>(what + " (length)");
    need(n, fmt::format("{} (a string of {} bytes)", what, n));
    std::string s(reinterpret_cast<const char*>(p_ + pos_), size_t(n));
    pos_ += size_t(n);
    return s;
  }
  const uint8_t* take(size_t n, const std::string& what) {
    need(n, what);
    const uint8_t* q = p_ + pos_;
    pos_ += n;
    return q;
  }

 private:
  const uint8_t* p_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& path_;
};

bool valid_value_type(uint32_t t) {
  return t <= uint32_t(ValueType::F64);
}

}  // namespace

GgufFile::GgufFile(const std::string& path) : file_(path) {
  const std::string& f = file_.path();
  Cursor c(file_.data(), file_.size(), f);
  AWQ_CHECK(file_.size() >= 4 && std::memcmp(file_.data(), "GGUF", 4) == 0,
            "{}: not a GGUF file (the first 4 bytes are not \"GGUF\")", f);
  c.take(4, "magic");
  version_ = c.read<uint32_t>("the version");
  AWQ_CHECK(version_ != 1,
            "{}: GGUF version 1 is not supported (only 2 and 3; re-convert the model)", f);
  AWQ_CHECK(
      version_ == 0 || (version_ & 0xffff) != 0,
      "{}: GGUF version {} (0x{:08x}) is not supported; a big-endian file? (only little-endian "
      "versions 2 and 3)",
      f, version_, version_);
  AWQ_CHECK(version_ == 2 || version_ == 3, "{}: GGUF version {} is not supported (only 2 and 3)",
            f, version_);
  const uint64_t n_tensors = c.read<uint64_t>("the tensor count");
  const uint64_t n_kv = c.read<uint64_t>("the metadata count");
  // Each entry takes a minimum number of bytes, so counts that the file cannot hold are lies.
  AWQ_CHECK(n_kv <= c.remaining() / 13,
            "{}: header claims {} metadata entries, more than the {} remaining bytes can hold", f,
            n_kv, c.remaining());
  AWQ_CHECK(n_tensors <= c.remaining() / 24,
            "{}: header claims {} tensors, more than the {} remaining bytes can hold", f, n_tensors,
            c.remaining());

  kv_.reserve(size_t(n_kv));
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = c.read_string(fmt::format("the key of metadata entry {}", i));
    AWQ_CHECK(!kv_index_.count(key), "{}: metadata key '{}' appears twice", f, key);
    const std::string what = fmt::format("metadata key '{}'", key);
    const uint32_t t = c.read<uint32_t>("the type of " + what);
    AWQ_CHECK(valid_value_type(t), "{}: {} has invalid value type {}", f, what, t);
    Value v;
    v.type_ = ValueType(t);
    if (v.type_ == ValueType::String) {
      v.str_ = c.read_string("the value of " + what);
    } else if (v.type_ == ValueType::Array) {
      const uint32_t et = c.read<uint32_t>("the element type of " + what);
      AWQ_CHECK(valid_value_type(et), "{}: {} is an array of invalid type {}", f, what, et);
      AWQ_CHECK(ValueType(et) != ValueType::Array, "{}: {} is an array of arrays (not supported)",
                f, what);
      v.elem_ = ValueType(et);
      const uint64_t n = c.read<uint64_t>("the length of " + what);
      v.n_ = size_t(n);
      if (v.elem_ == ValueType::String) {
        AWQ_CHECK(n <= c.remaining() / 8,
                  "{}: {} claims {} strings, more than the {} remaining bytes can hold", f, what, n,
                  c.remaining());
        v.strs_.reserve(size_t(n));
        for (uint64_t j = 0; j < n; ++j)
          v.strs_.push_back(c.read_string(fmt::format("{} element {}", what, j)));
      } else {
        const size_t es = value_type_size(v.elem_);
        AWQ_CHECK(n <= c.remaining() / es,
                  "{}: {} claims {} elements of {}, more than the {} remaining bytes hold", f, what,
                  n, value_type_name(v.elem_), c.remaining());
        const uint8_t* p = c.take(size_t(n) * es, what);
        v.raw_.assign(p, p + size_t(n) * es);
      }
    } else {
      const size_t es = value_type_size(v.type_);
      const uint8_t* p = c.take(es, "the value of " + what);
      v.raw_.assign(p, p + es);
    }
    kv_index_[key] = kv_.size();
    kv_.emplace_back(std::move(key), std::move(v));
  }

  if (const Value* a = find(kAlignmentKey)) {
    AWQ_CHECK(a->type() == ValueType::U32,
              "{}: metadata key 'general.alignment' must be u32, is {}", f, a->type_str());
    const int64_t al = *a->as_int();
    AWQ_CHECK(al > 0 && (al & (al - 1)) == 0, "{}: general.alignment {} is not a power of two", f,
              al);
    alignment_ = uint32_t(al);
  }

  tensors_.reserve(size_t(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensor t;
    t.name = c.read_string(fmt::format("the name of tensor {}", i));
    AWQ_CHECK(!t.name.empty() && t.name.size() < kMaxName,
              "{}: tensor {} name '{}' must have 1 to {} bytes", f, i, t.name, kMaxName - 1);
    AWQ_CHECK(!tensor_index_.count(t.name), "{}: tensor '{}' appears twice", f, t.name);
    const std::string what = fmt::format("tensor '{}'", t.name);
    const uint32_t n_dims = c.read<uint32_t>("the dimension count of " + what);
    AWQ_CHECK(n_dims >= 1 && n_dims <= kMaxDims, "{}: {} has {} dimensions (1 to {} allowed)", f,
              what, n_dims, kMaxDims);
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t n = c.read<uint64_t>(fmt::format("dimension {} of {}", d, what));
      AWQ_CHECK(n <= uint64_t(std::numeric_limits<int64_t>::max()),
                "{}: {} dimension {} is {} (negative as i64)", f, what, d, n);
      t.ne.push_back(int64_t(n));
    }
    const uint32_t type_id = c.read<uint32_t>("the type of " + what);
    const auto type = ggml_type_from_id(type_id);
    AWQ_CHECK(type.has_value(),
              "{}: {} has ggml type {}, which awq.cpp does not read (supported: F32, F16, Q4_0, "
              "Q4_1, Q8_0)",
              f, what, ggml_type_id_name(type_id));
    t.type = *type;
    const auto nbytes = ggml_nbytes(t.type, t.ne);
    AWQ_CHECK(nbytes.has_value(),
              "{}: {} of type {} has shape {}: ne[0] must be a multiple of {} and the size finite",
              f, what, ggml_type_name(t.type), t.ne_str(), ggml_type_info(t.type).block);
    t.nbytes = *nbytes;
    t.offset = c.read<uint64_t>("the data offset of " + what);
    AWQ_CHECK(t.offset % alignment_ == 0,
              "{}: {} has data offset {}, not a multiple of the alignment {}", f, what, t.offset,
              alignment_);
    tensor_index_[t.name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }

  data_offset_ = size_t(pad_to(c.pos(), alignment_));
  const size_t data_size = data_offset_ <= file_.size() ? file_.size() - data_offset_ : 0;
  if (!tensors_.empty()) {
    AWQ_CHECK(data_offset_ <= file_.size(),
              "{}: truncated GGUF: the data section would start at {}, past the end {}", f,
              data_offset_, file_.size());
  }
  for (auto& t : tensors_) {
    AWQ_CHECK(t.offset <= data_size && t.nbytes <= data_size - t.offset,
              "{}: tensor '{}' ({} {}, {} bytes at data offset {}) runs past the end of the file "
              "(data section has "
              "{} bytes; truncated?)",
              f, t.name, ggml_type_name(t.type), t.ne_str(), t.nbytes, t.offset, data_size);
    t.data = file_.data() + data_offset_ + t.offset;
  }
  std::vector<const GgufTensor*> by_offset;
  for (const auto& t : tensors_) {
    if (t.nbytes > 0) by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const GgufTensor* a, const GgufTensor* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const GgufTensor& a = *by_offset[i - 1];
    const GgufTensor& b = *by_offset[i];
    AWQ_CHECK(a.offset + a.nbytes <= b.offset,
              "{}: tensors '{}' (bytes {}..{}) and '{}' (from {}) overlap", f, a.name, a.offset,
              a.offset + a.nbytes, b.name, b.offset);
  }
}

const Value* GgufFile::find(const std::string& key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

namespace {
[[noreturn]] void wrong_kind(const std::string& file, const std::string& key, const Value& v,
                             const char* want) {
  fail("{}: metadata key '{}' is {}, expected {}", file, key, v.type_str(), want);
}
}  // namespace

int64_t GgufFile::get_int(const std::string& key) const {
  const Value* v = find(key);
  AWQ_CHECK(v, "{}: missing metadata key '{}'", path(), key);
  const auto i = v->as_int();
  if (!i) wrong_kind(path(), key, *v, "an integer");
  return *i;
}

int64_t GgufFile::get_int(const std::string& key, int64_t def) const {
  return find(key) ? get_int(key) : def;
}

double GgufFile::get_float(const std::string& key) const {
  const Value* v = find(key);
  AWQ_CHECK(v, "{}: missing metadata key '{}'", path(), key);
  const auto x = v->as_float();
  if (!x) wrong_kind(path(), key, *v, "a number");
  return *x;
}

double GgufFile::get_float(const std::string& key, double def) const {
  return find(key) ? get_float(key) : def;
}

bool GgufFile::get_bool(const std::string& key, bool def) const {
  const Value* v = find(key);
  if (!v) return def;
  const auto b = v->as_bool();
  if (!b) wrong_kind(path(), key, *v, "a bool");
  return *b;
}

std::string GgufFile::get_string(const std::string& key) const {
  const Value* v = find(key);
  AWQ_CHECK(v, "{}: missing metadata key '{}'", path(), key);
  const std::string* s = v->as_string();
  if (!s) wrong_kind(path(), key, *v, "a string");
  return *s;
}

std::string GgufFile::get_string(const std::string& key, const std::string& def) const {
  return find(key) ? get_string(key) : def;
}

const std::vector<std::string>& GgufFile::get_strings(const std::string& key) const {
  const Value* v = find(key);
  AWQ_CHECK(v, "{}: missing metadata key '{}'", path(), key);
  const auto* s = v->as_strings();
  if (!s) wrong_kind(path(), key, *v, "an array of strings");
  return *s;
}

std::vector<float> GgufFile::get_floats(const std::string& key) const {
  const Value* v = find(key);
  AWQ_CHECK(v, "{}: missing metadata key '{}'", path(), key);
  auto x = v->as_floats();
  if (!x) wrong_kind(path(), key, *v, "an array of numbers");
  return std::move(*x);
}

std::vector<int64_t> GgufFile::get_ints(const std::string& key) const {
  const Value* v = find(key);
  AWQ_CHECK(v, "{}: missing metadata key '{}'", path(), key);
  auto x = v->as_ints();
  if (!x) wrong_kind(path(), key, *v, "an array of integers");
  return std::move(*x);
}

const GgufTensor* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufTensor& GgufFile::tensor(const std::string& name) const {
  const GgufTensor* t = find_tensor(name);
  AWQ_CHECK(t, "{}: tensor '{}' not found", path(), name);
  return *t;
}

}  // namespace awq::gguf
