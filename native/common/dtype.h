// Element types the kernels compute on. Other safetensors dtypes are parsed and validated by the
// header reader, then rejected (with the tensor's name) when a tensor of that type is selected.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace mother {

enum class DType : uint8_t { F64 = 0, F32 = 1, F16 = 2, BF16 = 3 };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::F64: return 8;
    case DType::F32: return 4;
    default: return 2;
  }
}

// Unit roundoff of the storage type: the relative rounding error of one stored element.
inline double unit_roundoff(DType t) {
  switch (t) {
    case DType::F64: return 0x1p-53;
    case DType::F32: return 0x1p-24;
    case DType::F16: return 0x1p-11;
    default: return 0x1p-8;
  }
}

inline bool computable_dtype(std::string_view s, DType* out) {
  if (s == "F64") { *out = DType::F64; return true; }
  if (s == "F32") { *out = DType::F32; return true; }
  if (s == "F16") { *out = DType::F16; return true; }
  if (s == "BF16") { *out = DType::BF16; return true; }
  return false;
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::F64: return "F64";
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    default: return "BF16";
  }
}

}  // namespace mother
