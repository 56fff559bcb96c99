// Which instruction set the kernels run: probed once (cpuid + xgetbv, so an OS that does not save
// the wide registers rules their ISA out), then one table of function pointers per ISA.
#include <atomic>
#include <string>
#include "cpu/isa_impl.h"
#if MOTHER_X86
#include <cpuid.h>
#endif

namespace mother::cpu {
namespace {

struct Probe {
  Isa best = Isa::Scalar;
  std::string features;
  bool zen4 = false;  // AMD family 19h: 512-bit operations run as two 256-bit halves
};

#if MOTHER_X86
uint64_t xgetbv0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t(hi) << 32) | lo;
}
#endif

Probe probe() {
  Probe p;
#if MOTHER_X86
  unsigned a = 0, b = 0, c = 0, d = 0;
  unsigned max_leaf = __get_cpuid_max(0, nullptr);
  __cpuid(1, a, b, c, d);
  const bool sse2 = d & (1u << 26);
  const bool fma = c & (1u << 12);
  const bool osxsave = c & (1u << 27);
  const bool avx = c & (1u << 28);
  const bool f16c = c & (1u << 29);
  uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  const bool os_ymm = (xcr0 & 0x6) == 0x6;            // SSE + AVX state saved
  const bool os_zmm = os_ymm && (xcr0 & 0xE0) == 0xE0;  // opmask + ZMM state saved
  bool avx2 = false, f = false, bw = false, vl = false, dq = false, bf16 = false;
  if (max_leaf >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    avx2 = b & (1u << 5);
    f = b & (1u << 16);
    dq = b & (1u << 17);
    bw = b & (1u << 30);
    vl = b & (1u << 31);
    __cpuid_count(7, 1, a, b, c, d);
    bf16 = a & (1u << 5);
  }
  auto add = [&](bool have, const char* name) {
    if (!have) return;
    if (!p.features.empty()) p.features += ' ';
    p.features += name;
  };
  add(sse2, "sse2");
  add(avx && os_ymm, "avx");
  add(avx2 && os_ymm, "avx2");
  add(fma && os_ymm, "fma");
  add(f16c && os_ymm, "f16c");
  add(f && os_zmm, "avx512f");
  add(bw && os_zmm, "avx512bw");
  add(vl && os_zmm, "avx512vl");
  add(dq && os_zmm, "avx512dq");
  add(bf16 && os_zmm, "avx512_bf16");
  if (sse2) p.best = Isa::SSE2;
  if (os_ymm && avx && avx2 && fma && f16c) p.best = Isa::AVX2;
  if (p.best == Isa::AVX2 && os_zmm && f && bw && vl && dq) p.best = Isa::AVX512;
  unsigned vendor[3];
  __cpuid(0, a, vendor[0], vendor[2], vendor[1]);
  __cpuid(1, a, b, c, d);
  const unsigned family = ((a >> 8) & 0xF) == 0xF ? 0xF + ((a >> 20) & 0xFF) : (a >> 8) & 0xF;
  p.zen4 = std::string(reinterpret_cast<const char*>(vendor), 12) == "AuthenticAMD" && family == 0x19;
#elif defined(__aarch64__)
  // Only the scalar bodies exist for arm64 so far (the compiler may still auto-vectorise them).
  p.features = "neon";
#endif
  return p;
}

const Probe& probed() {
  static const Probe p = probe();  // thread-safe initialisation (C++11 magic statics)
  return p;
}

#define MOTHER_TABLE(isa, s) \
  KernelTable { isa, impl::to_f32_##s, impl::to_f64_##s, impl::moments_f32_##s, impl::moments_f64_##s, \
                impl::pairwise_f32_##s, impl::axpy_##s, impl::dot_##s, impl::rot_##s }

const KernelTable kScalar = MOTHER_TABLE(Isa::Scalar, scalar);
#if MOTHER_X86
const KernelTable kSSE2 = MOTHER_TABLE(Isa::SSE2, sse2);
const KernelTable kAVX2 = MOTHER_TABLE(Isa::AVX2, avx2);
const KernelTable kAVX512 = MOTHER_TABLE(Isa::AVX512, avx512);
#endif

const KernelTable* table_for(Isa isa) {
  switch (isa) {
#if MOTHER_X86
    case Isa::SSE2: return &kSSE2;
    case Isa::AVX2: return &kAVX2;
    case Isa::AVX512: return &kAVX512;
#endif
    default: return &kScalar;
  }
}

// Ordered from weakest to strongest, so "clamp to detected" is a comparison of ranks.
int rank_of(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return 0;
    case Isa::SSE2: return 1;
    case Isa::AVX2: return 2;
    case Isa::AVX512: return 3;
    case Isa::NEON: return 1;
  }
  return 0;
}

std::atomic<const KernelTable*> g_active{nullptr};
std::atomic<unsigned> g_moments_width{0};  // 0: the default for this CPU

}  // namespace

Isa detected_isa() { return probed().best; }

const KernelTable& kernel_table() {
  const KernelTable* t = g_active.load(std::memory_order_acquire);
  if (!t) {
    const KernelTable* want = table_for(detected_isa());
    // Another thread may have forced an ISA meanwhile: keep theirs.
    if (!g_active.compare_exchange_strong(t, want, std::memory_order_acq_rel)) return *t;
    t = want;
  }
  return *t;
}

Isa active_isa() { return kernel_table().isa; }

void force_isa(Isa isa) {
  Isa best = detected_isa();
  bool same_family = (isa == Isa::NEON) == (best == Isa::NEON) || isa == Isa::Scalar;
  if (!same_family) isa = Isa::Scalar;  // e.g. NEON asked on x86-64: nothing better is certain
  if (rank_of(isa) > rank_of(best)) isa = best;
  g_active.store(table_for(isa), std::memory_order_release);
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::SSE2: return "sse2";
    case Isa::AVX2: return "avx2";
    case Isa::AVX512: return "avx512";
    case Isa::NEON: return "neon";
  }
  return "scalar";
}

const char* cpu_features() { return probed().features.c_str(); }

unsigned moments_width() {
  const unsigned w = g_moments_width.load(std::memory_order_relaxed);
  return w ? w : probed().zen4 ? 256 : 512;
}
void set_moments_width(unsigned bits) { g_moments_width.store(bits == 256 || bits == 512 ? bits : 0, std::memory_order_relaxed); }

}  // namespace mother::cpu
