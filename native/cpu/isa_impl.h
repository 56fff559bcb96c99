// Internal to native/cpu: the per-instruction-set bodies of each kernel family and the dispatch
// table that dispatch.cc fills once. Not for use outside native/cpu (use kernels.h).
#pragma once
#include "cpu/kernels.h"

// GCC 12 warns about the deliberately undefined upper lanes inside its own AVX-512 intrinsics
// (_mm512_undefined_*): a known false positive, silenced for the kernel files only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// SIMD bodies are compiled per function with target attributes (never global -m flags), so one
// binary runs on any x86-64 and picks its variant at run time. Helpers called from such bodies
// must carry the same attribute (GCC and clang refuse to inline across target mismatches).
#if defined(__x86_64__) || defined(_M_X64)
#define MOTHER_X86 1
#define MOTHER_AVX2 __attribute__((target("avx2,fma,f16c")))
#define MOTHER_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))
#define MOTHER_AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma,f16c")))
#define MOTHER_AVX512_INLINE \
  static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))
#else
#define MOTHER_X86 0
#endif

namespace mother::cpu {

using ToF32Fn = void (*)(DType, const void*, float*, size_t);
using ToF64Fn = void (*)(DType, const void*, double*, size_t);
using MomentsF32Fn = Moments (*)(const float*, size_t);
using MomentsF64Fn = Moments (*)(const double*, size_t);
using PairwiseFn = void (*)(const float* const*, size_t, size_t, size_t, size_t, const PairOutputs&);
// y[0..n) += a * x[0..n): the inner loop of rank.cc's matrix products (auto-vectorised per ISA).
using AxpyFn = void (*)(double a, const double* x, double* y, size_t n);
// sum x[i]*y[i] over n, for Gram-Schmidt and Jacobi rotations.
using DotFn = double (*)(const double* x, const double* y, size_t n);
// Plane rotation of two vectors: (x, y) <- (c x - s y, s x + c y), for the Jacobi SVD.
using RotFn = void (*)(double* x, double* y, size_t n, double c, double s);

struct KernelTable {
  Isa isa;
  ToF32Fn to_f32;
  ToF64Fn to_f64;
  MomentsF32Fn moments_f32;
  MomentsF64Fn moments_f64;
  PairwiseFn pairwise_f32;
  AxpyFn axpy;
  DotFn dot;
  RotFn rot;
};

// The table of the active ISA (one atomic load; picked once, changed only by force_isa).
const KernelTable& kernel_table();

namespace impl {
#define MOTHER_DECLARE_ISA(suffix)                                                                 \
  void to_f32_##suffix(DType, const void*, float*, size_t);                                        \
  void to_f64_##suffix(DType, const void*, double*, size_t);                                       \
  Moments moments_f32_##suffix(const float*, size_t);                                              \
  Moments moments_f64_##suffix(const double*, size_t);                                             \
  void pairwise_f32_##suffix(const float* const*, size_t, size_t, size_t, size_t, const PairOutputs&); \
  void axpy_##suffix(double, const double*, double*, size_t);                                      \
  double dot_##suffix(const double*, const double*, size_t);                                      \
  void rot_##suffix(double*, double*, size_t, double, double);
MOTHER_DECLARE_ISA(scalar)
#if MOTHER_X86
MOTHER_DECLARE_ISA(sse2)
MOTHER_DECLARE_ISA(avx2)
MOTHER_DECLARE_ISA(avx512)
#endif
#undef MOTHER_DECLARE_ISA

}  // namespace impl

// Dense float64 products of rank.cc (rank_body.inc, one instance per ISA), shared with spectrum.cc.
//   gemm_nn(A, lda, B, ldb, C, ldc, m, k, n): C (m x n) = A (m x k) * B (k x n)
//   gemm_tn(A, lda, B, ldb, C, ldc, m, n, l): C (n x l) = A^T * B, A m x n, B m x l
namespace rk {
using GemmFn = void (*)(const double*, size_t, const double*, size_t, double*, size_t, size_t, size_t, size_t);
using HouseFn = void (*)(const double*, size_t, double, double* const*, size_t, size_t);
struct Ops {
  GemmFn gemm_nn, gemm_tn;
  HouseFn house;
};
const Ops& ops_for(Isa isa);
}  // namespace rk

namespace impl {
// Shared by the moments bodies: power sums of d = x - shift over one block -> central moments.
Moments moments_from_power_sums(uint64_t n, uint64_t nonfinite, double shift, double s1, double s2,
                                double s3, double s4);
}  // namespace impl

}  // namespace mother::cpu
