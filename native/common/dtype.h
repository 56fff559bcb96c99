// Element types the kernels compute on, and the stored types a stats job may read. Other
// safetensors dtypes are parsed and validated by the header reader, then rejected (with the
// tensor's name) when a tensor of that type is selected.
// Quantized types (GGUF / ggml block formats, see cpu/dequant.cc) are stored in blocks of 32 or
// 256 elements and are dequantised to float32 on the fly by the stats runner; they are never a
// kernel's input type (computable_dtype rejects them, source_dtype accepts them).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace mother {

enum class DType : uint8_t {
  F64 = 0, F32 = 1, F16 = 2, BF16 = 3,
  // ggml block types (GGUF): elements per block / bytes per block in block_elems / block_bytes
  Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K
};

inline bool is_quantized(DType t) { return uint8_t(t) > uint8_t(DType::BF16); }

// Elements per storage block: 1 for plain types, 32 (Q*_0, Q*_1) or 256 (K-quants).
inline uint64_t block_elems(DType t) {
  switch (t) {
    case DType::Q8_0: case DType::Q4_0: case DType::Q4_1: case DType::Q5_0: case DType::Q5_1: return 32;
    case DType::Q4_K: case DType::Q5_K: case DType::Q6_K: return 256;
    default: return 1;
  }
}

// Bytes per storage block (the element size of a plain type).
inline size_t block_bytes(DType t) {
  switch (t) {
    case DType::F64: return 8;
    case DType::F32: return 4;
    case DType::F16: case DType::BF16: return 2;
    case DType::Q8_0: return 34;   // f16 d, int8 qs[32]
    case DType::Q4_0: return 18;   // f16 d, uint8 qs[16]
    case DType::Q4_1: return 20;   // f16 d, f16 m, uint8 qs[16]
    case DType::Q5_0: return 22;   // f16 d, uint8 qh[4], uint8 qs[16]
    case DType::Q5_1: return 24;   // f16 d, f16 m, uint8 qh[4], uint8 qs[16]
    case DType::Q4_K: return 144;  // f16 d, f16 dmin, uint8 scales[12], uint8 qs[128]
    case DType::Q5_K: return 176;  // f16 d, f16 dmin, uint8 scales[12], uint8 qh[32], uint8 qs[128]
    case DType::Q6_K: return 210;  // uint8 ql[128], uint8 qh[64], int8 scales[16], f16 d
  }
  return 4;
}

// Bytes per element of a plain type. Quantized types have no per-element size: use stored_bytes.
inline size_t dtype_size(DType t) { return is_quantized(t) ? 0 : block_bytes(t); }

// Stored bytes of elements [e0, e0 + n) counted so that consecutive ranges add up exactly to the
// tensor's size (floor(end * bytes / elems) - floor(begin * bytes / elems)): what progress and
// bytesRead count. For a plain type it is n x the element size.
inline uint64_t stored_range(DType t, uint64_t e0, uint64_t n) {
  const uint64_t be = block_elems(t), bb = block_bytes(t);
  if (be == 1) return n * bb;
  auto at = [&](uint64_t e) { return (e / be) * bb + (e % be) * bb / be; };
  return at(e0 + n) - at(e0);
}
inline uint64_t stored_bytes(DType t, uint64_t numel) { return stored_range(t, 0, numel); }

// Unit roundoff of the storage type: the relative rounding error of one stored element.
inline double unit_roundoff(DType t) {
  switch (t) {
    case DType::F64: return 0x1p-53;
    case DType::F32: return 0x1p-24;
    case DType::F16: return 0x1p-11;
    case DType::BF16: return 0x1p-8;
    // Quantized: half a quantization step relative to the block's largest magnitude (an upper
    // bound on the per-element error as a fraction of the block's scale, not of the element).
    case DType::Q8_0: return 0x1p-8;
    case DType::Q6_K: return 0x1p-6;
    case DType::Q5_0: case DType::Q5_1: case DType::Q5_K: return 0x1p-5;
    default: return 0x1p-4;  // Q4_0, Q4_1, Q4_K
  }
}

inline bool computable_dtype(std::string_view s, DType* out) {
  if (s == "F64") { *out = DType::F64; return true; }
  if (s == "F32") { *out = DType::F32; return true; }
  if (s == "F16") { *out = DType::F16; return true; }
  if (s == "BF16") { *out = DType::BF16; return true; }
  return false;
}

// What a stats job's source may be stored as: a computable type or a ggml block type.
inline bool source_dtype(std::string_view s, DType* out) {
  if (computable_dtype(s, out)) return true;
  static constexpr struct { const char* name; DType t; } q[] = {
      {"Q8_0", DType::Q8_0}, {"Q4_0", DType::Q4_0}, {"Q4_1", DType::Q4_1}, {"Q5_0", DType::Q5_0},
      {"Q5_1", DType::Q5_1}, {"Q4_K", DType::Q4_K}, {"Q5_K", DType::Q5_K}, {"Q6_K", DType::Q6_K}};
  for (const auto& e : q)
    if (s == e.name) { *out = e.t; return true; }
  return false;
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::F64: return "F64";
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::Q8_0: return "Q8_0";
    case DType::Q4_0: return "Q4_0";
    case DType::Q4_1: return "Q4_1";
    case DType::Q5_0: return "Q5_0";
    case DType::Q5_1: return "Q5_1";
    case DType::Q4_K: return "Q4_K";
    case DType::Q5_K: return "Q5_K";
    case DType::Q6_K: return "Q6_K";
  }
  return "?";
}

}  // namespace mother
