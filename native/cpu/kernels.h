// The CPU kernel families. Each family lives in its own file (moments.cc, pairwise.cc, rank.cc,
// convert.cc) with scalar, SSE2/AVX2/AVX-512 (x86-64) or NEON (arm64) bodies chosen at run time by
// dispatch.cc. Kernels are pure: no I/O, no threads, no allocation on the hot path.
#pragma once
#include <cstddef>
#include <cstdint>
#include "common/dtype.h"

namespace mother::cpu {

// ---- dispatch.cc -------------------------------------------------------------------------------
enum class Isa : uint8_t { Scalar = 0, SSE2 = 1, AVX2 = 2, AVX512 = 3, NEON = 4 };
Isa detected_isa();               // best the CPU and OS support (cpuid + xgetbv), probed once
Isa active_isa();                 // what the kernels use now (detected, or forced)
void force_isa(Isa isa);          // tests run every variant; clamps to detected_isa()
const char* isa_name(Isa isa);    // "scalar" | "sse2" | "avx2" | "avx512" | "neon"
const char* cpu_features();       // e.g. "sse2 avx2 fma f16c avx512f avx512bw avx512_bf16"

// ---- convert.cc --------------------------------------------------------------------------------
// Widens n little-endian elements of `type` at src (any alignment) to float32 / float64.
void to_f32(DType type, const void* src, float* dst, size_t n);
void to_f64(DType type, const void* src, double* dst, size_t n);

// ---- dequant.cc --------------------------------------------------------------------------------
// Dequantises `nblocks` storage blocks of `type` at src (any alignment) to float32: nblocks x
// block_elems(type) values (common/dtype.h gives the block sizes and byte layouts; dequant.cc the
// formulas, bit-identical to ggml's reference dequantize_row_*). Plain types (F64/F32/F16/BF16)
// have one-element blocks and go through to_f32. A stretch that starts or ends inside a block is
// the caller's to slice (workers/stats_runner.cc reads the covering blocks).
void dequantize(DType type, const void* src, float* dst, size_t nblocks);

// ---- moments.cc --------------------------------------------------------------------------------
// Central moments of the finite values of a chunk, accumulated in float64 and merged with the
// stable pairwise formulas of Chan et al. / Pebay, so chunks and threads combine in any order.
// Policy: NaN and +-Inf are skipped and counted in `nonfinite` (kurtosis is of the finite values).
// Inside a chunk: blocks of 4096 values, float64 power sums of x - shift (shift = mean of the
// chunk's first 32 finite values, then the running mean), turned into central moments per block
// and merged; accurate to ~1e-13 relative for weight-like data, also with a large mean (1e4 + N(0,1)).
// Limit: |x - mean|^4 must stay below ~1e300 (|x| < ~1e75), true of any weights.
struct Moments {
  uint64_t n = 0;          // finite values seen
  uint64_t nonfinite = 0;  // NaN or +-Inf values seen (skipped)
  double mean = 0, m2 = 0, m3 = 0, m4 = 0;  // sums of (x-mean)^k
};
Moments moments_f32(const float* x, size_t n);
Moments moments_f64(const double* x, size_t n);
// Register width of the AVX-512 float32 moments body (same sums, in another order): 256 on AMD
// family 19h (Zen 4), which splits 512-bit operations in two halves and where 256-bit registers
// are ~10% faster; 512 elsewhere. set_moments_width(256 | 512) overrides it, 0 restores the
// default (benches and tests: kernels.momentsWidth).
unsigned moments_width();
void set_moments_width(unsigned bits);
Moments merge(const Moments& a, const Moments& b);
// Fisher (excess) kurtosis, biased: n*m4/m2^2 - 3, as scipy.stats.kurtosis defaults.
// NaN when n < 2 or every finite value is equal (m2 == 0).
double excess_kurtosis(const Moments& m);

// ---- pairwise.cc -------------------------------------------------------------------------------
// Accumulates, for one chunk of n elements held by N models (x[k] = model k's chunk), the sums
// behind every distance, for row models i in [row_begin, row_end) against every j > i (upper
// triangle, row-major N x N). Any output may be null when that metric is not wanted; maxabs must
// be initialised by the caller (0). Sums are accumulated in float32 lanes over blocks of 256-1024
// elements and flushed to float64 (relative error ~1e-7 whatever n). NaN in x_i or x_j makes the
// pair's sums and max NaN; differences beyond ~1e19 overflow the float32 squares (never in weights).
//   sumsq[i*N+j]  += sum (x_i - x_j)^2        (squared L2)
//   sumabs[i*N+j] += sum |x_i - x_j|          (L1)
//   maxabs[i*N+j]  = max(maxabs, max |x_i - x_j|)   (L-inf; NaN if any difference is NaN)
//   dot[i*N+j]    += sum x_i * x_j, also for j == i (norms), for cosine
// Rows are independent, so threads may split [0, N) into row ranges and share the outputs.
struct PairOutputs {
  double* sumsq = nullptr;
  double* sumabs = nullptr;
  double* maxabs = nullptr;
  double* dot = nullptr;
};
void pairwise_f32(const float* const* x, size_t N, size_t n, size_t row_begin, size_t row_end,
                  const PairOutputs& out);

// ---- rank.cc -----------------------------------------------------------------------------------
// Numerical rank of A - B for two rows x cols matrices (row-major float32, as widened from the
// stored type), computed in float64. A singular value counts when it exceeds
//   tol = max( max(rows,cols) * eps64 * sigma_max,
//              noise * u * rms(A,B) * (sqrt(rows) + sqrt(cols)) )
// where u is the storage type's unit roundoff: the second term is the spectral size of the
// rounding noise that storing A and B added, so rounding alone never raises the rank.
// Measured (test/kernels-rank.test.ts, 64..600 square, BF16 and F16): the largest singular value
// of independent rounding noise sits near noise = 0.8 (false ranks appear at 0.5, none at 1), so
// the default 2 leaves a 2.5x margin. What cannot work: a change smaller than the storage's own
// rounding (e.g. a LoRA update of 1e-3 |W| stored as BF16, whose rounding is ~2e-3 |W|) is below
// the noise and reads as rank 0 or less than r; at 3e-2 |W| BF16 gives r exactly.
// Exact up to `exact_limit` = min(rows, cols): Householder QR with column pivoting, stopped as soon
// as certificates prove the count (see rank.cc), else the one-sided Jacobi SVD of all of D (the
// reference, also forced by `reference`). The two agree except for a singular value within the
// rounding bound (~ max(rows,cols) min(rows,cols) eps |D|_F) of tol. Above exact_limit, a
// randomized range finder (2 power iterations) with sketches of 32, 64, ... columns, grown until
// 10 columns oversample the rank found or max_rank + 10 are used (returns max_rank + 1 when the
// rank exceeds max_rank).
struct RankOptions {
  double unit_roundoff = 0x1p-24;
  double noise = 2.0;
  size_t exact_limit = 512;
  size_t max_rank = 256;
  uint64_t seed = 0x5eed;
  bool reference = false;  // Jacobi SVD only (tests, benchmarks)
};
// Returns -1 when A or B holds NaN/Inf (no rank is defined). Cost of a rank-r difference: exact
// path ~ 4 max min r + max (min - r)^2 flops (64^2, r = 16: ~20 us); full rank ~ 2 max min^2;
// randomized ~ 12 rows cols l flops, l = 32 for r <= 22 (4096^2, r = 16: ~6 GFLOP, ~0.2 s AVX-512).
int diff_rank(const float* a, const float* b, size_t rows, size_t cols, const RankOptions& opt);

// ---- spectrum.cc -------------------------------------------------------------------------------
// Spectral entropy H = -sum p_i log p_i, p_i = sigma_i / sum sigma, of A - B (or of A when b is
// null) for rows x cols matrices (row-major float32), in float64; exp(H) is the effective rank.
// NaN when a value is NaN/Inf or the matrix is zero. Cost ~ max min^2 + (4/3) min^3 flops
// (256 x 64: ~1.4 MFLOP, ~0.2 ms; 512 x 128: ~11 MFLOP).
double spectral_entropy(const float* a, const float* b, size_t rows, size_t cols);

// ---- bandwidth.cc (diagnostics) ------------------------------------------------------------------
// Streams `bytes` of a freshly written buffer `passes` times with `threads` threads (a plain sum,
// the cheapest read there is) and returns the best pass in GB/s: the read bandwidth kernels are
// measured against. The threads start each pass together and a pass lasts until the last one
// ends, so the figure is what they reach together (on a machine whose cores are shared or
// throttled, 2 threads may reach no more than 1).
double read_bandwidth_gbs(size_t bytes, unsigned threads, unsigned passes);

}  // namespace mother::cpu
