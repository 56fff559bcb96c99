// Central moments (mean, m2, m3, m4) of a chunk, for kurtosis.
//
// Accuracy scheme (two levels): the chunk is cut into blocks of 4096 elements. Inside a block the
// SIMD body accumulates float64 power sums of d = x - shift (sum d, d^2, d^3, d^4); the shift is
// the mean of the chunk's first finite values for the first block and the running mean afterwards,
// so |mean(d)| is small against the spread and turning power sums into central moments cancels
// little. Blocks are then merged with the Chan / Pebay pairwise formulas, which are exact in exact
// arithmetic and stable in floating point, so chunks and threads also merge in any order.
// Policy: NaN and +-Inf are skipped and counted in `nonfinite`.
#include <cmath>
#include <limits>
#include "cpu/isa_impl.h"
#if MOTHER_X86
#include <immintrin.h>
#endif

namespace mother::cpu {

Moments merge(const Moments& a, const Moments& b) {
  if (a.n == 0) { Moments r = b; r.nonfinite += a.nonfinite; return r; }
  if (b.n == 0) { Moments r = a; r.nonfinite += b.nonfinite; return r; }
  Moments r;
  const double na = double(a.n), nb = double(b.n), n = na + nb;
  const double delta = b.mean - a.mean, dn = delta / n, dn2 = dn * dn;
  const double t = delta * dn * na * nb;  // delta^2 na nb / n
  r.n = a.n + b.n;
  r.nonfinite = a.nonfinite + b.nonfinite;
  r.mean = a.mean + dn * nb;
  r.m2 = a.m2 + b.m2 + t;
  r.m3 = a.m3 + b.m3 + t * dn * (na - nb) + 3.0 * dn * (na * b.m2 - nb * a.m2);
  r.m4 = a.m4 + b.m4 + t * dn2 * (na * na - na * nb + nb * nb) +
         6.0 * dn2 * (na * na * b.m2 + nb * nb * a.m2) + 4.0 * dn * (na * b.m3 - nb * a.m3);
  return r;
}

double excess_kurtosis(const Moments& m) {
  if (m.n < 2 || !(m.m2 > 0)) return std::numeric_limits<double>::quiet_NaN();
  const double n = double(m.n);
  return n * m.m4 / (m.m2 * m.m2) - 3.0;
}

namespace impl {

Moments moments_from_power_sums(uint64_t n, uint64_t nonfinite, double shift, double s1, double s2,
                                double s3, double s4) {
  Moments r;
  r.n = n;
  r.nonfinite = nonfinite;
  if (n == 0) return r;
  const double cnt = double(n), mu = s1 / cnt, mu2 = mu * mu;
  r.mean = shift + mu;
  r.m2 = s2 - s1 * mu;
  r.m3 = s3 - 3.0 * mu * s2 + 2.0 * cnt * mu2 * mu;
  r.m4 = s4 - 4.0 * mu * s3 + 6.0 * mu2 * s2 - 3.0 * cnt * mu2 * mu2;
  // Rounding can leave an even moment a hair below zero for constant data.
  if (r.m2 < 0) r.m2 = 0;
  if (r.m4 < 0) r.m4 = 0;
  return r;
}

}  // namespace impl

namespace {

constexpr size_t kBlock = 4096;

// One block's power sums: s[0..3] += sum d^1..d^4 over finite x, d = x - shift; *finite += count.
template <class T>
using BlockFn = void (*)(const T* x, size_t n, double shift, double* s, uint64_t* finite);

template <class T>
double first_values_mean(const T* x, size_t n) {
  double sum = 0;
  size_t k = 0;
  for (size_t i = 0; i < n && k < 32; ++i)
    if (std::isfinite(x[i])) { sum += double(x[i]); ++k; }
  return k ? sum / double(k) : 0.0;
}

template <class T>
Moments run_blocks(const T* x, size_t n, BlockFn<T> block) {
  Moments acc;
  double shift = first_values_mean(x, n < kBlock ? n : kBlock);
  for (size_t i = 0; i < n; i += kBlock) {
    const size_t m = n - i < kBlock ? n - i : kBlock;
    double s[4] = {0, 0, 0, 0};
    uint64_t finite = 0;
    block(x + i, m, shift, s, &finite);
    acc = merge(acc, impl::moments_from_power_sums(finite, m - finite, shift, s[0], s[1], s[2], s[3]));
    if (acc.n) shift = acc.mean;
  }
  return acc;
}

template <class T>
void block_scalar(const T* x, size_t n, double shift, double* s, uint64_t* finite) {
  double s1 = 0, s2 = 0, s3 = 0, s4 = 0;
  uint64_t f = 0;
  for (size_t i = 0; i < n; ++i) {
    const double v = double(x[i]);
    if (!std::isfinite(v)) continue;
    const double d = v - shift, d2 = d * d;
    s1 += d; s2 += d2; s3 += d2 * d; s4 += d2 * d2;
    ++f;
  }
  s[0] += s1; s[1] += s2; s[2] += s3; s[3] += s4;
  *finite += f;
}

#if MOTHER_X86
// ---- SSE2: 2 doubles per vector, two accumulator sets ----------------------------------------
struct Acc2 { __m128d s1, s2, s3, s4; };
static inline void acc_sse2(Acc2& a, __m128d d) {
  __m128d d2 = _mm_mul_pd(d, d);
  a.s1 = _mm_add_pd(a.s1, d);
  a.s2 = _mm_add_pd(a.s2, d2);
  a.s3 = _mm_add_pd(a.s3, _mm_mul_pd(d2, d));
  a.s4 = _mm_add_pd(a.s4, _mm_mul_pd(d2, d2));
}
static inline double hsum_sse2(__m128d v) { return _mm_cvtsd_f64(v) + _mm_cvtsd_f64(_mm_unpackhi_pd(v, v)); }
static void finish_sse2(const Acc2& a, const Acc2& b, double* s) {
  s[0] += hsum_sse2(_mm_add_pd(a.s1, b.s1));
  s[1] += hsum_sse2(_mm_add_pd(a.s2, b.s2));
  s[2] += hsum_sse2(_mm_add_pd(a.s3, b.s3));
  s[3] += hsum_sse2(_mm_add_pd(a.s4, b.s4));
}

void block_f32_sse2(const float* x, size_t n, double shift, double* s, uint64_t* finite) {
  const __m128 sign = _mm_set1_ps(-0.0f), inf = _mm_set1_ps(INFINITY);
  const __m128d sh = _mm_set1_pd(shift);
  Acc2 a{_mm_setzero_pd(), _mm_setzero_pd(), _mm_setzero_pd(), _mm_setzero_pd()}, b = a;
  uint64_t f = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    __m128 v = _mm_loadu_ps(x + i);
    __m128 ok = _mm_cmplt_ps(_mm_andnot_ps(sign, v), inf);  // false for NaN and Inf
    f += __builtin_popcount(_mm_movemask_ps(ok));
    __m128d oklo = _mm_castps_pd(_mm_unpacklo_ps(ok, ok)), okhi = _mm_castps_pd(_mm_unpackhi_ps(ok, ok));
    __m128d lo = _mm_sub_pd(_mm_cvtps_pd(v), sh), hi = _mm_sub_pd(_mm_cvtps_pd(_mm_movehl_ps(v, v)), sh);
    acc_sse2(a, _mm_and_pd(lo, oklo));
    acc_sse2(b, _mm_and_pd(hi, okhi));
  }
  finish_sse2(a, b, s);
  *finite += f;
  block_scalar(x + i, n - i, shift, s, finite);
}

void block_f64_sse2(const double* x, size_t n, double shift, double* s, uint64_t* finite) {
  const __m128d sign = _mm_set1_pd(-0.0), inf = _mm_set1_pd(INFINITY), sh = _mm_set1_pd(shift);
  Acc2 a{_mm_setzero_pd(), _mm_setzero_pd(), _mm_setzero_pd(), _mm_setzero_pd()}, b = a;
  uint64_t f = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    __m128d v0 = _mm_loadu_pd(x + i), v1 = _mm_loadu_pd(x + i + 2);
    __m128d ok0 = _mm_cmplt_pd(_mm_andnot_pd(sign, v0), inf), ok1 = _mm_cmplt_pd(_mm_andnot_pd(sign, v1), inf);
    f += __builtin_popcount(_mm_movemask_pd(ok0)) + __builtin_popcount(_mm_movemask_pd(ok1));
    acc_sse2(a, _mm_and_pd(_mm_sub_pd(v0, sh), ok0));
    acc_sse2(b, _mm_and_pd(_mm_sub_pd(v1, sh), ok1));
  }
  finish_sse2(a, b, s);
  *finite += f;
  block_scalar(x + i, n - i, shift, s, finite);
}

// ---- AVX2 + FMA: 4 doubles per vector ------------------------------------------------------------
struct Acc4 { __m256d s1, s2, s3, s4; };
// fma_s2: d^2 goes into s2 by FMA, not an add (balances the add and FMA pipes: see the AVX-512 body).
MOTHER_AVX2_INLINE void acc_avx2(Acc4& a, __m256d d, bool fma_s2 = false) {
  __m256d d2 = _mm256_mul_pd(d, d);
  a.s1 = _mm256_add_pd(a.s1, d);
  a.s2 = fma_s2 ? _mm256_fmadd_pd(d, d, a.s2) : _mm256_add_pd(a.s2, d2);
  a.s3 = _mm256_fmadd_pd(d2, d, a.s3);
  a.s4 = _mm256_fmadd_pd(d2, d2, a.s4);
}
MOTHER_AVX2_INLINE double hsum_avx2(__m256d v) {
  __m128d h = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(h) + _mm_cvtsd_f64(_mm_unpackhi_pd(h, h));
}
MOTHER_AVX2_INLINE void finish_avx2(const Acc4& a, const Acc4& b, double* s) {
  s[0] += hsum_avx2(_mm256_add_pd(a.s1, b.s1));
  s[1] += hsum_avx2(_mm256_add_pd(a.s2, b.s2));
  s[2] += hsum_avx2(_mm256_add_pd(a.s3, b.s3));
  s[3] += hsum_avx2(_mm256_add_pd(a.s4, b.s4));
}

MOTHER_AVX2 void block_f32_avx2(const float* x, size_t n, double shift, double* s, uint64_t* finite) {
  const __m256 sign = _mm256_set1_ps(-0.0f), inf = _mm256_set1_ps(INFINITY);
  const __m256d sh = _mm256_set1_pd(shift);
  Acc4 a{_mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd()}, b = a;
  uint64_t f = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    __m256 ok = _mm256_cmp_ps(_mm256_andnot_ps(sign, v), inf, _CMP_LT_OQ);
    f += __builtin_popcount(_mm256_movemask_ps(ok));
    __m256i oki = _mm256_castps_si256(ok);
    __m256d oklo = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(oki)));
    __m256d okhi = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(_mm256_extracti128_si256(oki, 1)));
    __m256d lo = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), sh);
    __m256d hi = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), sh);
    acc_avx2(a, _mm256_and_pd(lo, oklo));
    acc_avx2(b, _mm256_and_pd(hi, okhi));
  }
  finish_avx2(a, b, s);
  *finite += f;
  block_scalar(x + i, n - i, shift, s, finite);
}

MOTHER_AVX2 void block_f64_avx2(const double* x, size_t n, double shift, double* s, uint64_t* finite) {
  const __m256d sign = _mm256_set1_pd(-0.0), inf = _mm256_set1_pd(INFINITY), sh = _mm256_set1_pd(shift);
  Acc4 a{_mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd()}, b = a;
  uint64_t f = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256d v0 = _mm256_loadu_pd(x + i), v1 = _mm256_loadu_pd(x + i + 4);
    __m256d ok0 = _mm256_cmp_pd(_mm256_andnot_pd(sign, v0), inf, _CMP_LT_OQ);
    __m256d ok1 = _mm256_cmp_pd(_mm256_andnot_pd(sign, v1), inf, _CMP_LT_OQ);
    f += __builtin_popcount(_mm256_movemask_pd(ok0)) + __builtin_popcount(_mm256_movemask_pd(ok1));
    acc_avx2(a, _mm256_and_pd(_mm256_sub_pd(v0, sh), ok0));
    acc_avx2(b, _mm256_and_pd(_mm256_sub_pd(v1, sh), ok1));
  }
  finish_avx2(a, b, s);
  *finite += f;
  block_scalar(x + i, n - i, shift, s, finite);
}

// ---- AVX-512: 8 doubles per vector, masked subtraction zeroes the non-finite lanes ---------------
struct Acc8 { __m512d s1, s2, s3, s4; };
MOTHER_AVX512_INLINE void acc_avx512(Acc8& a, __m512d d) {
  __m512d d2 = _mm512_mul_pd(d, d);
  a.s1 = _mm512_add_pd(a.s1, d);
  a.s2 = _mm512_add_pd(a.s2, d2);
  a.s3 = _mm512_fmadd_pd(d2, d, a.s3);
  a.s4 = _mm512_fmadd_pd(d2, d2, a.s4);
}
MOTHER_AVX512_INLINE void acc_avx512_fma(Acc8& a, __m512d d) {
  __m512d d2 = _mm512_mul_pd(d, d);
  a.s1 = _mm512_add_pd(a.s1, d);
  a.s2 = _mm512_fmadd_pd(d, d, a.s2);
  a.s3 = _mm512_fmadd_pd(d2, d, a.s3);
  a.s4 = _mm512_fmadd_pd(d2, d2, a.s4);
}
MOTHER_AVX512_INLINE void finish_avx512(const Acc8& a, const Acc8& b, double* s) {
  s[0] += _mm512_reduce_add_pd(_mm512_add_pd(a.s1, b.s1));
  s[1] += _mm512_reduce_add_pd(_mm512_add_pd(a.s2, b.s2));
  s[2] += _mm512_reduce_add_pd(_mm512_add_pd(a.s3, b.s3));
  s[3] += _mm512_reduce_add_pd(_mm512_add_pd(a.s4, b.s4));
}

// A fast body's block sums t join s only when finite: a NaN or Inf in the block makes them not,
// and the block is then redone with the masked body (false).
static bool add_if_finite(const double* t, double* s) {
  if (!std::isfinite(t[0] + t[1] + t[2] + t[3])) return false;
  for (int k = 0; k < 4; ++k) s[k] += t[k];
  return true;
}

// Fast path: no per-element finiteness test. A NaN or Inf anywhere in the block makes the sums
// non-finite, and only then is the block redone with the masked body below (finite inputs can
// make the sums overflow only for |x - shift| > ~1e75, which the masked body handles the same).
MOTHER_AVX512 static bool block_f32_avx512_fast(const float* x, size_t n, double shift, double* s) {
  const __m512d sh = _mm512_set1_pd(shift);
  Acc8 a{_mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd()}, b = a, c = a, e = a;
  size_t i = 0;
  // 32 values per step in four accumulator sets; each 8 floats are loaded as a ymm and widened
  // (no cross-lane extract). Sets c and e take d^2 into s2 by FMA instead of an add: this moves
  // work from the add pipes (widen, subtract, sums) to the FMA pipes, which Zen 4 and Intel cores
  // have as separate ports.
  for (; i + 32 <= n; i += 32) {
    const __m512d d0 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + i)), sh);
    const __m512d d1 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + i + 8)), sh);
    const __m512d d2 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + i + 16)), sh);
    const __m512d d3 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + i + 24)), sh);
    acc_avx512(a, d0);
    acc_avx512(b, d1);
    acc_avx512_fma(c, d2);
    acc_avx512_fma(e, d3);
  }
  for (; i + 8 <= n; i += 8) acc_avx512(a, _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + i)), sh));
  if (i < n) {  // tail: masked-off lanes contribute exact zeros
    const __mmask8 live = __mmask8((1u << (n - i)) - 1);
    const __m256 v = _mm256_maskz_loadu_ps(live, x + i);
    acc_avx512(b, _mm512_maskz_sub_pd(live, _mm512_cvtps_pd(v), sh));
  }
  double t[4] = {0, 0, 0, 0};
  finish_avx512(a, b, t);
  finish_avx512(c, e, t);
  return add_if_finite(t, s);
}

// The same fast path on 256-bit registers (AVX-512VL for the masked tail): 32 values per step in
// eight accumulator sets, half of them taking d^2 into s2 by FMA as above. Faster on cores that
// run 512-bit operations as two 256-bit halves (AMD Zen 4: ~10% in cache and from memory; there
// the 512-bit float->double conversion costs more than two 256-bit ones); see moments_width().
MOTHER_AVX512 static bool block_f32_avx512_fast256(const float* x, size_t n, double shift, double* s) {
  const __m256d sh = _mm256_set1_pd(shift), z = _mm256_setzero_pd();
  Acc4 a[8];
  for (Acc4& q : a) q = Acc4{z, z, z, z};
  size_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int k = 0; k < 8; k += 2) {
      acc_avx2(a[k], _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + i + 4 * k)), sh));
      acc_avx2(a[k + 1], _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + i + 4 * k + 4)), sh), true);
    }
  for (; i + 4 <= n; i += 4) acc_avx2(a[0], _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + i)), sh));
  if (i < n) {  // tail: masked-off lanes contribute exact zeros
    const __mmask8 live = __mmask8((1u << (n - i)) - 1);
    acc_avx2(a[1], _mm256_maskz_sub_pd(live, _mm256_cvtps_pd(_mm_maskz_loadu_ps(live, x + i)), sh));
  }
  double t[4] = {0, 0, 0, 0};
  for (int k = 0; k < 8; k += 2) finish_avx2(a[k], a[k + 1], t);
  return add_if_finite(t, s);
}

MOTHER_AVX512 void block_f32_avx512(const float* x, size_t n, double shift, double* s, uint64_t* finite) {
  const bool fast = moments_width() == 256 ? block_f32_avx512_fast256(x, n, shift, s) : block_f32_avx512_fast(x, n, shift, s);
  if (fast) { *finite += n; return; }
  const __m512 inf = _mm512_set1_ps(INFINITY);
  const __m512d sh = _mm512_set1_pd(shift);
  Acc8 a{_mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd()}, b = a;
  uint64_t f = 0;
  for (size_t i = 0; i < n; i += 16) {
    // The tail is a masked load: lanes past n read as +Inf and so are skipped like non-finite ones.
    const __mmask16 live = n - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - i)) - 1);
    __m512 v = _mm512_mask_loadu_ps(inf, live, x + i);
    __mmask16 ok = _mm512_cmp_ps_mask(_mm512_abs_ps(v), inf, _CMP_LT_OQ);
    f += __builtin_popcount(ok);
    __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    __m512d hi = _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1));
    acc_avx512(a, _mm512_maskz_sub_pd(__mmask8(ok), lo, sh));
    acc_avx512(b, _mm512_maskz_sub_pd(__mmask8(ok >> 8), hi, sh));
  }
  finish_avx512(a, b, s);
  *finite += f;
}

MOTHER_AVX512 void block_f64_avx512(const double* x, size_t n, double shift, double* s, uint64_t* finite) {
  const __m512d inf = _mm512_set1_pd(INFINITY), sh = _mm512_set1_pd(shift);
  Acc8 a{_mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd()}, b = a;
  uint64_t f = 0;
  for (size_t i = 0; i < n; i += 16) {
    const size_t left = n - i;
    const __mmask8 l0 = left >= 8 ? __mmask8(0xff) : __mmask8((1u << left) - 1);
    const __mmask8 l1 = left >= 16 ? __mmask8(0xff) : left <= 8 ? __mmask8(0) : __mmask8((1u << (left - 8)) - 1);
    __m512d v0 = _mm512_mask_loadu_pd(inf, l0, x + i), v1 = _mm512_mask_loadu_pd(inf, l1, x + i + 8);
    __mmask8 ok0 = _mm512_cmp_pd_mask(_mm512_abs_pd(v0), inf, _CMP_LT_OQ);
    __mmask8 ok1 = _mm512_cmp_pd_mask(_mm512_abs_pd(v1), inf, _CMP_LT_OQ);
    f += __builtin_popcount(ok0) + __builtin_popcount(ok1);
    acc_avx512(a, _mm512_maskz_sub_pd(ok0, v0, sh));
    acc_avx512(b, _mm512_maskz_sub_pd(ok1, v1, sh));
  }
  finish_avx512(a, b, s);
  *finite += f;
}
#endif  // MOTHER_X86

}  // namespace

namespace impl {
Moments moments_f32_scalar(const float* x, size_t n) { return run_blocks<float>(x, n, block_scalar<float>); }
Moments moments_f64_scalar(const double* x, size_t n) { return run_blocks<double>(x, n, block_scalar<double>); }
#if MOTHER_X86
Moments moments_f32_sse2(const float* x, size_t n) { return run_blocks<float>(x, n, block_f32_sse2); }
Moments moments_f64_sse2(const double* x, size_t n) { return run_blocks<double>(x, n, block_f64_sse2); }
Moments moments_f32_avx2(const float* x, size_t n) { return run_blocks<float>(x, n, block_f32_avx2); }
Moments moments_f64_avx2(const double* x, size_t n) { return run_blocks<double>(x, n, block_f64_avx2); }
Moments moments_f32_avx512(const float* x, size_t n) { return run_blocks<float>(x, n, block_f32_avx512); }
Moments moments_f64_avx512(const double* x, size_t n) { return run_blocks<double>(x, n, block_f64_avx512); }
#endif
}  // namespace impl

Moments moments_f32(const float* x, size_t n) { return kernel_table().moments_f32(x, n); }
Moments moments_f64(const double* x, size_t n) { return kernel_table().moments_f64(x, n); }

}  // namespace mother::cpu
