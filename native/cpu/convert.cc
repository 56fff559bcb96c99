// Widening of stored elements (F16, BF16, F32, F64) to float32 / float64. Sources may have any
// alignment (safetensors data offsets are arbitrary), so every load is unaligned. All conversions
// are exact except F64 -> f32, which rounds to nearest-even like a C cast.
#include <cstring>
#include "cpu/isa_impl.h"
#if MOTHER_X86
#include <immintrin.h>
#endif

namespace mother::cpu {
namespace {

inline float bits_f32(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

// IEEE binary16 -> binary32, exact for every input (subnormals, +-0, +-Inf, NaN payloads kept).
inline float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (mant << 13));
  if (exp != 0) return bits_f32(sign | ((exp + 112u) << 23) | (mant << 13));
  // Subnormal or zero: mant * 2^-24 is exact in float32.
  float v = float(mant) * 0x1p-24f;
  return sign ? -v : v;
}

// BF16 is the top half of a float32.
inline float bf16_to_float(uint16_t h) { return bits_f32(uint32_t(h) << 16); }

// Unaligned-safe scalar load (F32 sources need not be 4-byte aligned).
inline float load_f32(const float* p) { float v; std::memcpy(&v, p, 4); return v; }

inline uint16_t load_u16(const unsigned char* p) { uint16_t v; std::memcpy(&v, p, 2); return v; }

void tail_f32(DType type, const unsigned char* s, float* dst, size_t i, size_t n) {
  for (; i < n; ++i) {
    switch (type) {
      case DType::F16: dst[i] = half_to_float(load_u16(s + 2 * i)); break;
      case DType::BF16: dst[i] = bf16_to_float(load_u16(s + 2 * i)); break;
      case DType::F32: std::memcpy(dst + i, s + 4 * i, 4); break;
      case DType::F64: { double d; std::memcpy(&d, s + 8 * i, 8); dst[i] = float(d); break; }
      default: dst[i] = 0; break;  // quantized types go through cpu::dequantize, never here
    }
  }
}

void tail_f64(DType type, const unsigned char* s, double* dst, size_t i, size_t n) {
  for (; i < n; ++i) {
    switch (type) {
      case DType::F16: dst[i] = half_to_float(load_u16(s + 2 * i)); break;
      case DType::BF16: dst[i] = bf16_to_float(load_u16(s + 2 * i)); break;
      case DType::F32: { float f; std::memcpy(&f, s + 4 * i, 4); dst[i] = f; break; }
      case DType::F64: std::memcpy(dst + i, s + 8 * i, 8); break;
      default: dst[i] = 0; break;  // quantized types go through cpu::dequantize, never here
    }
  }
}

// Half types -> f64 go through a small float buffer with the ISA's own f32 conversion.
template <class ToF32, class Widen>
void halves_to_f64(DType type, const unsigned char* s, double* dst, size_t n, ToF32 to32, Widen widen) {
  float buf[512];
  for (size_t i = 0; i < n; i += 512) {
    size_t m = n - i < 512 ? n - i : 512;
    to32(type, s + 2 * i, buf, m);
    widen(buf, dst + i, m);
  }
}

}  // namespace

namespace impl {

void to_f32_scalar(DType type, const void* src, float* dst, size_t n) {
  tail_f32(type, static_cast<const unsigned char*>(src), dst, 0, n);
}
void to_f64_scalar(DType type, const void* src, double* dst, size_t n) {
  tail_f64(type, static_cast<const unsigned char*>(src), dst, 0, n);
}

#if MOTHER_X86
// ---- SSE2: BF16 by integer unpacking; F16 has no SSE2 instruction, so it stays scalar. ----------
void to_f32_sse2(DType type, const void* src, float* dst, size_t n) {
  auto s = static_cast<const unsigned char*>(src);
  size_t i = 0;
  if (type == DType::BF16) {
    const __m128i zero = _mm_setzero_si128();
    for (; i + 8 <= n; i += 8) {
      __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 2 * i));
      _mm_storeu_ps(dst + i, _mm_castsi128_ps(_mm_unpacklo_epi16(zero, h)));
      _mm_storeu_ps(dst + i + 4, _mm_castsi128_ps(_mm_unpackhi_epi16(zero, h)));
    }
  } else if (type == DType::F64) {
    for (; i + 4 <= n; i += 4) {
      __m128 lo = _mm_cvtpd_ps(_mm_loadu_pd(reinterpret_cast<const double*>(s + 8 * i)));
      __m128 hi = _mm_cvtpd_ps(_mm_loadu_pd(reinterpret_cast<const double*>(s + 8 * i + 16)));
      _mm_storeu_ps(dst + i, _mm_movelh_ps(lo, hi));
    }
  } else if (type == DType::F32) {
    std::memcpy(dst, s, 4 * n);
    return;
  }
  tail_f32(type, s, dst, i, n);
}

static void widen_sse2(const float* f, double* d, size_t n) {
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    __m128 v = _mm_loadu_ps(f + i);
    _mm_storeu_pd(d + i, _mm_cvtps_pd(v));
    _mm_storeu_pd(d + i + 2, _mm_cvtps_pd(_mm_movehl_ps(v, v)));
  }
  for (; i < n; ++i) d[i] = load_f32(f + i);
}

void to_f64_sse2(DType type, const void* src, double* dst, size_t n) {
  auto s = static_cast<const unsigned char*>(src);
  if (type == DType::F64) { std::memcpy(dst, s, 8 * n); return; }
  if (type == DType::F32) { widen_sse2(reinterpret_cast<const float*>(s), dst, n); return; }
  halves_to_f64(type, s, dst, n, to_f32_sse2, widen_sse2);
}

// ---- AVX2 + F16C --------------------------------------------------------------------------------
MOTHER_AVX2 void to_f32_avx2(DType type, const void* src, float* dst, size_t n) {
  auto s = static_cast<const unsigned char*>(src);
  size_t i = 0;
  if (type == DType::F16) {
    for (; i + 8 <= n; i += 8)
      _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 2 * i))));
  } else if (type == DType::BF16) {
    for (; i + 8 <= n; i += 8) {
      __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 2 * i)));
      _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
    }
  } else if (type == DType::F64) {
    for (; i + 4 <= n; i += 4)
      _mm_storeu_ps(dst + i, _mm256_cvtpd_ps(_mm256_loadu_pd(reinterpret_cast<const double*>(s + 8 * i))));
  } else {
    std::memcpy(dst, s, 4 * n);
    return;
  }
  tail_f32(type, s, dst, i, n);
}

MOTHER_AVX2 static void widen_avx2(const float* f, double* d, size_t n) {
  size_t i = 0;
  for (; i + 4 <= n; i += 4) _mm256_storeu_pd(d + i, _mm256_cvtps_pd(_mm_loadu_ps(f + i)));
  for (; i < n; ++i) d[i] = load_f32(f + i);
}

MOTHER_AVX2 void to_f64_avx2(DType type, const void* src, double* dst, size_t n) {
  auto s = static_cast<const unsigned char*>(src);
  if (type == DType::F64) { std::memcpy(dst, s, 8 * n); return; }
  if (type == DType::F32) { widen_avx2(reinterpret_cast<const float*>(s), dst, n); return; }
  halves_to_f64(type, s, dst, n, to_f32_avx2, widen_avx2);
}

// ---- AVX-512 ------------------------------------------------------------------------------------
MOTHER_AVX512 void to_f32_avx512(DType type, const void* src, float* dst, size_t n) {
  auto s = static_cast<const unsigned char*>(src);
  size_t i = 0;
  if (type == DType::F16) {
    for (; i + 16 <= n; i += 16)
      _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + 2 * i))));
  } else if (type == DType::BF16) {
    for (; i + 16 <= n; i += 16) {
      __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + 2 * i)));
      _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(w, 16)));
    }
  } else if (type == DType::F64) {
    for (; i + 8 <= n; i += 8)
      _mm256_storeu_ps(dst + i, _mm512_cvtpd_ps(_mm512_loadu_pd(reinterpret_cast<const double*>(s + 8 * i))));
  } else {
    std::memcpy(dst, s, 4 * n);
    return;
  }
  tail_f32(type, s, dst, i, n);
}

MOTHER_AVX512 static void widen_avx512(const float* f, double* d, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm512_storeu_pd(d + i, _mm512_cvtps_pd(_mm256_loadu_ps(f + i)));
  for (; i < n; ++i) d[i] = load_f32(f + i);
}

MOTHER_AVX512 void to_f64_avx512(DType type, const void* src, double* dst, size_t n) {
  auto s = static_cast<const unsigned char*>(src);
  if (type == DType::F64) { std::memcpy(dst, s, 8 * n); return; }
  if (type == DType::F32) { widen_avx512(reinterpret_cast<const float*>(s), dst, n); return; }
  halves_to_f64(type, s, dst, n, to_f32_avx512, widen_avx512);
}
#endif  // MOTHER_X86

}  // namespace impl

// n == 0 returns at once: empty buffers may come with null pointers, and memcpy(null, null, 0)
// is undefined behaviour (flagged by the sanitizer build).
void to_f32(DType type, const void* src, float* dst, size_t n) {
  if (n) kernel_table().to_f32(type, src, dst, n);
}
void to_f64(DType type, const void* src, double* dst, size_t n) {
  if (n) kernel_table().to_f64(type, src, dst, n);
}

}  // namespace mother::cpu
