// Spectral entropy of a matrix or of the difference of two: the evidence that tells one
// fine-tuning update (a few dominant directions) from the sum of two (siblings, grandparents).
//
// H = -sum p_i log p_i with p_i = sigma_i / sum sigma (the log of the effective rank of Roy and
// Vetterli, as TensorLock uses it). Computed in float64: the Gram matrix of the shorter side
// (rank.cc's blocked products, per ISA), then its eigenvalues by Householder tridiagonalisation and
// the implicit QL algorithm (eigenvalues only, ~(4/3) n^3 flops), sigma_i = sqrt(max(lambda_i, 0)).
// Rounding leaves eigenvalues of ~1e-16 lambda_max where the matrix is rank deficient; their
// sigma (~1e-8 sigma_max) moves H by ~n * 1e-8 * 18, far below any difference that matters.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>
#include "cpu/isa_impl.h"

namespace mother::cpu {

namespace {

// Eigenvalues of the symmetric n x n matrix a (row-major, destroyed), unordered, into d.
// Householder reduction to tridiagonal form, then QL with implicit Wilkinson shifts.
void symmetric_eigenvalues(double* a, size_t n, double* d) {
  if (n == 0) return;
  std::vector<double> e(n, 0.0);
  auto A = [&](size_t i, size_t j) -> double& { return a[i * n + j]; };
  for (size_t i = n - 1; i > 0; --i) {
    const size_t l = i - 1;
    double h = 0, scale = 0;
    if (l > 0) {
      for (size_t k = 0; k <= l; ++k) scale += std::fabs(A(i, k));
      if (scale == 0) {
        e[i] = A(i, l);
      } else {
        for (size_t k = 0; k <= l; ++k) {
          A(i, k) /= scale;
          h += A(i, k) * A(i, k);
        }
        double f = A(i, l);
        const double g0 = f >= 0 ? -std::sqrt(h) : std::sqrt(h);
        e[i] = scale * g0;
        h -= f * g0;
        A(i, l) = f - g0;
        f = 0;
        for (size_t j = 0; j <= l; ++j) {
          double g = 0;
          for (size_t k = 0; k <= j; ++k) g += A(j, k) * A(i, k);
          for (size_t k = j + 1; k <= l; ++k) g += A(k, j) * A(i, k);
          e[j] = g / h;
          f += e[j] * A(i, j);
        }
        const double hh = f / (h + h);
        for (size_t j = 0; j <= l; ++j) {
          const double fj = A(i, j), g = e[j] - hh * fj;
          e[j] = g;
          for (size_t k = 0; k <= j; ++k) A(j, k) -= fj * e[k] + g * A(i, k);
        }
      }
    } else {
      e[i] = A(i, l);
    }
    d[i] = h;
  }
  for (size_t i = 0; i < n; ++i) d[i] = A(i, i);
  for (size_t i = 1; i < n; ++i) e[i - 1] = e[i];
  e[n - 1] = 0;
  for (size_t l = 0; l < n; ++l) {
    for (int iter = 0;; ++iter) {
      size_t m = l;
      for (; m + 1 < n; ++m) {
        const double dd = std::fabs(d[m]) + std::fabs(d[m + 1]);
        if (std::fabs(e[m]) <= std::numeric_limits<double>::epsilon() * dd) break;
      }
      if (m == l || iter == 60) break;  // 60: never reached on symmetric input; a guard, not a limit
      double g = (d[l + 1] - d[l]) / (2 * e[l]);
      double r = std::hypot(g, 1.0);
      g = d[m] - d[l] + e[l] / (g + (g >= 0 ? r : -r));
      double s = 1, c = 1, p = 0;
      bool underflow = false;
      for (size_t i = m; i-- > l;) {
        double f = s * e[i];
        const double b = c * e[i];
        r = std::sqrt(f * f + g * g);  // not hypot: 30% of the kernel, and the squares of a
                                         // float32-born Gram's entries cannot overflow a double
        e[i + 1] = r;
        if (r == 0) {
          d[i + 1] -= p;
          e[m] = 0;
          underflow = true;
          break;
        }
        s = f / r;
        c = g / r;
        g = d[i + 1] - p;
        r = (d[i] - g) * s + 2 * c * b;
        p = s * r;
        d[i + 1] = g + p;
        g = c * r - b;
      }
      if (underflow) continue;
      d[l] -= p;
      e[l] = g;
      e[m] = 0;
    }
  }
}

}  // namespace

double spectral_entropy(const float* a, const float* b, size_t rows, size_t cols) {
  if (rows == 0 || cols == 0) return std::numeric_limits<double>::quiet_NaN();
  const KernelTable& t = kernel_table();
  const rk::Ops& o = rk::ops_for(t.isa);
  // D with the shorter side as its columns, so the Gram matrix D^T D is n x n, n = min(rows, cols).
  const bool wide = cols > rows;
  const size_t m = wide ? cols : rows, n = wide ? rows : cols;
  // gemm_tn works on whole vectors of columns: pad the row stride to 8 doubles with zeros.
  const size_t np = (n + 7) / 8 * 8;
  std::vector<double> D(m * np, 0.0), G(n * np, 0.0), S(n * n), lambda(n);
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < cols; ++c) {
      const double x = b ? double(a[r * cols + c]) - double(b[r * cols + c]) : double(a[r * cols + c]);
      if (!std::isfinite(x)) return std::numeric_limits<double>::quiet_NaN();
      D[wide ? c * np + r : r * np + c] = x;
    }
  o.gemm_tn(D.data(), np, D.data(), np, G.data(), np, m, n, np);
  for (size_t i = 0; i < n; ++i)  // symmetric by construction; make it exactly so
    for (size_t j = 0; j <= i; ++j) S[i * n + j] = S[j * n + i] = 0.5 * (G[i * np + j] + G[j * np + i]);
  symmetric_eigenvalues(S.data(), n, lambda.data());
  double total = 0;
  for (double& l : lambda) total += (l = std::sqrt(std::max(l, 0.0)));
  if (!(total > 0)) return std::numeric_limits<double>::quiet_NaN();  // all zero: no spectrum
  double h = 0;
  for (double s : lambda)
    if (s > 0) {
      const double p = s / total;
      h -= p * std::log(p);
    }
  return h;
}

}  // namespace mother::cpu
