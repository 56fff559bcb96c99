// Strict GGUF (llama.cpp) header parser: magic, version 2 or 3 (little-endian), the metadata
// key/value pairs and the tensor infos. Usable without Node (native/fuzz/fuzz_gguf.cc calls
// parse_gguf directly). It never reads tensor data: it checks that every tensor's data lies inside
// the file. Every failure is a mother::Error whose message names the file and the field, with a
// stable code:
//   E_GGUF_SHORT      fewer than the 24 bytes of magic, version and counts
//   E_GGUF_MAGIC      the file does not start with "GGUF" (a safetensors file, say)
//   E_GGUF_VERSION    version 1 (32-bit counts), a big-endian file, or a version after 3
//   E_GGUF_COUNT      a tensor, KV or array count that the file cannot possibly hold
//   E_GGUF_TRUNCATED  a field runs past the end of the file
//   E_GGUF_STRING     a string longer than the rest of the file; a key or tensor name that is empty
//                     or not UTF-8
//   E_GGUF_TYPE       an unknown value type or array item type; a bool that is not 0 or 1;
//                     arrays nested deeper than 4
//   E_GGUF_KEY        a key twice; general.alignment not a UINT32 power of two
//   E_GGUF_TENSOR     a tensor name twice; 0 or more than 4 dimensions; a size that overflows;
//                     ne[0] not a multiple of the type's block
//   E_GGUF_OFFSETS    an offset not aligned, data past the end of the file, or two tensors' data
//                     overlapping
// Tensor types that the reader does not know (a ggml type added after this code) are not an
// error: the tensor is listed with known = false (its size unknown) and left for the caller to skip.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mother::io {

// GGUF metadata value types (gguf_type).
enum GgufValueType : uint32_t {
  kGgufU8 = 0, kGgufI8 = 1, kGgufU16 = 2, kGgufI16 = 3, kGgufU32 = 4, kGgufI32 = 5, kGgufF32 = 6,
  kGgufBool = 7, kGgufString = 8, kGgufArray = 9, kGgufU64 = 10, kGgufI64 = 11, kGgufF64 = 12
};
const char* gguf_value_type_name(uint32_t type);  // "UINT8" ... "FLOAT64", nullptr when unknown

// Arrays keep at most this many items (the rest are parsed and checked, then dropped:
// tokenizer vocabularies hold 10^5 strings nobody here needs).
constexpr uint64_t kGgufKeepItems = 1024;

struct GgufValue {
  uint32_t type = kGgufU8;
  double number = 0;         // every numeric and bool type
  bool exact = true;         // false for a 64-bit integer beyond 2^53 (then `text` holds it exactly)
  std::string text;          // STRING, or the decimal of an inexact 64-bit integer
  uint32_t item_type = 0;    // ARRAY
  uint64_t length = 0;       // ARRAY: items in the file
  std::vector<GgufValue> items;  // ARRAY: the first min(length, kGgufKeepItems)
};

struct GgufKV {
  std::string key;
  GgufValue value;
};

struct GgufTensor {
  std::string name;
  std::vector<uint64_t> ne;  // ne[0] fastest-varying (PyTorch's shape reversed)
  uint32_t type = 0;         // ggml_type
  bool known = false;        // a ggml type this reader knows the block size of
  uint64_t offset = 0;       // relative to the data section
  uint64_t nbytes = 0;       // 0 when !known
  uint64_t numel() const;
};

struct GgufFile {
  uint64_t file_size = 0;
  uint32_t version = 0;
  uint64_t alignment = 32;
  uint64_t data_offset = 0;  // absolute start of the data section
  std::vector<GgufKV> kv;          // in file order
  std::vector<GgufTensor> tensors;  // in file order
};

// ggml type -> name ("F32", "Q4_K", "IQ2_XXS", ...) and block size; false / nullptr when unknown.
const char* ggml_type_name(uint32_t type);
bool ggml_type_block(uint32_t type, uint64_t* elems, uint64_t* bytes);

// Thrown by parse_gguf when the header goes on past `available` bytes but the file is longer:
// the caller reads at least `need` bytes from the start and calls again. Never escapes read_gguf.
struct GgufNeedMore {
  uint64_t need;
};

// bytes = the start of a file of file_size bytes, `available` of them present.
GgufFile parse_gguf(const uint8_t* bytes, size_t available, uint64_t file_size, const std::string& path);

// Opens `path` (FileReader), reads as much of its start as the header needs and parses it.
// Also throws E_IO_* (and E_GGUF_TOO_LARGE for a header over 1 GiB).
GgufFile read_gguf(const std::string& path);

}  // namespace mother::io
