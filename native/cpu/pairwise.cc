// Pairwise sums between N models' chunks (squared L2, L1, L-inf, dot), for the distance matrix.
//
// Shape of the work: for each block of PW_BLOCK elements, row models i (two at a time where the
// registers allow) are compared with the columns j > i four at a time, accumulating in float32 lanes
// that are flushed to the float64 outputs at the end of the block. Only the requested metrics are
// computed: each of the 16 metric sets is its own template instance, so sumsq alone is fastest.
// Known limit: float32 lanes overflow for |x_i - x_j| > ~1.8e19 (sumsq) -- never seen in weights.
#include <cmath>
#include <cstring>
#include <limits>
#include "cpu/isa_impl.h"
#if MOTHER_X86
#include <immintrin.h>
#endif

namespace mother::cpu {
namespace {

inline double max_nan(double a, double b) {
  if (a != a || b != b) return std::numeric_limits<double>::quiet_NaN();
  return a > b ? a : b;
}

// Elements [e0, e1) of every pair, in plain float64: the SIMD tails and the scalar variant.
template <bool SQ, bool AB, bool MX, bool DT>
void tail(const float* const* x, size_t N, size_t e0, size_t e1, size_t rb, size_t re,
          const PairOutputs& out) {
  for (size_t i = rb; i < re; ++i) {
    const float* xi = x[i];
    for (size_t j = DT ? i : i + 1; j < N; ++j) {
      const float* xj = x[j];
      double sq = 0, ab = 0, mx = 0, dt = 0;
      bool nan = false;
      for (size_t k = e0; k < e1; ++k) {
        const double a = xi[k], b = xj[k], d = a - b, ad = std::fabs(d);
        sq += d * d;
        ab += ad;
        if (ad > mx) mx = ad;
        nan |= ad != ad;
        dt += a * b;
      }
      const size_t idx = i * N + j;
      if (DT) out.dot[idx] += dt;
      if (j == i) continue;
      if (SQ) out.sumsq[idx] += sq;
      if (AB) out.sumabs[idx] += ab;
      if (MX) out.maxabs[idx] = max_nan(out.maxabs[idx], nan ? std::numeric_limits<double>::quiet_NaN() : mx);
    }
  }
}

template <bool SQ, bool AB, bool MX, bool DT>
void run_scalar(const float* const* x, size_t N, size_t n, size_t rb, size_t re, const PairOutputs& out) {
  tail<SQ, AB, MX, DT>(x, N, 0, n, rb, re, out);
}

#if MOTHER_X86
// ---- SSE2 ----------------------------------------------------------------------------------------
static inline double hsum_sse2(__m128 v) {
  __m128d s = _mm_add_pd(_mm_cvtps_pd(v), _mm_cvtps_pd(_mm_movehl_ps(v, v)));
  return _mm_cvtsd_f64(s) + _mm_cvtsd_f64(_mm_unpackhi_pd(s, s));
}
static inline float hmax_sse2(__m128 v) {
  v = _mm_max_ps(v, _mm_movehl_ps(v, v));
  v = _mm_max_ps(v, _mm_shuffle_ps(v, v, 1));
  return _mm_cvtss_f32(v);
}
#define PW_NS sse2
#define PW_TARGET
#define PW_VEC __m128
#define PW_LANES 4
#define PW_BLOCK 256
#define PW_ZERO() _mm_setzero_ps()
#define PW_LOAD(p) _mm_loadu_ps(p)
#define PW_SUB _mm_sub_ps
#define PW_ADD _mm_add_ps
#define PW_ABS(v) _mm_andnot_ps(_mm_set1_ps(-0.0f), v)
#define PW_MAX(ad, acc) _mm_max_ps(ad, acc)
#define PW_FMA(a, b, c) _mm_add_ps(_mm_mul_ps(a, b), c)
#define PW_HSUM hsum_sse2
#define PW_HMAX hmax_sse2
#define PW_STICKY_MAX 0
#define PW_TWO_ROW_ACCS 1
#include "cpu/pairwise_body.inc"
#undef PW_NS
#undef PW_TARGET
#undef PW_VEC
#undef PW_LANES
#undef PW_BLOCK
#undef PW_ZERO
#undef PW_LOAD
#undef PW_SUB
#undef PW_ADD
#undef PW_ABS
#undef PW_MAX
#undef PW_FMA
#undef PW_HSUM
#undef PW_HMAX
#undef PW_STICKY_MAX
#undef PW_TWO_ROW_ACCS

// ---- AVX2 + FMA ----------------------------------------------------------------------------------
MOTHER_AVX2_INLINE double hsum_avx2(__m256 v) {
  __m256d s = _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
  __m128d h = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
  return _mm_cvtsd_f64(h) + _mm_cvtsd_f64(_mm_unpackhi_pd(h, h));
}
// max of |d| lanes kept as integer bit patterns (see PW_STICKY_MAX): an integer max, read back as
// a float (NaN stays NaN).
MOTHER_AVX2_INLINE __m256 imax_avx2(__m256 a, __m256 b) {
  return _mm256_castsi256_ps(_mm256_max_epi32(_mm256_castps_si256(a), _mm256_castps_si256(b)));
}
MOTHER_AVX2_INLINE float hmax_avx2(__m256 v) {
  __m128i m = _mm_max_epi32(_mm256_castsi256_si128(_mm256_castps_si256(v)), _mm256_extracti128_si256(_mm256_castps_si256(v), 1));
  m = _mm_max_epi32(m, _mm_shuffle_epi32(m, 0x4e));
  m = _mm_max_epi32(m, _mm_shuffle_epi32(m, 0xb1));
  return _mm_cvtss_f32(_mm_castsi128_ps(m));
}
#define PW_NS avx2
#define PW_TARGET MOTHER_AVX2
#define PW_VEC __m256
#define PW_LANES 8
#define PW_BLOCK 512
#define PW_ZERO() _mm256_setzero_ps()
#define PW_LOAD(p) _mm256_loadu_ps(p)
#define PW_SUB _mm256_sub_ps
#define PW_ADD _mm256_add_ps
#define PW_ABS(v) _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v)
#define PW_MAX(ad, acc) imax_avx2(ad, acc)
#define PW_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define PW_HSUM hsum_avx2
#define PW_HMAX hmax_avx2
#define PW_STICKY_MAX 1
#define PW_TWO_ROW_ACCS 1
#include "cpu/pairwise_body.inc"
#undef PW_NS
#undef PW_TARGET
#undef PW_VEC
#undef PW_LANES
#undef PW_BLOCK
#undef PW_ZERO
#undef PW_LOAD
#undef PW_SUB
#undef PW_ADD
#undef PW_ABS
#undef PW_MAX
#undef PW_FMA
#undef PW_HSUM
#undef PW_HMAX
#undef PW_STICKY_MAX
#undef PW_TWO_ROW_ACCS

// ---- AVX-512 -------------------------------------------------------------------------------------
MOTHER_AVX512_INLINE double hsum_avx512(__m512 v) {
  __m512d s = _mm512_add_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(v)), _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)));
  return _mm512_reduce_add_pd(s);
}
MOTHER_AVX512_INLINE float hmax_avx512(__m512 v) {
  const int m = _mm512_reduce_max_epi32(_mm512_castps_si512(v));
  float f;
  std::memcpy(&f, &m, 4);
  return f;
}
#define PW_NS avx512
#define PW_TARGET MOTHER_AVX512
#define PW_VEC __m512
#define PW_LANES 16
#define PW_BLOCK 1024
#define PW_ZERO() _mm512_setzero_ps()
#define PW_LOAD(p) _mm512_loadu_ps(p)
#define PW_SUB _mm512_sub_ps
#define PW_ADD _mm512_add_ps
#define PW_ABS(v) _mm512_abs_ps(v)
#define PW_MAX(ad, acc) _mm512_castsi512_ps(_mm512_max_epi32(_mm512_castps_si512(ad), _mm512_castps_si512(acc)))
#define PW_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define PW_HSUM hsum_avx512
#define PW_HMAX hmax_avx512
#define PW_STICKY_MAX 1
#define PW_TWO_ROW_ACCS 2
#include "cpu/pairwise_body.inc"
#undef PW_NS
#undef PW_TARGET
#undef PW_VEC
#undef PW_LANES
#undef PW_BLOCK
#undef PW_ZERO
#undef PW_LOAD
#undef PW_SUB
#undef PW_ADD
#undef PW_ABS
#undef PW_MAX
#undef PW_FMA
#undef PW_HSUM
#undef PW_HMAX
#undef PW_STICKY_MAX
#undef PW_TWO_ROW_ACCS
#endif  // MOTHER_X86

// One entry per metric set: bit 0 sumsq, 1 sumabs, 2 maxabs, 3 dot.
#define PW_SETS(f)                                                                                   \
  {f<0, 0, 0, 0>, f<1, 0, 0, 0>, f<0, 1, 0, 0>, f<1, 1, 0, 0>, f<0, 0, 1, 0>, f<1, 0, 1, 0>,           \
   f<0, 1, 1, 0>, f<1, 1, 1, 0>, f<0, 0, 0, 1>, f<1, 0, 0, 1>, f<0, 1, 0, 1>, f<1, 1, 0, 1>,           \
   f<0, 0, 1, 1>, f<1, 0, 1, 1>, f<0, 1, 1, 1>, f<1, 1, 1, 1>}

inline unsigned metric_set(const PairOutputs& o) {
  return (o.sumsq ? 1u : 0u) | (o.sumabs ? 2u : 0u) | (o.maxabs ? 4u : 0u) | (o.dot ? 8u : 0u);
}

template <size_t K>
void call(const PairwiseFn (&fns)[K], const float* const* x, size_t N, size_t n, size_t rb, size_t re,
          const PairOutputs& out) {
  if (re > N) re = N;
  if (rb >= re) return;
  const unsigned set = metric_set(out);
  if (set) fns[set](x, N, n, rb, re, out);
}

}  // namespace

namespace impl {
void pairwise_f32_scalar(const float* const* x, size_t N, size_t n, size_t rb, size_t re, const PairOutputs& out) {
  static const PairwiseFn fns[16] = PW_SETS(run_scalar);
  call(fns, x, N, n, rb, re, out);
}
#if MOTHER_X86
void pairwise_f32_sse2(const float* const* x, size_t N, size_t n, size_t rb, size_t re, const PairOutputs& out) {
  static const PairwiseFn fns[16] = PW_SETS(sse2::run);
  call(fns, x, N, n, rb, re, out);
}
void pairwise_f32_avx2(const float* const* x, size_t N, size_t n, size_t rb, size_t re, const PairOutputs& out) {
  static const PairwiseFn fns[16] = PW_SETS(avx2::run);
  call(fns, x, N, n, rb, re, out);
}
void pairwise_f32_avx512(const float* const* x, size_t N, size_t n, size_t rb, size_t re, const PairOutputs& out) {
  static const PairwiseFn fns[16] = PW_SETS(avx512::run);
  call(fns, x, N, n, rb, re, out);
}
#endif
}  // namespace impl

void pairwise_f32(const float* const* x, size_t N, size_t n, size_t row_begin, size_t row_end,
                  const PairOutputs& out) {
  kernel_table().pairwise_f32(x, N, n, row_begin, row_end, out);
}

}  // namespace mother::cpu
