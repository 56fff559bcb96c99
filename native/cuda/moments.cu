// moments: central moments (n, nonfinite, mean, m2..m4) of each model's chunk, for kurtosis.
//
// Each warp takes segments of 512 consecutive elements (coalesced loads, 16 per lane). Per segment
// it shifts by the segment's own mean estimate and sums (x - shift)^k in double, which avoids the
// cancellation of raw power sums, turns the sums into exact-enough central moments and merges them
// into a running state with Pebay's formulas (identical in every lane, so no divergence). Warps
// merge per block, blocks per model in moments_merge_kernel, into the caller's running state.
#include <cuda_fp16.h>

#include <algorithm>

#include "cuda/cuda_check.h"
#include "cuda/kernels.cuh"

namespace mother::cuda {
namespace {

constexpr int kPerLane = 16;
constexpr int kSegment = 32 * kPerLane;
constexpr int kWarps = 8;
constexpr unsigned kFull = 0xffffffffu;

struct F16Bits { uint16_t v; };
struct BF16Bits { uint16_t v; };

__device__ __forceinline__ double load(const float* p, long long i) { return double(p[i]); }
__device__ __forceinline__ double load(const double* p, long long i) { return p[i]; }
__device__ __forceinline__ double load(const F16Bits* p, long long i) {
  return double(__half2float(__ushort_as_half(p[i].v)));
}
__device__ __forceinline__ double load(const BF16Bits* p, long long i) {
  return double(__uint_as_float(uint32_t(p[i].v) << 16));
}

__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}
__device__ __forceinline__ int warp_sum(int v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}

template <typename In>
__global__ void __launch_bounds__(kWarps * 32)
    moments_kernel(const In* __restrict__ x, long long n, long long ld, MState* __restrict__ part) {
  const In* xm = x + blockIdx.y * ld;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  MState run = {0, 0, 0, 0, 0, 0};
  const long long segments = (n + kSegment - 1) / kSegment;
  for (long long s = (long long)blockIdx.x * kWarps + warp; s < segments; s += (long long)gridDim.x * kWarps) {
    const long long base = s * kSegment + lane;
    double v[kPerLane];
    double sum = 0;
    int finite = 0, bad = 0;
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
      const long long i = base + 32 * k;
      v[k] = i < n ? load(xm, i) : 0.0;
      const bool in = i < n, ok = in && isfinite(v[k]);
      if (!ok) v[k] = __longlong_as_double(0x7ff8000000000000ll);  // marks "skip" below
      if (ok) { sum += v[k]; ++finite; }
      if (in && !ok) ++bad;
    }
    sum = warp_sum(sum);
    finite = warp_sum(finite);
    bad = warp_sum(bad);
    run.nonfinite += bad;
    if (finite == 0) continue;  // uniform across the warp
    const double c = finite;
    double shift = sum / c;
    if (!isfinite(shift)) shift = 0;  // sum overflowed (huge F64 values): still well-defined
    double s1 = 0, s2 = 0, s3 = 0, s4 = 0;
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
      if (isnan(v[k])) continue;
      const double d = v[k] - shift, q = d * d;
      s1 += d;
      s2 += q;
      s3 = fma(q, d, s3);
      s4 = fma(q, q, s4);
    }
    s1 = warp_sum(s1);
    s2 = warp_sum(s2);
    s3 = warp_sum(s3);
    s4 = warp_sum(s4);
    // Shifted sums -> central moments of the segment (m1 is tiny: shift ~ mean).
    const double m1 = s1 / c, m1s = m1 * m1;
    MState seg;
    seg.n = c;
    seg.nonfinite = 0;
    seg.mean = shift + m1;
    seg.m2 = s2 - c * m1s;
    seg.m3 = s3 - 3.0 * m1 * s2 + 2.0 * c * m1s * m1;
    seg.m4 = s4 - 4.0 * m1 * s3 + 6.0 * m1s * s2 - 3.0 * c * m1s * m1s;
    if (seg.m2 < 0) seg.m2 = 0;
    if (seg.m4 < 0) seg.m4 = 0;
    run = mstate_merge(run, seg);
  }
  __shared__ MState warps[kWarps];
  if (lane == 0) warps[warp] = run;
  __syncthreads();
  if (threadIdx.x == 0) {
    MState b = warps[0];
    for (int w = 1; w < kWarps; ++w) b = mstate_merge(b, warps[w]);
    part[(long long)blockIdx.y * gridDim.x + blockIdx.x] = b;
  }
}

// One block per model: tree-merges that model's block partials into acc[model].
__global__ void moments_merge_kernel(const MState* __restrict__ part, int parts, MState* __restrict__ acc) {
  __shared__ MState s[256];
  const MState* p = part + (long long)blockIdx.x * parts;
  MState m = {0, 0, 0, 0, 0, 0};
  for (int i = threadIdx.x; i < parts; i += blockDim.x) m = mstate_merge(m, p[i]);
  s[threadIdx.x] = m;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w >>= 1) {
    if (threadIdx.x < w) s[threadIdx.x] = mstate_merge(s[threadIdx.x], s[threadIdx.x + w]);
    __syncthreads();
  }
  if (threadIdx.x == 0) acc[blockIdx.x] = mstate_merge(acc[blockIdx.x], s[0]);
}

int blocks_per_model(size_t models, size_t n, int sm_count) {
  const size_t segments = (n + kSegment - 1) / kSegment;
  const size_t need = (segments + kWarps - 1) / kWarps;
  // Enough blocks to fill the GPU a few times over, no more (each block ends in one partial).
  size_t cap = (size_t(sm_count > 0 ? sm_count : 1) * 8 + models - 1) / models;
  if (cap < 1) cap = 1;
  size_t b = need < cap ? need : cap;
  return int(b < 1 ? 1 : b);
}

}  // namespace

size_t moments_scratch(size_t models, size_t n, int sm_count) {
  // An upper bound for any launch over m <= models models of n' <= n elements.
  const size_t segments = (n + kSegment - 1) / kSegment;
  const size_t need = std::max<size_t>(1, (segments + kWarps - 1) / kWarps);
  return std::min(models * need, size_t(sm_count > 0 ? sm_count : 1) * 8 + models);
}

void moments_accumulate(DType type, const void* x, size_t models, size_t n, size_t ld, MState* scratch,
                        MState* acc, int sm_count, cudaStream_t stream) {
  if (models == 0 || n == 0) return;
  if (models > 65535) throw Error("E_CUDA_KERNEL", "CUDA moments: at most 65535 models per launch");
  const int bx = blocks_per_model(models, n, sm_count);
  const dim3 grid{unsigned(bx), unsigned(models)};
  const long long nn = (long long)n, lld = (long long)ld;
  switch (type) {
    case DType::F32:
      moments_kernel<<<grid, kWarps * 32, 0, stream>>>(static_cast<const float*>(x), nn, lld, scratch);
      break;
    case DType::F64:
      moments_kernel<<<grid, kWarps * 32, 0, stream>>>(static_cast<const double*>(x), nn, lld, scratch);
      break;
    case DType::F16:
      moments_kernel<<<grid, kWarps * 32, 0, stream>>>(static_cast<const F16Bits*>(x), nn, lld, scratch);
      break;
    case DType::BF16:
      moments_kernel<<<grid, kWarps * 32, 0, stream>>>(static_cast<const BF16Bits*>(x), nn, lld, scratch);
      break;
  }
  check_launch("moments kernel");
  moments_merge_kernel<<<unsigned(models), 256, 0, stream>>>(scratch, bx, acc);
  check_launch("moments merge kernel");
}

}  // namespace mother::cuda
