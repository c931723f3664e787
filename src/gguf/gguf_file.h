// GGUF (llama.cpp's model file, versions 2 and 3): a writer that streams tensor data into an
// atomically renamed file, and a reader that maps a file and validates every claim of its header
// before anything is dereferenced.
//
// Layout (little-endian):
//   "GGUF" u32 version, u64 n_tensors, u64 n_kv
//   n_kv × { string key, u32 type, value }          string = u64 length + bytes (no NUL)
//   n_tensors × { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset }
//   zero padding to `general.alignment` (default 32), then the data section; each tensor's offset
//   is relative to the data section and aligned.
// ne[0] is the contiguous dimension: a Hugging Face [out, in] matrix has ne = {in, out}.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/mapped_file.h"

namespace awq::gguf {

// --- ggml tensor types ------------------------------------------------------------------------

// The tensor types awq.cpp reads and writes. Ids are ggml's.
enum class GgmlType : uint32_t { F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q8_0 = 8 };

struct GgmlTypeInfo {
  GgmlType type;
  const char* name;    // "Q4_1"
  int64_t block;       // elements per block along ne[0]
  size_t block_bytes;  // bytes per block
};

// The type of a supported id, or nullopt (for any other ggml type, including the K-quants).
std::optional<GgmlType> ggml_type_from_id(uint32_t id);
const GgmlTypeInfo& ggml_type_info(GgmlType t);
const char* ggml_type_name(GgmlType t);
// "Q4_K (12)" for any id ggml defines, "unknown (99)" otherwise: for error messages.
std::string ggml_type_id_name(uint32_t id);
// Bytes of a tensor with `ne` of type `t`; nullopt when ne[0] is not a multiple of the block
// size or the size overflows.
std::optional<size_t> ggml_nbytes(GgmlType t, std::span<const int64_t> ne);

// Block layouts (ggml's block_q4_0 / block_q4_1 / block_q8_0).
struct BlockQ4_0 {
  uint16_t d;      // f16 scale
  uint8_t qs[16];  // qs[j] = q[j] | q[j + 16] << 4; x = d · (q − 8)
};
struct BlockQ4_1 {
  uint16_t d, m;  // f16 scale and min; x = d · q + m
  uint8_t qs[16];
};
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[32];  // x = d · q
};
static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ8_0) == 34);

// --- metadata values ----------------------------------------------------------------------------

enum class ValueType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  Bool = 7,
  String = 8,
  Array = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};
const char* value_type_name(ValueType t);  // "u32", "string", "array", ...

// One metadata value: a scalar, a string, or an array of scalars or strings (GGUF has no nested
// arrays in practice and llama.cpp rejects them; so do we). Numbers are kept as their
// little-endian bytes, exactly as in the file, so a read-then-write round trip is bit-exact.
class Value {
 public:
  Value() = default;
  static Value u8(uint8_t v);
  static Value i8(int8_t v);
  static Value u16(uint16_t v);
  static Value i16(int16_t v);
  static Value u32(uint32_t v);
  static Value i32(int32_t v);
  static Value u64(uint64_t v);
  static Value i64(int64_t v);
  static Value f32(float v);
  static Value f64(double v);
  static Value boolean(bool v);
  static Value string(std::string v);
  static Value strings(std::vector<std::string> v);
  static Value f32s(std::span<const float> v);
  static Value i32s(std::span<const int32_t> v);
  static Value u32s(std::span<const uint32_t> v);
  // An array of a numeric type from its raw little-endian bytes (n × size of `elem`).
  static Value numeric_array(ValueType elem, size_t n, std::vector<uint8_t> bytes);

  ValueType type() const { return type_; }
  bool is_array() const { return type_ == ValueType::Array; }
  ValueType elem_type() const { return elem_; }  // arrays only
  size_t size() const;                           // array length (1 for a scalar)
  std::string type_str() const;                  // "u32", "array[string]"

  // Scalar reads; nullopt when the value is not of a fitting kind. as_int accepts every integer
  // type (and bool), as_float every float or integer type.
  std::optional<int64_t> as_int() const;
  std::optional<double> as_float() const;
  std::optional<bool> as_bool() const;
  const std::string* as_string() const;
  // Array reads; nullopt / nullptr when the element type does not fit.
  const std::vector<std::string>* as_strings() const;
  std::optional<std::vector<float>> as_floats() const;
  std::optional<std::vector<int64_t>> as_ints() const;

  // Serialized form (type tag excluded) and size, for the writer and tests.
  void serialize(std::string& out) const;

 private:
  friend class GgufFile;
  ValueType type_ = ValueType::U8;
  ValueType elem_ = ValueType::U8;
  std::string str_;
  std::vector<std::string> strs_;
  std::vector<uint8_t> raw_;  // scalar bytes, or numeric array elements
  size_t n_ = 1;              // array length
};

size_t value_type_size(ValueType t);  // 0 for string/array

// --- writer -----------------------------------------------------------------------------------

// Fills `out` with the bytes of one tensor; called once, while the file is written, so that only
// one tensor's data is in memory at a time.
using TensorProducer = std::function<void(std::vector<uint8_t>& out)>;

class GgufWriter {
 public:
  explicit GgufWriter(uint32_t alignment = 32);

  // Sets a metadata key (a repeated key keeps its first position, takes the new value).
  void set(const std::string& key, Value v);
  bool has(const std::string& key) const;

  // Declares a tensor. `ne` is in ggml order (ne[0] contiguous), 1 to 4 dimensions; the producer
  // must then yield exactly ggml_nbytes(type, ne) bytes. Names must be unique and under 64 bytes.
  void add_tensor(const std::string& name, GgmlType type, std::vector<int64_t> ne,
                  TensorProducer produce);
  void add_tensor(const std::string& name, GgmlType type, std::vector<int64_t> ne,
                  std::vector<uint8_t> bytes);

  size_t tensor_count() const { return tensors_.size(); }
  uint32_t alignment() const { return alignment_; }
  // Bytes the whole file will have.
  size_t file_size() const;

  // Writes the file atomically (temporary name, renamed when complete). general.alignment is
  // always written, as u32 (after the caller's keys unless the caller set it).
  void write(const std::string& path) const;

 private:
  struct Tensor {
    std::string name;
    GgmlType type;
    std::vector<int64_t> ne;
    size_t nbytes;
    uint64_t offset;
    TensorProducer produce;
  };
  std::string header_bytes() const;
  uint32_t alignment_;
  std::vector<std::pair<std::string, Value>> kv_;
  std::map<std::string, size_t> kv_index_;
  std::vector<Tensor> tensors_;
  std::map<std::string, size_t> tensor_index_;
  uint64_t data_size_ = 0;
};

// --- reader -----------------------------------------------------------------------------------

struct GgufTensor {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<int64_t> ne;  // ggml order, n_dims entries
  uint64_t offset = 0;      // relative to the data section
  const uint8_t* data = nullptr;
  size_t nbytes = 0;

  int64_t numel() const;
  int64_t cols() const { return ne.empty() ? 1 : ne[0]; }  // the contiguous dimension
  int64_t rows() const;                                    // product of ne[1..]
  std::string ne_str() const;                              // "[64, 172]" (ggml order)
};

class GgufFile {
 public:
  // Maps `path` and validates: magic, version 2 or 3, plausible counts, every string and array
  // inside the file, unique keys and tensor names, general.alignment a power of two (u32), n_dims
  // ≤ 4, non-negative ne, supported tensor types, ne[0] a multiple of the block size, aligned
  // offsets, every tensor inside the data section, no two tensors overlapping. Errors name the
  // file and the key or tensor.
  explicit GgufFile(const std::string& path);

  const std::string& path() const { return file_.path(); }
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  size_t data_offset() const { return data_offset_; }
  size_t file_size() const { return file_.size(); }

  // Metadata, in file order.
  const std::vector<std::pair<std::string, Value>>& metadata() const { return kv_; }
  const Value* find(const std::string& key) const;
  // Typed getters: a missing key (without a default) or a value of another kind is an awq::Error
  // "<file>: metadata key '<key>' ...".
  int64_t get_int(const std::string& key) const;
  int64_t get_int(const std::string& key, int64_t def) const;
  double get_float(const std::string& key) const;
  double get_float(const std::string& key, double def) const;
  bool get_bool(const std::string& key, bool def) const;
  std::string get_string(const std::string& key) const;
  std::string get_string(const std::string& key, const std::string& def) const;
  const std::vector<std::string>& get_strings(const std::string& key) const;
  std::vector<float> get_floats(const std::string& key) const;
  std::vector<int64_t> get_ints(const std::string& key) const;

  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor* find_tensor(const std::string& name) const;
  const GgufTensor& tensor(const std::string& name) const;  // awq::Error naming file and tensor

 private:
  MappedFile file_;
  uint32_t version_ = 0;
  uint32_t alignment_ = 32;
  size_t data_offset_ = 0;
  std::vector<std::pair<std::string, Value>> kv_;
  std::map<std::string, size_t> kv_index_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

}  // namespace awq::gguf
