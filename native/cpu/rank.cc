// Numerical rank of A - B (the LoRA distance), in float64.
//
// Exact path (min(rows, cols) <= exact_limit): Householder QR with column pivoting of the tall
// orientation of D = A - B, stopped as soon as two certificates prove the count (qrcp_rank below:
// a LoRA-style rank-r difference costs ~r QR steps plus one Gram/Cholesky test of what is left).
// When they cannot (a singular value within the rounding bound of tol, or noise = 0), the
// reference answers: Householder QR down to a k x k triangle, then one-sided Jacobi (Hestenes) on
// its columns, singular values = final column norms (Jacobi on D itself, not eigenvalues of
// D^T D, keeps all ~16 digits).
// Randomized path: Gaussian sketches of 32, 64, ... columns (fixed-seed PRNG, at most
// max_rank + 10), 2 power iterations re-orthonormalised by two-pass Gram-Schmidt, products by the
// blocked kernels of rank_body.inc, then the exact count of the small projection Q^T D.
// Singular values above the tolerance of kernels.h are counted.
#include <algorithm>
#include <cmath>
#include <vector>
#include "cpu/isa_impl.h"
#if MOTHER_X86
#include <immintrin.h>
#endif

namespace mother::cpu {

// ---- inner loops, one variant per ISA (axpy and rot are plain loops the compiler vectorises) ----
namespace impl {
void axpy_scalar(double a, const double* x, double* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] += a * x[i];
}
double dot_scalar(const double* x, const double* y, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += x[i] * y[i];
  return s;
}
void rot_scalar(double* x, double* y, size_t n, double c, double s) {
  for (size_t i = 0; i < n; ++i) {
    const double a = x[i], b = y[i];
    x[i] = c * a - s * b;
    y[i] = s * a + c * b;
  }
}
#if MOTHER_X86
void axpy_sse2(double a, const double* x, double* y, size_t n) { axpy_scalar(a, x, y, n); }
void rot_sse2(double* x, double* y, size_t n, double c, double s) { rot_scalar(x, y, n, c, s); }
double dot_sse2(const double* x, const double* y, size_t n) {
  __m128d s0 = _mm_setzero_pd(), s1 = _mm_setzero_pd();
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 = _mm_add_pd(s0, _mm_mul_pd(_mm_loadu_pd(x + i), _mm_loadu_pd(y + i)));
    s1 = _mm_add_pd(s1, _mm_mul_pd(_mm_loadu_pd(x + i + 2), _mm_loadu_pd(y + i + 2)));
  }
  s0 = _mm_add_pd(s0, s1);
  double s = _mm_cvtsd_f64(s0) + _mm_cvtsd_f64(_mm_unpackhi_pd(s0, s0));
  for (; i < n; ++i) s += x[i] * y[i];
  return s;
}

MOTHER_AVX2 void axpy_avx2(double a, const double* x, double* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] += a * x[i];
}
MOTHER_AVX2 void rot_avx2(double* x, double* y, size_t n, double c, double s) {
  for (size_t i = 0; i < n; ++i) {
    const double a = x[i], b = y[i];
    x[i] = c * a - s * b;
    y[i] = s * a + c * b;
  }
}
MOTHER_AVX2 double dot_avx2(const double* x, const double* y, size_t n) {
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    s0 = _mm256_fmadd_pd(_mm256_loadu_pd(x + i), _mm256_loadu_pd(y + i), s0);
    s1 = _mm256_fmadd_pd(_mm256_loadu_pd(x + i + 4), _mm256_loadu_pd(y + i + 4), s1);
  }
  s0 = _mm256_add_pd(s0, s1);
  __m128d h = _mm_add_pd(_mm256_castpd256_pd128(s0), _mm256_extractf128_pd(s0, 1));
  double s = _mm_cvtsd_f64(h) + _mm_cvtsd_f64(_mm_unpackhi_pd(h, h));
  for (; i < n; ++i) s += x[i] * y[i];
  return s;
}

MOTHER_AVX512 void axpy_avx512(double a, const double* x, double* y, size_t n) {
  const __m512d va = _mm512_set1_pd(a);
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm512_storeu_pd(y + i, _mm512_fmadd_pd(va, _mm512_loadu_pd(x + i), _mm512_loadu_pd(y + i)));
  if (i < n) {
    const __mmask8 m = __mmask8((1u << (n - i)) - 1);
    _mm512_mask_storeu_pd(y + i, m, _mm512_fmadd_pd(va, _mm512_maskz_loadu_pd(m, x + i), _mm512_maskz_loadu_pd(m, y + i)));
  }
}
MOTHER_AVX512 void rot_avx512(double* x, double* y, size_t n, double c, double s) {
  for (size_t i = 0; i < n; ++i) {
    const double a = x[i], b = y[i];
    x[i] = c * a - s * b;
    y[i] = s * a + c * b;
  }
}
MOTHER_AVX512 double dot_avx512(const double* x, const double* y, size_t n) {
  __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm512_fmadd_pd(_mm512_loadu_pd(x + i), _mm512_loadu_pd(y + i), s0);
    s1 = _mm512_fmadd_pd(_mm512_loadu_pd(x + i + 8), _mm512_loadu_pd(y + i + 8), s1);
  }
  for (; i < n; i += 8) {
    const __mmask8 m = n - i >= 8 ? __mmask8(0xff) : __mmask8((1u << (n - i)) - 1);
    s0 = _mm512_fmadd_pd(_mm512_maskz_loadu_pd(m, x + i), _mm512_maskz_loadu_pd(m, y + i), s0);
  }
  return _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
}
#endif
}  // namespace impl

// ---- products and reflectors for the fast paths (rank_body.inc, one instance per ISA) ----------
namespace rk {
#define RK_NS scalar
#define RK_TARGET
#define RK_VEC double
#define RK_W 1
#define RK_NV 4
#define RK_ZERO() 0.0
#define RK_LOAD(p) (*(p))
#define RK_STORE(p, v) (*(p) = (v))
#define RK_SET1(x) (x)
#define RK_FMA(a, b, c) ((a) * (b) + (c))
#define RK_ADD(a, b) ((a) + (b))
#define RK_HSUM(v) (v)
#include "cpu/rank_body.inc"
#undef RK_NS
#undef RK_TARGET
#undef RK_VEC
#undef RK_W
#undef RK_NV
#undef RK_ZERO
#undef RK_LOAD
#undef RK_STORE
#undef RK_SET1
#undef RK_FMA
#undef RK_ADD
#undef RK_HSUM
#if MOTHER_X86
MOTHER_AVX2_INLINE double hsum256(__m256d v) {
  __m128d h = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(h) + _mm_cvtsd_f64(_mm_unpackhi_pd(h, h));
}
#define RK_NS avx2
#define RK_TARGET MOTHER_AVX2
#define RK_VEC __m256d
#define RK_W 4
#define RK_NV 3  // 4 x 3 accumulators + 3 B vectors + 1 broadcast of 16 ymm registers
#define RK_ZERO() _mm256_setzero_pd()
#define RK_LOAD(p) _mm256_loadu_pd(p)
#define RK_STORE(p, v) _mm256_storeu_pd(p, v)
#define RK_SET1(x) _mm256_set1_pd(x)
#define RK_FMA(a, b, c) _mm256_fmadd_pd(a, b, c)
#define RK_ADD(a, b) _mm256_add_pd(a, b)
#define RK_HSUM(v) hsum256(v)
#include "cpu/rank_body.inc"
#undef RK_NS
#undef RK_TARGET
#undef RK_VEC
#undef RK_W
#undef RK_NV
#undef RK_ZERO
#undef RK_LOAD
#undef RK_STORE
#undef RK_SET1
#undef RK_FMA
#undef RK_ADD
#undef RK_HSUM
#define RK_NS avx512
#define RK_TARGET MOTHER_AVX512
#define RK_VEC __m512d
#define RK_W 8
#define RK_NV 4  // 16 accumulators of 32 zmm registers
#define RK_ZERO() _mm512_setzero_pd()
#define RK_LOAD(p) _mm512_loadu_pd(p)
#define RK_STORE(p, v) _mm512_storeu_pd(p, v)
#define RK_SET1(x) _mm512_set1_pd(x)
#define RK_FMA(a, b, c) _mm512_fmadd_pd(a, b, c)
#define RK_ADD(a, b) _mm512_add_pd(a, b)
#define RK_HSUM(v) _mm512_reduce_add_pd(v)
#include "cpu/rank_body.inc"
#undef RK_NS
#undef RK_TARGET
#undef RK_VEC
#undef RK_W
#undef RK_NV
#undef RK_ZERO
#undef RK_LOAD
#undef RK_STORE
#undef RK_SET1
#undef RK_FMA
#undef RK_ADD
#undef RK_HSUM
#endif

// SSE2 uses the scalar instance (two-lane vectors gain little over scalar FMA-less code).
const Ops& ops_for(Isa isa) {
  static const Ops kScalar{scalar::gemm_nn, scalar::gemm_tn, scalar::house};
#if MOTHER_X86
  static const Ops kAvx2{avx2::gemm_nn, avx2::gemm_tn, avx2::house};
  static const Ops kAvx512{avx512::gemm_nn, avx512::gemm_tn, avx512::house};
  if (isa == Isa::AVX512) return kAvx512;
  if (isa == Isa::AVX2) return kAvx2;
#endif
  return kScalar;
}
}  // namespace rk

namespace {

// k column vectors of length len, each contiguous.
struct Cols {
  size_t k = 0, len = 0;
  std::vector<double> own;
  double* base = nullptr;
  Cols(size_t k_, size_t len_) : k(k_), len(len_), own(k_ * len_, 0.0), base(own.data()) {}
  // On borrowed storage (a thread's reusable workspace): no allocation, no page faults per call.
  Cols(size_t k_, size_t len_, std::vector<double>& store) : k(k_), len(len_) {
    store.assign(k_ * len_, 0.0);
    base = store.data();
  }
  Cols(Cols&&) = default;
  Cols(const Cols&) = delete;
  double* col(size_t c) { return base + c * len; }
};

// Buffers reused by the calls on one thread: the exact path at 64..512 allocates a few MB per pair,
// and fresh large allocations cost more in page faults than the arithmetic. Released after a
// call that grew them past kKeepBytes (the randomized path's matrices are not kept).
struct Workspace {
  std::vector<double> c, copy, G, M, H, A, GP;
  size_t bytes() const {
    return 8 * (c.capacity() + copy.capacity() + G.capacity() + M.capacity() + H.capacity() + A.capacity() + GP.capacity());
  }
};
constexpr size_t kKeepBytes = size_t(16) << 20;
Workspace& workspace() {
  thread_local Workspace w;
  return w;
}

// Householder QR of the len x k matrix whose columns are `m` (len >= k): returns R's columns.
Cols qr_r(Cols& m, const KernelTable& t) {
  const size_t k = m.k, len = m.len;
  Cols r(k, k);
  for (size_t j = 0; j < k; ++j) {
    double* x = m.col(j) + j;
    const size_t l = len - j;
    const double x0 = x[0], norm = std::sqrt(t.dot(x, x, l));
    const double alpha = x0 >= 0 ? -norm : norm;
    for (size_t i = 0; i < j; ++i) r.col(j)[i] = m.col(j)[i];
    r.col(j)[j] = alpha;
    if (norm == 0) continue;
    const double v0 = x0 - alpha, vv = norm * norm - x0 * x0 + v0 * v0;  // |x - alpha e1|^2
    x[0] = v0;
    for (size_t c = j + 1; c < k; ++c) {
      double* y = m.col(c) + j;
      t.axpy(-2.0 * t.dot(x, y, l) / vv, x, y, l);
    }
  }
  return r;
}

// One-sided Jacobi on the columns; returns the singular values (final column norms). Columns
// shorter than `skip` take no part in rotations: zeroing them would move every singular value by
// less than their norm, and `skip` is far below the rank tolerance.
std::vector<double> jacobi_sv(Cols& a, double skip, const KernelTable& t) {
  const size_t k = a.k, len = a.len;
  std::vector<double> n2(k);
  const double skip2 = skip * skip;
  for (int sweep = 0; sweep < 60; ++sweep) {
    for (size_t c = 0; c < k; ++c) n2[c] = t.dot(a.col(c), a.col(c), len);
    bool rotated = false;
    for (size_t p = 0; p + 1 < k; ++p) {
      for (size_t q = p + 1; q < k; ++q) {
        const double al = n2[p], be = n2[q];
        if (al <= skip2 || be <= skip2) continue;
        const double g = t.dot(a.col(p), a.col(q), len);
        if (std::fabs(g) <= 1e-15 * std::sqrt(al * be)) continue;
        rotated = true;
        const double zeta = (be - al) / (2.0 * g);
        const double tt = (zeta >= 0 ? 1.0 : -1.0) / (std::fabs(zeta) + std::hypot(1.0, zeta));
        const double c = 1.0 / std::sqrt(1.0 + tt * tt), s = c * tt;
        t.rot(a.col(p), a.col(q), len, c, s);
        n2[p] = al - tt * g;
        n2[q] = be + tt * g;
      }
    }
    if (!rotated) break;
  }
  std::vector<double> sv(k);
  for (size_t c = 0; c < k; ++c) sv[c] = std::sqrt(t.dot(a.col(c), a.col(c), len));
  return sv;
}

// Singular values of the len x k matrix with columns `m` (any shape; QR first when tall).
std::vector<double> singular_values(Cols& m, double skip, const KernelTable& t) {
  if (m.len > m.k) {
    Cols r = qr_r(m, t);
    return jacobi_sv(r, skip, t);
  }
  return jacobi_sv(m, skip, t);
}

// Fixed-seed Gaussian numbers: splitmix64 + Box-Muller (reproducible on every machine).
struct Gauss {
  uint64_t s;
  double spare = 0;
  bool has = false;
  explicit Gauss(uint64_t seed) : s(seed) {}
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return (double(next() >> 11) + 0.5) * 0x1p-53; }  // (0, 1)
  double operator()() {
    if (has) { has = false; return spare; }
    const double r = std::sqrt(-2.0 * std::log(uniform())), th = 6.283185307179586 * uniform();
    spare = r * std::sin(th);
    has = true;
    return r * std::cos(th);
  }
};

// Orthonormalises the l columns of the row-major rows x l matrix Y in place (two-pass modified
// Gram-Schmidt: "twice is enough"). Columns that vanish in exact arithmetic (rank-deficient D)
// are set to zero rather than normalising rounding noise.
void orthonormalise(double* Y, size_t rows, size_t l, const KernelTable& t) {
  Cols c(l, rows);
  for (size_t i = 0; i < rows; ++i)
    for (size_t j = 0; j < l; ++j) c.col(j)[i] = Y[i * l + j];
  for (size_t j = 0; j < l; ++j) {
    double* v = c.col(j);
    const double before = std::sqrt(t.dot(v, v, rows));
    for (int pass = 0; pass < 2; ++pass)
      for (size_t p = 0; p < j; ++p) t.axpy(-t.dot(c.col(p), v, rows), c.col(p), v, rows);
    const double norm = std::sqrt(t.dot(v, v, rows));
    const double scale = norm > 1e-12 * before && norm > 0 ? 1.0 / norm : 0.0;
    for (size_t i = 0; i < rows; ++i) v[i] *= scale;
  }
  for (size_t i = 0; i < rows; ++i)
    for (size_t j = 0; j < l; ++j) Y[i * l + j] = c.col(j)[i];
}

int count_above(const std::vector<double>& sv, double tol) {
  int r = 0;
  for (double s : sv) r += s > tol;
  return r;
}


// ---- fast exact count: QR with column pivoting plus certificates -------------------------------
//
// The count of singular values above tol is decided without computing them when two cheap
// certificates hold, and left to the Jacobi SVD otherwise (kUndecided), so every answer this
// returns is the exact count for singular values further than the rounding bound `delta` from tol
// (the Jacobi path has the same kind of bound).
//
// After j steps of Householder QR with column pivoting, R = [R11 R12; 0 R22] has the singular
// values of D, and with X = [R11 R12]:  sigma_i(X) <= sigma_i(D) <= sqrt(sigma_i(X)^2 + |R22|^2),
// sigma_{j+1}(D) <= |R22|. So:
//  1. |R22| <= B < tol is certified by a Cholesky factorisation of B^2 I - R22^T R22 (it succeeds
//     only when that matrix is positive definite, up to a backward error bounded below). R22 holds
//     what remains after the large directions are removed, so its Gram matrix loses nothing that
//     matters; the Gram matrix of D itself would (it squares D's condition).
//  2. Then rank <= j, and rank == j when sigma_min(R11) > tol: certified by the explicit inverse
//     of the triangle R11, sigma_min >= (1 - rho) / |R11^-1|_F (rho: the inverse's residual bound).
// A LoRA-style difference of rank r stops after r steps (R22 is rounding noise below tol) and
// costs ~ 4 len k r + (k - r)^2 len flops instead of a full SVD. When certificate 2 fails, the j
// singular values of X (small when j is) decide with the interval above.
constexpr int kUndecided = -2;
constexpr double kEps = 0x1p-52;

struct TolSpec {
  double len_eps;    // max(rows, cols) of D times eps64
  double noise_tol;  // the storage-rounding term
  double of(double smax) const { return std::max(len_eps * smax, noise_tol); }
};

// In-place Cholesky of the symmetric n x n matrix whose lower triangle is in L (row-major): true
// when it completes with positive pivots, i.e. the matrix plus a backward error of at most
// gamma_{n+1} n max_diag (in 2-norm) is positive definite.
bool cholesky_ok(double* L, size_t n, const KernelTable& t) {
  for (size_t a = 0; a < n; ++a) {
    double* ra = L + a * n;
    const double d = ra[a] - t.dot(ra, ra, a);
    if (!(d > 0)) return false;
    ra[a] = std::sqrt(d);
    const double inv = 1.0 / ra[a];
    for (size_t r = a + 1; r < n; ++r) {
      double* rr = L + r * n;
      rr[a] = (rr[a] - t.dot(rr, ra, a)) * inv;
    }
  }
  return true;
}

// Certificates that sigma_{j+1}(R) <= *B for the partly factored R of qrcp_rank (R11 R12 in the
// first j rows: rdiag and col[q][i], i < q; R22 = col[q][j..len), q >= j), with b0 the target.
struct Certifier {
  const std::vector<double*>& col;
  const std::vector<double>& rdiag;
  size_t k, len;
  const KernelTable& t;
  const rk::Ops& o;
  std::vector<double> G, M, V, T1, U, H, A, GP;
  size_t hn = 0;
  double err2 = 0;

  // Gram matrix of R22 (kk x kk, full) and its trace.
  double gram(size_t j) {
    const size_t kk = k - j, l = len - j;
    G.assign(kk * kk, 0.0);
    double trace = 0;
    if (kk >= 24) {
      // As one product A^T A of the copied block (row-major, padded to whole vectors): the blocked
      // kernel runs ~5x faster than kk^2 / 2 separate dot products. Same rounding bound.
      const size_t kp = (kk + 7) / 8 * 8;
      A.assign(l * kp, 0.0);
      for (size_t a0 = 0; a0 < kk; a0 += 16)  // tiled transpose, as in diff_rank
        for (size_t i0 = 0; i0 < l; i0 += 16)
          for (size_t a = a0; a < std::min(kk, a0 + 16); ++a) {
            const double* c = col[j + a] + j;
            for (size_t i = i0; i < std::min(l, i0 + 16); ++i) A[i * kp + a] = c[i];
          }
      GP.resize(kp * kp);
      o.gemm_tn(A.data(), kp, A.data(), kp, GP.data(), kp, l, kp, kp);
      for (size_t a = 0; a < kk; ++a)
        for (size_t b = 0; b <= a; ++b) G[a * kk + b] = G[b * kk + a] = GP[a * kp + b];
    } else {
      for (size_t a = 0; a < kk; ++a)
        for (size_t b = 0; b <= a; ++b) G[a * kk + b] = G[b * kk + a] = t.dot(col[j + a] + j, col[j + b] + j, l);
    }
    for (size_t a = 0; a < kk; ++a) trace += G[a * kk + a];
    return trace;
  }

  // |R22|_2 <= B: Cholesky of b0^2 I - R22^T R22, plus its backward error and the Gram matrix's
  // rounding (gamma_l |R22|^T |R22|, 2-norm <= gamma_l trace).
  bool plain(size_t j, double b0, double trace, double* B) {
    const size_t kk = k - j;
    H.assign(kk * kk, 0.0);
    for (size_t a = 0; a < kk; ++a)
      for (size_t b = 0; b <= a; ++b) H[a * kk + b] = H[b * kk + a] = G[a * kk + b];
    hn = kk;
    err2 = 1.1 * double(len - j) * kEps * trace;
    return test(b0, B);
  }

  // Cholesky of b0^2 I - H (H: the Gram matrix certified last, hn x hn), with its backward error
  // and the additive error terms err2 of forming H: |.|_2^2 <= B^2.
  bool test(double b0, double* B) {
    const size_t n = hn;
    // A Rayleigh quotient above b0^2 proves the test fails: skip the Cholesky (a few
    // matrix-vector products instead of n^3 / 6; the leak above makes this common at large k / j).
    if (n >= 64 && rayleigh(8) > b0 * b0 * (1 + 1e-9)) return false;
    M.assign(n * n, 0.0);
    for (size_t a = 0; a < n; ++a)
      for (size_t b = 0; b <= a; ++b) M[a * n + b] = (a == b ? b0 * b0 : 0.0) - H[a * n + b];
    if (!cholesky_ok(M.data(), n, t)) return false;
    const double b2 = b0 * b0 * (1 + 1.1 * double(n + 1) * double(n) * kEps) + err2;
    *B = std::sqrt(b2) * (1 + 4 * kEps);
    return true;
  }

  // sqrt of H's largest eigenvalue estimated by power iteration (a lower bound up to rounding):
  // the target for a tighter certificate when B ~ tol leaves a count undecided.
  double norm_estimate() { return std::sqrt(rayleigh(60)); }

  // Largest Rayleigh quotient of H met in `iters` power iterations (<= its largest eigenvalue).
  double rayleigh(int iters) {
    const size_t n = hn;
    if (n == 0) return 0;
    std::vector<double> x(n), y(n);
    for (size_t a = 0; a < n; ++a) x[a] = 1.0 + 0.1 * double(a % 7);
    double lam = 0;
    for (int it = 0; it < iters; ++it) {
      const double nx = std::sqrt(t.dot(x.data(), x.data(), n));
      if (!(nx > 0)) return 0;
      for (size_t a = 0; a < n; ++a) x[a] /= nx;
      for (size_t a = 0; a < n; ++a) y[a] = t.dot(H.data() + a * n, x.data(), n);
      lam = std::max(lam, t.dot(x.data(), y.data(), n));
      std::swap(x, y);
    }
    return lam;
  }

  // The pivot columns' own noise leaks into R22 as a rank-j part lying in the row space of
  // X = [R11 R12] (R22 = -Q2^T N_pivots C with C the other columns' coefficients), and grows with
  // sqrt(k / j): at 512 x 512 rank 16 it alone exceeds tol. D = D V V^T + D P with P = I - V V^T,
  // V a basis of X's rows, and D V V^T has rank j, so sigma_{j+1}(D) <= |D P|, and
  // |D P|^2 <= |X P|^2 + |[0 R22] P|^2 (true for any V; orthonormality only makes it tight).
  bool projected(size_t j, double b0, double trace, double* B) {
    const size_t kk = k - j;
    // V (k x j, row-major) from X's rows by two passes of Gram-Schmidt.
    std::vector<double> vt(j * k, 0.0), x(k);
    double xp2 = 0;
    for (size_t i = 0; i < j; ++i) {
      double* r = vt.data() + i * k;
      r[i] = rdiag[i];
      for (size_t q = i + 1; q < k; ++q) r[q] = col[q][i];
      std::copy(r, r + k, x.begin());
      for (int pass = 0; pass < 2; ++pass)
        for (size_t a = 0; a < i; ++a) {
          const double* va = vt.data() + a * k;
          const double f = t.dot(va, r, k);
          for (size_t q = 0; q < k; ++q) r[q] -= f * va[q];
        }
      const double nr = std::sqrt(t.dot(r, r, k));
      if (!(nr > 0)) return false;
      for (size_t q = 0; q < k; ++q) r[q] /= nr;
    }
    for (size_t i = 0; i < j; ++i) {  // |X P|_F^2, computed (tiny when V is orthonormal)
      double* r = x.data();
      r[i] = rdiag[i];
      for (size_t q = 0; q < i; ++q) r[q] = 0;
      for (size_t q = i + 1; q < k; ++q) r[q] = col[q][i];
      std::vector<double> xr(x);
      for (size_t a = 0; a < j; ++a) {
        const double* va = vt.data() + a * k;
        const double f = t.dot(va, r, k);
        for (size_t q = 0; q < k; ++q) xr[q] -= f * va[q];
      }
      xp2 += t.dot(xr.data(), xr.data(), k);
    }
    V.assign(k * j, 0.0);
    for (size_t i = 0; i < j; ++i)
      for (size_t q = 0; q < k; ++q) V[q * j + i] = vt[i * k + q];
    // T1 = Gfull V (Gfull = blockdiag(0, G)), S = V^T T1, U = V S; then P Gfull P entrywise.
    T1.assign(k * j, 0.0);
    for (size_t a = 0; a < kk; ++a)
      for (size_t b = 0; b < kk; ++b) {
        const double g = G[a * kk + b];
        const double* vb = V.data() + (j + b) * j;
        double* ta = T1.data() + (j + a) * j;
        for (size_t c = 0; c < j; ++c) ta[c] += g * vb[c];
      }
    std::vector<double> S(j * j, 0.0);
    for (size_t q = 0; q < k; ++q)
      for (size_t c = 0; c < j; ++c)
        for (size_t d = 0; d < j; ++d) S[c * j + d] += V[q * j + c] * T1[q * j + d];
    U.assign(k * j, 0.0);
    for (size_t q = 0; q < k; ++q)
      for (size_t c = 0; c < j; ++c)
        for (size_t d = 0; d < j; ++d) U[q * j + d] += V[q * j + c] * S[c * j + d];
    // C = V T1^T + T1 V^T - U V^T as one product [V T1 -U] (k x 3j) by [T1 V V]^T (3j x k).
    const size_t kp = (k + 7) / 8 * 8, j3 = 3 * j;
    A.assign(k * j3, 0.0);
    GP.assign(j3 * kp, 0.0);
    for (size_t q = 0; q < k; ++q)
      for (size_t c = 0; c < j; ++c) {
        A[q * j3 + c] = V[q * j + c];
        A[q * j3 + j + c] = T1[q * j + c];
        A[q * j3 + 2 * j + c] = -U[q * j + c];
        GP[c * kp + q] = T1[q * j + c];
        GP[(j + c) * kp + q] = GP[(2 * j + c) * kp + q] = V[q * j + c];
      }
    M.resize(k * kp);
    o.gemm_nn(A.data(), j3, GP.data(), kp, M.data(), kp, k, j3, kp);
    H.assign(k * k, 0.0);
    hn = k;
    for (size_t a = 0; a < k; ++a)
      for (size_t b = 0; b <= a; ++b) {
        const double g = a >= j && b >= j ? G[(a - j) * kk + (b - j)] : 0.0;
        H[a * k + b] = H[b * k + a] = g - M[a * kp + b];
      }
    // Rounding of P Gfull P: a few products of length <= k with |V| <= 1 entries, |T1|, |U| ~ |G|.
    err2 = 1.1 * double(len - j) * kEps * trace + 8.8 * double(k) * double(j + 2) * kEps * trace + xp2;
    return test(b0, B);
  }
};

// Exact count for the len x k matrix with columns `c` (len >= k); destroys c. kUndecided when
// a singular value may lie within the rounding bound of tol.
int qrcp_rank(Cols& c, const TolSpec& ts, const KernelTable& t, const rk::Ops& o) {
  const size_t k = c.k, len = c.len;
  if (len < k) return kUndecided;  // callers pass the tall orientation; the reference takes any
  std::vector<double*> col(k);
  std::vector<double> n2(k), ref2(k), rdiag(k, 0.0);
  double fro2 = 0, cmax2 = 0;
  for (size_t j = 0; j < k; ++j) {
    col[j] = c.col(j);
    n2[j] = ref2[j] = t.dot(col[j], col[j], len);
    fro2 += n2[j];
    cmax2 = std::max(cmax2, n2[j]);
  }
  if (fro2 == 0) return 0;
  // Householder QR's backward error (|dD|_F <= ~ len k eps |D|_F, a pessimistic bound: the usual
  // error is ~ sqrt(len k) eps |D|_F) moves every singular value by at most delta.
  const double fro = std::sqrt(fro2);
  const double delta = 1.1 * double(len) * double(k) * kEps * fro;
  const double smax_lo = std::sqrt(cmax2), smax_hi = fro * (1 + 2 * double(len) * kEps) + delta;
  const double tol_lo = ts.of(smax_lo), tol_hi = ts.of(smax_hi);
  const double b0 = 0.99 * (tol_lo - delta);
  if (!(b0 > 0)) return kUndecided;

  size_t j = 0, next_try = 0, step = 1;
  Certifier cert{col, rdiag, k, len, t, o, {}, {}, {}, {}, {}, {}, {}, {}, 0, 0};
  // The large work matrices come from the thread's workspace and go back to it on every return.
  Workspace& ws = workspace();
  struct Lend {
    Workspace& ws;
    Certifier& c;
    void swap() { std::swap(ws.G, c.G), std::swap(ws.M, c.M), std::swap(ws.H, c.H), std::swap(ws.A, c.A), std::swap(ws.GP, c.GP); }
    ~Lend() { swap(); }
  } lend{ws, cert};
  lend.swap();
  std::vector<double> T, xc;
  for (;;) {
    // Factor on until a certificate |R22| <= B < tol holds (or nothing is left).
    double B = -1;
    bool certified = false;
    for (; j < k; ++j) {
      size_t p = j;
      for (size_t q = j + 1; q < k; ++q)
        if (n2[q] > n2[p]) p = q;
      if (n2[p] == 0) {  // what is left is exactly zero
        B = 0;
        break;
      }
      // No column of R22 longer than b0 (|R22| >= any column's norm): try the certificate.
      if (j >= next_try && n2[p] <= b0 * b0) {
        next_try = j + step;
        step *= 2;
        const double trace = cert.gram(j);
        if ((cert.plain(j, b0, trace, &B) && B + delta < tol_lo) ||
            (j > 0 && cert.projected(j, b0, trace, &B) && B + delta < tol_lo)) {
          certified = true;
          break;
        }
        B = -1;
      }
      std::swap(col[j], col[p]);
      std::swap(n2[j], n2[p]);
      std::swap(ref2[j], ref2[p]);
      double* x = col[j] + j;
      const size_t l = len - j;
      const double x0 = x[0], norm = std::sqrt(t.dot(x, x, l));
      const double alpha = x0 >= 0 ? -norm : norm;
      rdiag[j] = alpha;
      const double v0 = x0 - alpha, vv = norm * norm - x0 * x0 + v0 * v0;
      x[0] = v0;  // x now holds the reflector v (R's diagonal is in rdiag)
      if (j + 1 < k && vv > 0) o.house(x, l, 2.0 / vv, col.data() + j + 1, k - j - 1, j);
      for (size_t q = j + 1; q < k; ++q) {
        // Downdate the remaining norms by R's new row; recompute when cancellation ate the digits
        // (the norms only steer pivoting and the certificate attempts: they are never trusted).
        const double r = col[q][j];
        n2[q] -= r * r;
        if (n2[q] <= 1e-4 * ref2[q]) n2[q] = ref2[q] = j + 1 < len ? t.dot(col[q] + j + 1, col[q] + j + 1, l - 1) : 0.0;
      }
    }
    if (j == k) B = 0;
    if (j == 0) return 0;

    // rank == j when sigma_min(R11) > tol: R11 as a dense row-major triangle T (j x j), its
    // inverse by back substitution, residual |T X - I| <= gamma_j |T||X| (Higham, Thm 8.5).
    T.assign(j * j, 0.0);
    double t2 = 0, x2 = 0;
    for (size_t i = 0; i < j; ++i) {
      T[i * j + i] = rdiag[i];
      for (size_t q = i + 1; q < j; ++q) T[i * j + q] = col[q][i];
      t2 += t.dot(T.data() + i * j, T.data() + i * j, j);
    }
    xc.assign(j, 0.0);
    for (size_t q = 0; q < j; ++q) {
      std::fill(xc.begin(), xc.end(), 0.0);
      xc[q] = 1.0 / T[q * j + q];
      for (size_t i = q; i-- > 0;) xc[i] = -t.dot(T.data() + i * j + i + 1, xc.data() + i + 1, q - i) / T[i * j + i];
      x2 += t.dot(xc.data(), xc.data(), q + 1);
    }
    const double xf = std::sqrt(x2), rho = 1.1 * double(j) * kEps * std::sqrt(t2) * xf;
    if (std::isfinite(xf) && rho < 0.5 && (1 - rho) / xf - delta > tol_hi) return int(j);

    // Otherwise the singular values of X = [R11 R12] (j x k; its rows as j vectors of length k)
    // decide: sigma_i(D) lies in [s_i, hypot(s_i, B)] up to the rounding bounds.
    Cols xt(j, k);
    for (size_t i = 0; i < j; ++i) {
      double* r = xt.col(i);
      r[i] = rdiag[i];
      for (size_t q = i + 1; q < k; ++q) r[q] = col[q][i];
    }
    const std::vector<double> sv = singular_values(xt, 0.0, t);
    const double s1 = *std::max_element(sv.begin(), sv.end());
    const double err = delta + 8 * double(k) * kEps * s1;  // plus the Jacobi SVD's own error
    auto decide = [&](double b) {
      const double tl = ts.of(std::max(s1 - err, smax_lo));
      const double th = ts.of(std::min(std::hypot(s1 + err, b) + delta, smax_hi));
      if (!(b + delta < tl)) return kUndecided;
      int r = 0;
      for (double s : sv) {
        if (s - err > th) ++r;
        else if (!(std::hypot(s + err, b) + delta <= tl)) return kUndecided;
      }
      return r;
    };
    int r = decide(B);
    if (r == kUndecided && certified && B > 0) {
      // B was certified against ~tol; a singular value of X below tol needs |R22| well below it.
      const double est = cert.norm_estimate();
      for (double f : {1.05, 1.5, 4.0}) {
        double b = est * f, Bt;
        if (b > 0 && b < b0 && cert.test(b, &Bt)) {
          r = decide(Bt);
          break;
        }
      }
    }
    if (r != kUndecided || j == k) return r;
    // Still undecided: a direction near tol is left in R22. Factor further (it moves into X,
    // where its singular value is measured, not bounded) and certify again.
  }
}

// The reference: Jacobi SVD of all of D (len x k columns), counted against tol of its sigma_max.
int jacobi_rank(Cols& c, const TolSpec& ts, double skip, const KernelTable& t) {
  const std::vector<double> sv = singular_values(c, skip, t);
  const double smax = sv.empty() ? 0.0 : *std::max_element(sv.begin(), sv.end());
  return count_above(sv, ts.of(smax));
}

int count_rank(Cols& c, const TolSpec& ts, double skip, const KernelTable& t, const rk::Ops& o, bool reference) {
  if (!reference) {
    Cols copy(c.k, c.len, workspace().copy);  // c is kept for the rare undecided case
    std::copy(c.base, c.base + c.k * c.len, copy.base);
    const int r = qrcp_rank(copy, ts, t, o);
    if (r != kUndecided) return r;
  }
  return jacobi_rank(c, ts, skip, t);
}

}  // namespace

int diff_rank(const float* a, const float* b, size_t rows, size_t cols, const RankOptions& opt) {
  if (rows == 0 || cols == 0) return 0;
  const KernelTable& t = kernel_table();
  const rk::Ops& o = rk::ops_for(t.isa);
  const size_t m = rows, n = cols, k = std::min(m, n), len = std::max(m, n);
  double sum_ab2 = 0, fro2 = 0;
  for (size_t i = 0; i < m * n; ++i) {
    const double x = a[i], y = b[i], d = x - y;
    sum_ab2 += x * x + y * y;
    fro2 += d * d;
  }
  if (!std::isfinite(sum_ab2) || !std::isfinite(fro2)) return -1;
  if (fro2 == 0) return 0;
  const double rms = std::sqrt(sum_ab2 / (2.0 * double(m) * double(n)));
  const TolSpec ts{double(len) * kEps,
                   opt.noise * opt.unit_roundoff * rms * (std::sqrt(double(m)) + std::sqrt(double(n)))};
  // A lower bound of the final tolerance (sigma_max >= ||D||_F / sqrt(k)) sets the skip level.
  const double tol_low = ts.of(std::sqrt(fro2 / double(k)));
  const double skip = 1e-3 * tol_low / std::sqrt(double(k));

  const size_t l_max = opt.max_rank + 10;
  if (k <= opt.exact_limit || l_max >= k) {
    // Columns of the tall orientation: D's columns when rows >= cols, else its rows.
    Cols c(k, len, workspace().c);
    if (m < n) {
      for (size_t i = 0; i < m; ++i)
        for (size_t j = 0; j < n; ++j) c.col(i)[j] = double(a[i * n + j]) - double(b[i * n + j]);
    } else {
      // Transposing: 16 x 16 tiles keep both sides in cache (a plain loop misses on every write).
      for (size_t i0 = 0; i0 < m; i0 += 16)
        for (size_t j0 = 0; j0 < n; j0 += 16)
          for (size_t j = j0; j < std::min(n, j0 + 16); ++j)
            for (size_t i = i0; i < std::min(m, i0 + 16); ++i) c.col(j)[i] = double(a[i * n + j]) - double(b[i * n + j]);
    }
    const int r = count_rank(c, ts, skip, t, o, opt.reference);
    if (workspace().bytes() > kKeepBytes) workspace() = Workspace{};
    return r;
  }

  // Randomized: sketches of 32, 64, ... columns (multiples of 8 for the product kernels, at most
  // max_rank + 10 rounded up) until the sketch holds 10 more columns than the rank it finds, so a
  // rank-16 LoRA update costs a 32-column sketch, not max_rank + 10. The count from a sketch
  // never exceeds the true one (interlacing): growing only stops once 10 columns oversample it.
  std::vector<double> D(m * n);
  for (size_t i = 0; i < m * n; ++i) D[i] = double(a[i]) - double(b[i]);
  // Multiples of 8 (the product kernels' vectors), and never wider than min(rows, cols): the sketch
  // Z = D^T Q (cols x l) must stay tall for the exact count.
  const size_t l_cap = std::min((l_max + 7) / 8 * 8, k / 8 * 8);
  for (size_t l = std::min<size_t>(32, l_cap), next = 0;; l = next) {
    std::vector<double> omega(n * l), Y(m * l), Z(n * l);
    Gauss g(opt.seed);
    for (double& w : omega) w = g();
    o.gemm_nn(D.data(), n, omega.data(), l, Y.data(), l, m, n, l);
    orthonormalise(Y.data(), m, l, t);
    for (int it = 0; it < 2; ++it) {
      o.gemm_tn(D.data(), n, Y.data(), l, Z.data(), l, m, n, l);
      orthonormalise(Z.data(), n, l, t);
      o.gemm_nn(D.data(), n, Z.data(), l, Y.data(), l, m, n, l);
      orthonormalise(Y.data(), m, l, t);
    }
    o.gemm_tn(D.data(), n, Y.data(), l, Z.data(), l, m, n, l);  // Z = D^T Q: the singular values of Q^T D
    Cols zc(l, n);
    for (size_t i = 0; i < n; ++i)
      for (size_t j = 0; j < l; ++j) zc.col(j)[i] = Z[i * l + j];
    const int r = count_rank(zc, ts, skip, t, o, opt.reference);
    if (workspace().bytes() > kKeepBytes) workspace() = Workspace{};
    if (size_t(r) + 10 <= l || l >= l_cap) return r > int(opt.max_rank) ? int(opt.max_rank) + 1 : r;
    // A sketch that is (nearly) all rank says little about how far the rank goes: go straight to
    // the widest sketch instead of doubling (a full-rank difference then costs ~1.1 sketches, not 2).
    next = size_t(r) + 2 >= l ? l_cap : std::min(l_cap, 2 * l);
  }
}

}  // namespace mother::cpu
