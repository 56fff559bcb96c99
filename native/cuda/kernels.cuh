// The CUDA kernel families (convert.cu, moments.cu, pairwise.cu, spectrum.cu) as host-callable launchers.
// Same definitions as the CPU kernels (native/cpu/kernels.h). Launchers only enqueue work on the
// given stream and never synchronize; callers check errors with cuda_check.h.
// Included by host C++ (the addon) and by nvcc (kernels, selftest): no device code in here beyond
// the MOTHER_HD moment merge, which both sides share so they merge identically.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "common/dtype.h"

#ifdef __CUDACC__
#define MOTHER_HD __host__ __device__
#else
#define MOTHER_HD
#endif

namespace mother::cuda {

// ---- moments.cu ---------------------------------------------------------------------------------
// Central moments of the finite values seen so far (counts as doubles: exact below 2^53).
struct MState {
  double n, nonfinite, mean, m2, m3, m4;  // m_k = sum of (x - mean)^k
};

// Pebay's pairwise update (the CPU's merge()): combine two disjoint parts in any order.
MOTHER_HD inline MState mstate_merge(const MState& a, const MState& b) {
  if (b.n == 0) { MState r = a; r.nonfinite += b.nonfinite; return r; }
  if (a.n == 0) { MState r = b; r.nonfinite += a.nonfinite; return r; }
  const double na = a.n, nb = b.n, n = na + nb;
  const double d = b.mean - a.mean, dn = d / n, dn2 = dn * dn;
  MState r;
  r.n = n;
  r.nonfinite = a.nonfinite + b.nonfinite;
  r.mean = a.mean + dn * nb;
  r.m2 = a.m2 + b.m2 + d * dn * na * nb;
  r.m3 = a.m3 + b.m3 + d * dn2 * na * nb * (na - nb) + 3.0 * dn * (na * b.m2 - nb * a.m2);
  r.m4 = a.m4 + b.m4 + d * dn2 * dn * na * nb * (na * na - na * nb + nb * nb) +
         6.0 * dn2 * (na * na * b.m2 + nb * nb * a.m2) + 4.0 * dn * (na * b.m3 - nb * a.m3);
  return r;
}

// Fisher (excess) biased kurtosis n*m4/m2^2 - 3; NaN when n < 2 or m2 == 0 (as the CPU).
MOTHER_HD inline double mstate_kurtosis(const MState& m) {
  if (m.n < 2 || !(m.m2 > 0)) {
    const uint64_t bits = 0x7ff8000000000000ull;  // quiet NaN, same on host and device
    double nan;
    memcpy(&nan, &bits, sizeof nan);
    return nan;
  }
  return m.n * m.m4 / (m.m2 * m.m2) - 3.0;
}

// Scratch (in MState) that moments_accumulate needs for `models` x n elements.
size_t moments_scratch(size_t models, size_t n, int sm_count);

// For models k in [0, models): acc[k] = merge(acc[k], moments of x_k), where x_k = the n elements
// of `type` at x + k * ld elements. NaN/Inf are counted in nonfinite and skipped.
void moments_accumulate(DType type, const void* x, size_t models, size_t n, size_t ld, MState* scratch,
                        MState* acc, int sm_count, cudaStream_t stream);

// ---- convert.cu ---------------------------------------------------------------------------------
// Widens n little-endian elements of `type` to float32 (F64 rounds to nearest, as the CPU's to_f32).
void convert_to_f32(DType type, const void* src, float* dst, size_t n, cudaStream_t stream);

// ---- pairwise.cu --------------------------------------------------------------------------------
// Which sums to accumulate (sumsq, sumabs, maxabs, dot; see cpu::pairwise_f32).
struct PairFlags {
  bool sumsq = false, sumabs = false, maxabs = false, dot = false;
  bool any() const { return sumsq || sumabs || maxabs || dot; }
};

// Launch geometry for N models, fixed per job: models are grouped in tiles of 4; a thread owns one
// (row tile, column tile) pair = 16 model pairs in registers; L threads share a tile pair.
struct PairwisePlan {
  int N = 0, Npad = 0;   // models, rounded up to the tile side
  int T = 0, P = 0;      // model tiles, tile pairs (upper triangle incl. diagonal)
  int L = 0, G = 0;      // lanes per tile pair (power of 2, <= 32), tile pairs per block
  int block = 0, grid_y = 0, max_grid_x = 0;
  int E = 0;             // elements per model staged in shared memory at a time
  size_t smem = 0;       // dynamic shared memory bytes
};

// Throws mother::Error E_CUDA_KERNEL when N is too large for shared memory on this device.
PairwisePlan pairwise_plan(size_t N, int sm_count, size_t max_smem_per_block);

// Doubles of scratch that pairwise_accumulate needs.
size_t pairwise_scratch(const PairwisePlan& plan);

// acc points at four N x N double matrices [sumsq | sumabs | maxabs | dot]; only the upper triangle
// (and the dot diagonal) is written: acc += sums of this chunk (maxabs: NaN-propagating max).
// x_k = n floats at x + k * ld (ld a multiple of 4). Partial sums run in float over at most
// E / L elements per thread, then in double.
void pairwise_accumulate(const PairwisePlan& plan, PairFlags flags, const float* x, size_t n, size_t ld,
                         double* scratch, double* acc, cudaStream_t stream);

// ---- spectrum.cu --------------------------------------------------------------------------------
// The largest shorter side of a block that spectral_entropy_batch takes (its matrix lives in shared
// memory); the default block is 64 x 256 (StatsJob::spectrum_short), so every default job fits.
constexpr int kSpectrumMaxSide = 64;

// Doubles of Gram scratch for `tasks` tasks of R x C blocks.
size_t spectrum_gram_doubles(int R, int C, int tasks);

// out[k] = spectral entropy (cpu::spectral_entropy) of task k over the N blocks of R x C floats at
// whole (block i at whole + i * R * C): tasks[k] = (i, j) is W_i - W_j, (i, -1) is W_i alone.
// gram: spectrum_gram_doubles(R, C, count) doubles. min(R, C) must be in [1, kSpectrumMaxSide]
// (E_CUDA_KERNEL otherwise).
void spectral_entropy_batch(const float* whole, int R, int C, const int2* tasks, int count, double* gram, double* out,
                            cudaStream_t stream);

}  // namespace mother::cuda
