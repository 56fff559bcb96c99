// pairwise: sumsq / sumabs / maxabs / dot of x_i - x_j for every model pair, on one chunk.
//
// Models are grouped in tiles of kTile = 4. A block stages E elements of every model in shared
// memory (each chunk byte leaves HBM once for all pairs), and each thread owns one (row tile,
// column tile) pair: 16 model pairs accumulated in registers, in float over the E / L elements it
// sees per stage, then flushed to double. The L lanes of a tile pair are reduced with shuffles,
// each block writes one double partial per pair, and pairwise_reduce_kernel sums the partials in a
// fixed order (deterministic results) into the caller's running N x N sums.
// Direct differences, not a Gram matrix: no cancellation when models are nearly identical.
#include <algorithm>
#include <string>

#include "cuda/cuda_check.h"
#include "cuda/kernels.cuh"

namespace mother::cuda {
namespace {

constexpr int kTile = 4;
constexpr int kPairsPerTile = kTile * kTile;
constexpr int kBlock = 256;
constexpr unsigned kFull = 0xffffffffu;

// max that propagates NaN (the CPU's maxabs is NaN when any difference is NaN).
__device__ __forceinline__ float max_nan(float a, float b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  float r;
  asm("max.NaN.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
  return r;
#else
  return (a != a || b != b) ? __int_as_float(0x7fffffff) : fmaxf(a, b);
#endif
}
__device__ __forceinline__ double max_nan(double a, double b) {
  return (a != a || b != b) ? __longlong_as_double(0x7ff8000000000000ll) : fmax(a, b);
}

// Tile pair p -> (ti, tj), ti <= tj, enumerated row by row over the upper triangle.
__device__ __forceinline__ void tile_pair(int p, int T, int& ti, int& tj) {
  int r = 0;
  while (p >= T - r) { p -= T - r; ++r; }
  ti = r;
  tj = r + p;
}

template <bool SQ, bool AB, bool MX, bool DT>
__global__ void __launch_bounds__(kBlock)
    pairwise_kernel(const float* __restrict__ x, int N, int Npad, long long n, long long ld, int T, int P,
                    int L, int G, int E, double* __restrict__ part) {
  extern __shared__ float stage[];
  const int S = E + 1;  // row stride: odd, so rows of different tiles fall in different banks
  const int p0 = blockIdx.y * G;
  const int pc = min(G, P - p0);
  const int myp = threadIdx.x / L, lane = threadIdx.x % L;
  const bool active = myp < pc;
  int ti = 0, tj = 0;
  if (active) tile_pair(p0 + myp, T, ti, tj);
  const float* ra = stage + ti * kTile * S;
  const float* rb = stage + tj * kTile * S;

  double dsq[kPairsPerTile], dab[kPairsPerTile], ddt[kPairsPerTile];
  float fmx[kPairsPerTile];
#pragma unroll
  for (int k = 0; k < kPairsPerTile; ++k) { dsq[k] = 0; dab[k] = 0; ddt[k] = 0; fmx[k] = 0; }

  const int warp = threadIdx.x >> 5, wl = threadIdx.x & 31, nwarps = blockDim.x >> 5;
  for (long long base = (long long)blockIdx.x * E; base < n; base += (long long)gridDim.x * E) {
    const int len = int(min((long long)E, n - base));
    __syncthreads();  // previous stage fully consumed
    for (int m = warp; m < Npad; m += nwarps) {
      const float* src = x + m * ld + base;
      float* dst = stage + m * S;
      if (m < N) {
#pragma unroll 4
        for (int e = wl; e < E; e += 32) dst[e] = e < len ? src[e] : 0.f;
      } else {
        for (int e = wl; e < E; e += 32) dst[e] = 0.f;  // padding models: never written out
      }
    }
    __syncthreads();
    if (active) {
      float sq[kPairsPerTile], ab[kPairsPerTile], dt[kPairsPerTile];
#pragma unroll
      for (int k = 0; k < kPairsPerTile; ++k) { sq[k] = 0; ab[k] = 0; dt[k] = 0; }
      for (int e = lane; e < len; e += L) {
        float a[kTile], b[kTile];
#pragma unroll
        for (int r = 0; r < kTile; ++r) { a[r] = ra[r * S + e]; b[r] = rb[r * S + e]; }
#pragma unroll
        for (int r = 0; r < kTile; ++r) {
#pragma unroll
          for (int c = 0; c < kTile; ++c) {
            const int k = r * kTile + c;
            const float d = a[r] - b[c];
            if (SQ) sq[k] = fmaf(d, d, sq[k]);
            if (AB) ab[k] += fabsf(d);
            if (MX) fmx[k] = max_nan(fmx[k], fabsf(d));
            if (DT) dt[k] = fmaf(a[r], b[c], dt[k]);
          }
        }
      }
#pragma unroll
      for (int k = 0; k < kPairsPerTile; ++k) {
        if (SQ) dsq[k] += sq[k];
        if (AB) dab[k] += ab[k];
        if (DT) ddt[k] += dt[k];
      }
    }
  }

  // Reduce the L lanes of each tile pair (aligned groups inside one warp; every thread takes part).
  for (int o = L >> 1; o > 0; o >>= 1) {
#pragma unroll
    for (int k = 0; k < kPairsPerTile; ++k) {
      if (SQ) dsq[k] += __shfl_xor_sync(kFull, dsq[k], o);
      if (AB) dab[k] += __shfl_xor_sync(kFull, dab[k], o);
      if (DT) ddt[k] += __shfl_xor_sync(kFull, ddt[k], o);
      if (MX) fmx[k] = max_nan(fmx[k], __shfl_xor_sync(kFull, fmx[k], o));
    }
  }
  if (!active || lane != 0) return;
  const long long q0 = (long long)(p0 + myp) * kPairsPerTile;
  const long long stride = (long long)P * kPairsPerTile;  // per metric
#pragma unroll
  for (int k = 0; k < kPairsPerTile; ++k) {
    const long long at = (q0 + k) * gridDim.x + blockIdx.x;
    if (SQ) part[0 * stride * gridDim.x + at] = dsq[k];
    if (AB) part[1 * stride * gridDim.x + at] = dab[k];
    if (MX) part[2 * stride * gridDim.x + at] = double(fmx[k]);
    if (DT) part[3 * stride * gridDim.x + at] = ddt[k];
  }
}

// One warp per (metric, tile pair entry): sums the grid_x block partials in a fixed order.
__global__ void pairwise_reduce_kernel(const double* __restrict__ part, int grid_x, int P, int T, int N,
                                       unsigned metrics, double* __restrict__ acc) {
  const long long w = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  const long long per_metric = (long long)P * kPairsPerTile;
  if (w >= 4 * per_metric) return;  // whole warps leave together
  const int m = int(w / per_metric);
  const long long q = w - m * per_metric;
  if (!((metrics >> m) & 1u)) return;
  const double* src = part + (m * per_metric + q) * grid_x;
  double v = 0;
  for (int b = lane; b < grid_x; b += 32) v = m == 2 ? max_nan(v, src[b]) : v + src[b];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const double u = __shfl_xor_sync(kFull, v, o);
    v = m == 2 ? max_nan(v, u) : v + u;
  }
  if (lane != 0) return;
  const int p = int(q / kPairsPerTile), rc = int(q % kPairsPerTile);
  int ti, tj;
  tile_pair(p, T, ti, tj);
  const int i = ti * kTile + rc / kTile, j = tj * kTile + rc % kTile;
  if (i >= N || j >= N || i > j || (i == j && m != 3)) return;
  double* a = acc + (long long)m * N * N + (long long)i * N + j;
  *a = m == 2 ? max_nan(*a, v) : *a + v;
}

using Kernel = void (*)(const float*, int, int, long long, long long, int, int, int, int, int, double*);

template <bool SQ, bool AB, bool MX, bool DT>
Kernel pick4() { return pairwise_kernel<SQ, AB, MX, DT>; }

Kernel pick(PairFlags f) {
  static const Kernel table[16] = {
      pick4<0, 0, 0, 0>(), pick4<1, 0, 0, 0>(), pick4<0, 1, 0, 0>(), pick4<1, 1, 0, 0>(),
      pick4<0, 0, 1, 0>(), pick4<1, 0, 1, 0>(), pick4<0, 1, 1, 0>(), pick4<1, 1, 1, 0>(),
      pick4<0, 0, 0, 1>(), pick4<1, 0, 0, 1>(), pick4<0, 1, 0, 1>(), pick4<1, 1, 0, 1>(),
      pick4<0, 0, 1, 1>(), pick4<1, 0, 1, 1>(), pick4<0, 1, 1, 1>(), pick4<1, 1, 1, 1>()};
  return table[(f.sumsq ? 1 : 0) | (f.sumabs ? 2 : 0) | (f.maxabs ? 4 : 0) | (f.dot ? 8 : 0)];
}

}  // namespace

PairwisePlan pairwise_plan(size_t N, int sm_count, size_t max_smem_per_block) {
  PairwisePlan p;
  p.N = int(N);
  p.T = int((N + kTile - 1) / kTile);
  p.Npad = p.T * kTile;
  p.P = p.T * (p.T + 1) / 2;
  int L = 32;
  while (L > 1 && (long long)p.P * L > kBlock) L >>= 1;
  p.L = L;
  p.G = kBlock / L;
  const int groups = std::min(p.G, p.P);
  p.block = ((groups * L + 31) / 32) * 32;
  p.grid_y = (p.P + p.G - 1) / p.G;
  // Stage size: ~40 KiB (a few blocks per SM), 32..1024 elements per model, a multiple of 32.
  const size_t budget = 40 * 1024;
  size_t E = budget / (size_t(p.Npad) * sizeof(float));
  E = std::min<size_t>(1024, std::max<size_t>(32, E / 32 * 32));
  p.E = int(E);
  p.smem = size_t(p.Npad) * (E + 1) * sizeof(float);
  if (p.smem > max_smem_per_block)
    throw Error("E_CUDA_KERNEL", "CUDA pairwise: " + std::to_string(N) +
                                     " models need more shared memory than this device has per block (" +
                                     std::to_string(p.smem) + " > " + std::to_string(max_smem_per_block) +
                                     " bytes); use the CPU backend for this job");
  // Blocks: fill every SM ~4 times; bounded so partials stay small (<= ~64 MiB).
  const long long want = std::max(1LL, (long long)std::max(sm_count, 1) * 4 / p.grid_y);
  const long long per_block_bytes = 4LL * p.P * kPairsPerTile * (long long)sizeof(double);
  const long long cap = std::max(1LL, (64LL << 20) / per_block_bytes);
  p.max_grid_x = int(std::min(want, cap));
  return p;
}

size_t pairwise_scratch(const PairwisePlan& plan) {
  return size_t(4) * plan.P * kPairsPerTile * plan.max_grid_x;
}

void pairwise_accumulate(const PairwisePlan& plan, PairFlags flags, const float* x, size_t n, size_t ld,
                         double* scratch, double* acc, cudaStream_t stream) {
  if (!flags.any() || n == 0 || (plan.N < 2 && !flags.dot)) return;
  const Kernel k = pick(flags);
  if (plan.smem > 48 * 1024)
    check(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, int(plan.smem)),
          "cudaFuncSetAttribute(pairwise smem)");
  const long long tiles = ((long long)n + plan.E - 1) / plan.E;
  const int gx = int(std::min<long long>(tiles, plan.max_grid_x));
  // The scratch layout depends on gx; pass it so both kernels agree.
  k<<<dim3(unsigned(gx), unsigned(plan.grid_y)), plan.block, plan.smem, stream>>>(
      x, plan.N, plan.Npad, (long long)n, (long long)ld, plan.T, plan.P, plan.L, plan.G, plan.E, scratch);
  check_launch("pairwise kernel");
  const unsigned metrics = (flags.sumsq ? 1u : 0u) | (flags.sumabs ? 2u : 0u) | (flags.maxabs ? 4u : 0u) |
                           (flags.dot ? 8u : 0u);
  const long long warps = 4LL * plan.P * kPairsPerTile;
  const long long blocks = (warps * 32 + 255) / 256;
  pairwise_reduce_kernel<<<unsigned(blocks), 256, 0, stream>>>(scratch, gx, plan.P, plan.T, plan.N, metrics, acc);
  check_launch("pairwise reduce kernel");
}

}  // namespace mother::cuda
