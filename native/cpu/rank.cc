// Numerical rank of A - B (the LoRA distance), in float64.
//
// Exact path: Householder QR of the tall orientation of D = A - B down to a k x k triangle
// (k = min(rows, cols)), then one-sided Jacobi (Hestenes) on its columns; singular values are the
// final column norms. Jacobi on D itself, not eigenvalues of D^T D, keeps all ~16 digits.
// Randomized path (k > exact_limit): Gaussian sketch with max_rank + 10 columns from a fixed-seed
// PRNG, 2 power iterations re-orthonormalised by two-pass Gram-Schmidt, then the exact path on the
// small projection Q^T D. Singular values above the tolerance of kernels.h are counted.
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

namespace {

// k column vectors of length len, each contiguous.
struct Cols {
  size_t k = 0, len = 0;
  std::vector<double> v;
  Cols(size_t k_, size_t len_) : k(k_), len(len_), v(k_ * len_, 0.0) {}
  double* col(size_t c) { return v.data() + c * len; }
};

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

// C (m x l) = A (m x n) * B (n x l), all row-major; four rows of A per pass keep B's row in L1.
void gemm_nn(const double* A, const double* B, double* C, size_t m, size_t n, size_t l, const KernelTable& t) {
  std::fill(C, C + m * l, 0.0);
  for (size_t i0 = 0; i0 < m; i0 += 4) {
    const size_t rows = std::min<size_t>(4, m - i0);
    for (size_t p = 0; p < n; ++p)
      for (size_t r = 0; r < rows; ++r) t.axpy(A[(i0 + r) * n + p], B + p * l, C + (i0 + r) * l, l);
  }
}

// C (n x l) = A^T Q for A (m x n) and Q (m x l), row-major.
void gemm_tn(const double* A, const double* Q, double* C, size_t m, size_t n, size_t l, const KernelTable& t) {
  std::fill(C, C + n * l, 0.0);
  for (size_t i0 = 0; i0 < m; i0 += 4) {
    const size_t rows = std::min<size_t>(4, m - i0);
    for (size_t p = 0; p < n; ++p)
      for (size_t r = 0; r < rows; ++r) t.axpy(A[(i0 + r) * n + p], Q + (i0 + r) * l, C + p * l, l);
  }
}

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

}  // namespace

int diff_rank(const float* a, const float* b, size_t rows, size_t cols, const RankOptions& opt) {
  if (rows == 0 || cols == 0) return 0;
  const KernelTable& t = kernel_table();
  const size_t m = rows, n = cols, k = std::min(m, n), len = std::max(m, n);
  double sum_ab2 = 0, fro2 = 0;
  for (size_t i = 0; i < m * n; ++i) {
    const double x = a[i], y = b[i], d = x - y;
    sum_ab2 += x * x + y * y;
    fro2 += d * d;
  }
  if (!std::isfinite(sum_ab2) || !std::isfinite(fro2)) return -1;
  if (fro2 == 0) return 0;
  constexpr double eps = 0x1p-52;
  const double rms = std::sqrt(sum_ab2 / (2.0 * double(m) * double(n)));
  const double noise_tol = opt.noise * opt.unit_roundoff * rms * (std::sqrt(double(m)) + std::sqrt(double(n)));
  // A lower bound of the final tolerance (sigma_max >= ||D||_F / sqrt(k)) sets the skip level.
  const double tol_low = std::max(double(len) * eps * std::sqrt(fro2 / double(k)), noise_tol);
  const double skip = 1e-3 * tol_low / std::sqrt(double(k));
  auto tol_of = [&](const std::vector<double>& sv) {
    const double smax = sv.empty() ? 0.0 : *std::max_element(sv.begin(), sv.end());
    return std::max(double(len) * eps * smax, noise_tol);
  };

  const size_t l = opt.max_rank + 10;
  if (k <= opt.exact_limit || l >= k) {
    // Columns of the tall orientation: D's columns when rows >= cols, else its rows.
    Cols c(k, len);
    for (size_t i = 0; i < m; ++i)
      for (size_t j = 0; j < n; ++j) {
        const double d = double(a[i * n + j]) - double(b[i * n + j]);
        if (m >= n) c.col(j)[i] = d; else c.col(i)[j] = d;
      }
    const std::vector<double> sv = singular_values(c, skip, t);
    return count_above(sv, tol_of(sv));
  }

  std::vector<double> D(m * n);
  for (size_t i = 0; i < m * n; ++i) D[i] = double(a[i]) - double(b[i]);
  std::vector<double> omega(n * l), Y(m * l), Z(n * l);
  Gauss g(opt.seed);
  for (double& w : omega) w = g();
  gemm_nn(D.data(), omega.data(), Y.data(), m, n, l, t);
  orthonormalise(Y.data(), m, l, t);
  for (int it = 0; it < 2; ++it) {
    gemm_tn(D.data(), Y.data(), Z.data(), m, n, l, t);
    orthonormalise(Z.data(), n, l, t);
    gemm_nn(D.data(), Z.data(), Y.data(), m, n, l, t);
    orthonormalise(Y.data(), m, l, t);
  }
  gemm_tn(D.data(), Y.data(), Z.data(), m, n, l, t);  // Z = D^T Q: same singular values as Q^T D
  Cols zc(l, n);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < l; ++j) zc.col(j)[i] = Z[i * l + j];
  const std::vector<double> sv = singular_values(zc, skip, t);
  const int r = count_above(sv, tol_of(sv));
  return r > int(opt.max_rank) ? int(opt.max_rank) + 1 : r;
}

}  // namespace mother::cpu
