// Dequantisation of ggml's block formats (GGUF tensors) to float32, as ggml's reference
// dequantize_row_* compute them: every product that ggml forms in float32 is formed here in the
// same order, so results are bit-identical to ggml's scalar code (and to a float64 evaluation of
// the same expression rounded once to float32: the partial products are exact in float32).
// Block layouts (little-endian, packed, `f16` an IEEE binary16):
//   Q8_0  34 B / 32:  f16 d; int8 qs[32]                       y = d * qs
//   Q4_0  18 B / 32:  f16 d; u8 qs[16]                          y[j] = d * ((qs[j] & 15) - 8), y[j+16]: high nibble
//   Q4_1  20 B / 32:  f16 d, m; u8 qs[16]                       y = d * q + m
//   Q5_0  22 B / 32:  f16 d; u8 qh[4]; u8 qs[16]                q = nibble | bit j (j+12 for the high half) of qh << 4; y = d * (q - 16)
//   Q5_1  24 B / 32:  f16 d, m; u8 qh[4]; u8 qs[16]             y = d * q + m
//   Q4_K 144 B / 256: f16 d, dmin; u8 scales[12]; u8 qs[128]    8 sub-blocks of 32, 6-bit scale and min each:
//                                                               y = (d * sc) * q - (dmin * m)
//   Q5_K 176 B / 256: f16 d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]   as Q4_K, q gets a fifth bit from qh
//   Q6_K 210 B / 256: u8 ql[128]; u8 qh[64]; int8 scales[16]; f16 d      16 sub-blocks of 16: y = (d * sc) * (q - 32)
// Non-finite scales give what IEEE arithmetic gives (NaN for Inf * 0), as in ggml. Portable C++
// (the loops are simple enough for the compiler to vectorise); no allocation, no I/O.
#include <cstring>

#include "cpu/kernels.h"

namespace mother::cpu {
namespace {

inline float bits_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// IEEE binary16 -> binary32, exact (subnormals, +-0, +-Inf, NaN).
inline float f16(const unsigned char* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (mant << 13));
  if (exp != 0) return bits_f32(sign | ((exp + 112u) << 23) | (mant << 13));
  const float v = float(mant) * 0x1p-24f;
  return sign ? -v : v;
}

void q8_0(const unsigned char* b, float* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i, b += 34, y += 32) {
    const float d = f16(b);
    const int8_t* q = reinterpret_cast<const int8_t*>(b + 2);
    for (int j = 0; j < 32; ++j) y[j] = float(q[j]) * d;
  }
}

void q4_0(const unsigned char* b, float* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i, b += 18, y += 32) {
    const float d = f16(b);
    const unsigned char* q = b + 2;
    for (int j = 0; j < 16; ++j) {
      y[j] = float(int(q[j] & 15) - 8) * d;
      y[j + 16] = float(int(q[j] >> 4) - 8) * d;
    }
  }
}

void q4_1(const unsigned char* b, float* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i, b += 20, y += 32) {
    const float d = f16(b), m = f16(b + 2);
    const unsigned char* q = b + 4;
    for (int j = 0; j < 16; ++j) {
      y[j] = float(q[j] & 15) * d + m;
      y[j + 16] = float(q[j] >> 4) * d + m;
    }
  }
}

void q5_0(const unsigned char* b, float* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i, b += 22, y += 32) {
    const float d = f16(b);
    uint32_t qh;
    std::memcpy(&qh, b + 2, 4);
    const unsigned char* q = b + 6;
    for (int j = 0; j < 16; ++j) {
      const int x0 = int((q[j] & 15) | (((qh >> j) << 4) & 0x10)) - 16;
      const int x1 = int((q[j] >> 4) | ((qh >> (j + 12)) & 0x10)) - 16;
      y[j] = float(x0) * d;
      y[j + 16] = float(x1) * d;
    }
  }
}

void q5_1(const unsigned char* b, float* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i, b += 24, y += 32) {
    const float d = f16(b), m = f16(b + 2);
    uint32_t qh;
    std::memcpy(&qh, b + 4, 4);
    const unsigned char* q = b + 8;
    for (int j = 0; j < 16; ++j) {
      const int x0 = int((q[j] & 15) | (((qh >> j) << 4) & 0x10));
      const int x1 = int((q[j] >> 4) | ((qh >> (j + 12)) & 0x10));
      y[j] = float(x0) * d + m;
      y[j + 16] = float(x1) * d + m;
    }
  }
}

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K block (ggml's get_scale_min_k4).
inline void scale_min_k4(int j, const unsigned char* s, int* sc, int* m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else {
    *sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
    *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

void q4_k(const unsigned char* b, float* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i, b += 144) {
    const float d = f16(b), dmin = f16(b + 2);
    const unsigned char* scales = b + 4;
    const unsigned char* q = b + 16;
    for (int j = 0, is = 0; j < 256; j += 64, q += 32, is += 2) {
      int sc, m;
      scale_min_k4(is, scales, &sc, &m);
      const float d1 = d * float(sc), m1 = dmin * float(m);
      scale_min_k4(is + 1, scales, &sc, &m);
      const float d2 = d * float(sc), m2 = dmin * float(m);
      for (int l = 0; l < 32; ++l) *y++ = d1 * float(q[l] & 15) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * float(q[l] >> 4) - m2;
    }
  }
}

void q5_k(const unsigned char* b, float* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i, b += 176) {
    const float d = f16(b), dmin = f16(b + 2);
    const unsigned char* scales = b + 4;
    const unsigned char* qh = b + 16;
    const unsigned char* ql = b + 48;
    unsigned u1 = 1, u2 = 2;
    for (int j = 0, is = 0; j < 256; j += 64, ql += 32, is += 2, u1 <<= 2, u2 <<= 2) {
      int sc, m;
      scale_min_k4(is, scales, &sc, &m);
      const float d1 = d * float(sc), m1 = dmin * float(m);
      scale_min_k4(is + 1, scales, &sc, &m);
      const float d2 = d * float(sc), m2 = dmin * float(m);
      for (int l = 0; l < 32; ++l) *y++ = d1 * float((ql[l] & 15) + (qh[l] & u1 ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * float((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
    }
  }
}

void q6_k(const unsigned char* b, float* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i, b += 210, y += 256) {
    const float d = f16(b + 208);
    const unsigned char* ql = b;
    const unsigned char* qh = b + 128;
    const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
    float* out = y;
    for (int n = 0; n < 256; n += 128, out += 128, ql += 64, qh += 32, sc += 8) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = int((ql[l] & 15) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = int((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = int((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = int((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        out[l] = d * float(sc[is]) * float(q1);
        out[l + 32] = d * float(sc[is + 2]) * float(q2);
        out[l + 64] = d * float(sc[is + 4]) * float(q3);
        out[l + 96] = d * float(sc[is + 6]) * float(q4);
      }
    }
  }
}

}  // namespace

void dequantize(DType type, const void* src, float* dst, size_t nblocks) {
  if (nblocks == 0) return;
  const auto* b = static_cast<const unsigned char*>(src);
  switch (type) {
    case DType::Q8_0: q8_0(b, dst, nblocks); return;
    case DType::Q4_0: q4_0(b, dst, nblocks); return;
    case DType::Q4_1: q4_1(b, dst, nblocks); return;
    case DType::Q5_0: q5_0(b, dst, nblocks); return;
    case DType::Q5_1: q5_1(b, dst, nblocks); return;
    case DType::Q4_K: q4_k(b, dst, nblocks); return;
    case DType::Q5_K: q5_k(b, dst, nblocks); return;
    case DType::Q6_K: q6_k(b, dst, nblocks); return;
    default: to_f32(type, src, dst, nblocks); return;  // plain types: a block is one element
  }
}

}  // namespace mother::cpu
