// Strict, validating safetensors header parser. Usable without Node (the fuzz harness calls
// parse_header directly). Every failure is a mother::Error with a stable code naming the file and,
// where relevant, the tensor:
//   E_HEADER_EMPTY      0-byte file               E_HEADER_SHORT      fewer than 8 bytes
//   E_HEADER_TOO_LARGE  header length > 10^8 B    E_HEADER_PAST_EOF   8 + N > file size
//   E_HEADER_JSON       not JSON / not UTF-8      E_HEADER_NOT_OBJECT top level not an object
//   E_HEADER_FIELD      missing/ill-typed dtype, shape, data_offsets, __metadata__ (or its values)
//   E_HEADER_DTYPE      unknown dtype string      E_HEADER_SHAPE      non-integer/negative/overflow
//   E_HEADER_OFFSETS    begin > end, past the data area, overlapping, or a hole between tensors
//   E_HEADER_TRAILING   bytes after the last tensor (or data bytes in a file with no tensor)
//   E_HEADER_SIZE       end - begin != numel x dtype size
//   E_HEADER_DUPLICATE  a tensor name appears twice (duplicate JSON keys are detected)
// Acceptance follows the reference implementation (the Rust safetensors crate): sorted by
// (begin, end), tensors must tile the data area exactly, from 0 to the end of the file. Tensors
// may appear in any order in the JSON. Unknown keys inside a tensor entry are ignored, as serde
// does. Stricter than the reference in one respect only: a duplicate key is an error (serde keeps
// the last one silently).
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mother::io {

constexpr uint64_t kMaxHeaderLength = 100000000;  // 10^8 bytes: the reference's MAX_HEADER_SIZE

struct TensorEntry {
  std::string name;
  std::string dtype;  // as in the header, e.g. "F32", "I8", "F8_E4M3"
  std::vector<uint64_t> shape;
  uint64_t begin = 0, end = 0;  // relative to the data area
  uint64_t numel() const;       // product of shape (validated not to overflow)
};

struct Header {
  uint64_t file_size = 0;
  uint64_t header_length = 0;  // N, the 8-byte little-endian prefix
  uint64_t data_offset = 0;    // 8 + N
  std::optional<std::map<std::string, std::string>> metadata;
  std::vector<TensorEntry> tensors;  // in the order of the header JSON
};

// Bytes per element of a safetensors dtype string, or 0 when unknown.
// BOOL U8 I8 U16 I16 F16 BF16 U32 I32 F32 U64 I64 F64 F8_E4M3 F8_E5M2 F8_E8M0.
size_t safetensors_dtype_size(const std::string& dtype);

// bytes = the start of the file; `available` must be >= min(file_size, 8 + N).
Header parse_header(const uint8_t* bytes, size_t available, uint64_t file_size, const std::string& path);

// Opens `path` (FileReader), reads and validates its header. Also throws E_IO_*.
Header read_header(const std::string& path);

}  // namespace mother::io
