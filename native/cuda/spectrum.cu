// spectrum: the spectral entropy of W_i - W_j (or of W_i) for a batch of tasks over one tensor's
// blocks, the same quantity as cpu::spectral_entropy (native/cpu/spectrum.cc).
//
// Two kernels, one thread block per task:
//  1. spectrum_gram_kernel: G = D^T D in float64, D the m x n difference with the shorter side as
//     its columns (n <= kSpectrumMaxSide). D is built on the fly from the float blocks, 32 of its
//     rows at a time staged in shared memory; each thread owns a few entries of G's upper triangle.
//  2. spectrum_jacobi_kernel: the eigenvalues of G by the cyclic two-sided Jacobi method in shared
//     memory, the n/2 disjoint rotations of a round-robin step applied in parallel (columns, then
//     rows), sweeps until the off-diagonal mass is below 1e-30 of the total; then sigma_i =
//     sqrt(max(lambda_i, 0)) and H = -sum p log p with p = sigma / sum sigma.
// Jacobi, not the CPU's Householder + QL: it parallelises over a block and is at least as accurate
// (relative accuracy of the eigenvalues); both leave ~1e-16 lambda_max on rank-deficient matrices,
// whose sigma moves H by ~n * 1e-8 * 18. A NaN or Inf in either block gives NaN (as the CPU); so
// does an all-zero difference (no spectrum).
#include <cmath>
#include <string>

#include "cuda/cuda_check.h"
#include "cuda/kernels.cuh"

namespace mother::cuda {
namespace {

constexpr int kGramThreads = 256;
constexpr int kJacobiThreads = 256;
constexpr int kRowsPerStage = 32;
constexpr int kMaxSweeps = 40;  // a guard: n <= 64 converges in ~10
constexpr int kEntriesPerThread = (kSpectrumMaxSide * (kSpectrumMaxSide + 1) / 2 + kGramThreads - 1) / kGramThreads;

__device__ __forceinline__ double quiet_nan() { return __longlong_as_double(0x7ff8000000000000ll); }

// Entry e of the upper triangle (row-major over a <= b) -> (a, b).
__device__ __forceinline__ void triangle_entry(int e, int n, int& a, int& b) {
  a = 0;
  while (e >= n - a) { e -= n - a; ++a; }
  b = a + e;
}

__global__ void __launch_bounds__(kGramThreads)
    spectrum_gram_kernel(const float* __restrict__ whole, int R, int C, const int2* __restrict__ tasks, double* __restrict__ gram) {
  __shared__ double stage[kRowsPerStage * kSpectrumMaxSide];
  const int2 task = tasks[blockIdx.x];
  const long long E = (long long)R * C;
  const float* wi = whole + task.x * E;
  const float* wj = task.y >= 0 ? whole + task.y * E : nullptr;
  const bool wide = C > R;  // D = W^T then, so that its columns are the shorter side
  const int m = wide ? C : R, n = wide ? R : C;
  const int entries = n * (n + 1) / 2;
  double acc[kEntriesPerThread];
  int ea[kEntriesPerThread], eb[kEntriesPerThread];  // this thread's entries of G, found once
  for (int q = 0; q < kEntriesPerThread; ++q) {
    acc[q] = 0.0;
    ea[q] = eb[q] = 0;
    const int e = threadIdx.x + q * blockDim.x;
    if (e < entries) triangle_entry(e, n, ea[q], eb[q]);
  }
  for (int k0 = 0; k0 < m; k0 += kRowsPerStage) {
    const int rows = min(kRowsPerStage, m - k0);
    // Stage D[k0 .. k0 + rows) x n; consecutive threads read consecutive floats of W.
    for (int s = threadIdx.x; s < rows * n; s += blockDim.x) {
      int k, c;
      if (wide) { c = s / rows; k = s % rows; }  // W[c][k0 + k]: contiguous in k
      else { k = s / n; c = s % n; }              // W[k0 + k][c]: contiguous in c
      const long long at = wide ? (long long)c * C + k0 + k : (long long)(k0 + k) * C + c;
      const double v = wj ? double(wi[at]) - double(wj[at]) : double(wi[at]);
      stage[k * n + c] = v;
    }
    __syncthreads();
    for (int q = 0; q < kEntriesPerThread; ++q) {
      if (threadIdx.x + q * blockDim.x >= entries) break;
      const int a = ea[q], b = eb[q];
      double s = 0.0;
      for (int k = 0; k < rows; ++k) s += stage[k * n + a] * stage[k * n + b];
      acc[q] += s;
    }
    __syncthreads();
  }
  double* g = gram + (long long)blockIdx.x * n * n;
  for (int q = 0; q < kEntriesPerThread; ++q) {
    if (threadIdx.x + q * blockDim.x >= entries) break;
    g[ea[q] * n + eb[q]] = acc[q];
    g[eb[q] * n + ea[q]] = acc[q];
  }
}

// Round-robin pairing (circle method) of np players, step s in [0, np - 1), slot k in [0, np / 2):
// every pair meets once per sweep. Returned with p < q.
__device__ __forceinline__ void tournament(int s, int k, int np, int& p, int& q) {
  const int r = np - 1;
  if (k == 0) { p = s % r; q = r; }
  else { p = (s + k) % r; q = (s - k + r) % r; }
  if (p > q) { const int t = p; p = q; q = t; }
}

// One round-robin step's rotations (c, s per pair slot) applied to A, np x np in shared memory:
// entry (r, p) of the pass is A[r * line + p * across], so (np, 1) rotates columns p and q of every
// row (A J) and (1, np) rows p and q of every column (J^T A). The pairs are disjoint: no races.
// Ends with a barrier.
__device__ void rotate_step(double* A, int np, int s, const double* rc, const double* rs, int line, int across) {
  for (int w = threadIdx.x; w < (np / 2) * np; w += blockDim.x) {
    const int k = w / np, r = w % np;
    int p, q;
    tournament(s, k, np, p, q);
    double* ap = A + r * line + p * across;
    double* aq = A + r * line + q * across;
    const double c = rc[k], sn = rs[k], vp = *ap, vq = *aq;
    *ap = c * vp - sn * vq;
    *aq = sn * vp + c * vq;
  }
  __syncthreads();
}

__global__ void __launch_bounds__(kJacobiThreads)
    spectrum_jacobi_kernel(const double* __restrict__ gram, int n, double* __restrict__ out) {
  // n padded to even np with a zero row and column: one more zero eigenvalue, which adds nothing
  // to sum sigma or to H.
  __shared__ double A[kSpectrumMaxSide * kSpectrumMaxSide];
  __shared__ double rc[kSpectrumMaxSide / 2], rs[kSpectrumMaxSide / 2];
  __shared__ double red[kJacobiThreads / 32];
  __shared__ int bad;
  const int np = n + (n & 1);
  const double* g = gram + (long long)blockIdx.x * n * n;
  if (threadIdx.x == 0) bad = 0;
  __syncthreads();
  for (int e = threadIdx.x; e < np * np; e += blockDim.x) {
    const int a = e / np, b = e % np;
    const double v = a < n && b < n ? g[a * n + b] : 0.0;
    if (!isfinite(v)) bad = 1;
    A[e] = v;
  }
  __syncthreads();
  if (bad) {
    if (threadIdx.x == 0) out[blockIdx.x] = quiet_nan();
    return;
  }
  // Block sum of a per-thread value (warp shuffles, then one warp over the warps' sums).
  auto block_sum = [&](double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
    __syncthreads();
    double t = 0.0;
    if (threadIdx.x < 32) {
      t = threadIdx.x < (int)(blockDim.x >> 5) ? red[threadIdx.x] : 0.0;
      for (int o = 16; o > 0; o >>= 1) t += __shfl_down_sync(0xffffffffu, t, o);
    }
    if (threadIdx.x == 0) red[0] = t;
    __syncthreads();
    t = red[0];
    __syncthreads();
    return t;
  };
  double part = 0.0;
  for (int e = threadIdx.x; e < np * np; e += blockDim.x) part += A[e] * A[e];
  const double total = block_sum(part);
  const int half = np / 2;
  for (int sweep = 0; sweep < kMaxSweeps && np > 1; ++sweep) {
    double off = 0.0;
    for (int e = threadIdx.x; e < np * np; e += blockDim.x)
      if (e / np != e % np) off += A[e] * A[e];
    off = block_sum(off);
    if (!(off > 1e-30 * total)) break;
    for (int s = 0; s < np - 1; ++s) {
      // The rotation of each pair from the values before this step (the pairs are disjoint).
      for (int k = threadIdx.x; k < half; k += blockDim.x) {
        int p, q;
        tournament(s, k, np, p, q);
        const double apq = A[p * np + q];
        double c = 1.0, sn = 0.0;
        if (apq != 0.0) {
          const double theta = (A[q * np + q] - A[p * np + p]) / (2.0 * apq);
          const double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
          c = 1.0 / sqrt(t * t + 1.0);
          sn = t * c;
        }
        rc[k] = c;
        rs[k] = sn;
      }
      __syncthreads();
      rotate_step(A, np, s, rc, rs, np, 1);  // A <- A J: columns p and q of every row
      rotate_step(A, np, s, rc, rs, 1, np);  // A <- J^T A: rows p and q of every column
      // Zeroed also where the rotation underflowed to the identity (|a_pq| < 1e-154 |a_qq - a_pp|:
      // dropping it moves the eigenvalues by less than their rounding), or the sweeps never end.
      for (int k = threadIdx.x; k < half; k += blockDim.x) {
        int p, q;
        tournament(s, k, np, p, q);
        A[p * np + q] = A[q * np + p] = 0.0;
      }
      __syncthreads();
    }
  }
  if (threadIdx.x == 0) {
    double sum = 0.0;
    for (int i = 0; i < np; ++i) sum += sqrt(fmax(A[i * np + i], 0.0));
    double h = quiet_nan();
    if (sum > 0) {
      h = 0.0;
      for (int i = 0; i < np; ++i) {
        const double sg = sqrt(fmax(A[i * np + i], 0.0));
        if (sg > 0) { const double p = sg / sum; h -= p * log(p); }
      }
    }
    out[blockIdx.x] = h;
  }
}

}  // namespace

size_t spectrum_gram_doubles(int R, int C, int tasks) {
  const size_t n = size_t(R < C ? R : C);
  return n * n * size_t(tasks);
}

void spectral_entropy_batch(const float* whole, int R, int C, const int2* tasks, int count, double* gram, double* out,
                            cudaStream_t stream) {
  const int n = R < C ? R : C;
  if (count <= 0) return;
  if (n < 1 || n > kSpectrumMaxSide)
    throw Error("E_CUDA_KERNEL", "spectral_entropy_batch: shorter side " + std::to_string(n) + " outside [1, " +
                                     std::to_string(kSpectrumMaxSide) + "]");
  spectrum_gram_kernel<<<count, kGramThreads, 0, stream>>>(whole, R, C, tasks, gram);
  check_launch("spectrum_gram_kernel");
  spectrum_jacobi_kernel<<<count, kJacobiThreads, 0, stream>>>(gram, n, out);
  check_launch("spectrum_jacobi_kernel");
}

}  // namespace mother::cuda
