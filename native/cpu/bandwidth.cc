// Read-bandwidth probe (diagnostics, bench/kernels.js): the yardstick for the moments kernel's
// ">= 70% of read bandwidth" target. A sum is the cheapest complete read of a buffer.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>
#include "cpu/isa_impl.h"
#if MOTHER_X86
#include <immintrin.h>
#endif

namespace mother::cpu {
namespace {

double sum_plain(const double* x, size_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) { s0 += x[i]; s1 += x[i + 1]; s2 += x[i + 2]; s3 += x[i + 3]; }
  for (; i < n; ++i) s0 += x[i];
  return s0 + s1 + s2 + s3;
}

#if MOTHER_X86
MOTHER_AVX512 double sum_avx512(const double* x, size_t n) {
  __m512d a = _mm512_setzero_pd(), b = a, c = a, d = a;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a = _mm512_add_pd(a, _mm512_loadu_pd(x + i));
    b = _mm512_add_pd(b, _mm512_loadu_pd(x + i + 8));
    c = _mm512_add_pd(c, _mm512_loadu_pd(x + i + 16));
    d = _mm512_add_pd(d, _mm512_loadu_pd(x + i + 24));
  }
  return _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(a, b), _mm512_add_pd(c, d))) + sum_plain(x + i, n - i);
}
MOTHER_AVX2 double sum_avx2(const double* x, size_t n) {
  __m256d a = _mm256_setzero_pd(), b = a, c = a, d = a;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    a = _mm256_add_pd(a, _mm256_loadu_pd(x + i));
    b = _mm256_add_pd(b, _mm256_loadu_pd(x + i + 4));
    c = _mm256_add_pd(c, _mm256_loadu_pd(x + i + 8));
    d = _mm256_add_pd(d, _mm256_loadu_pd(x + i + 12));
  }
  __m256d s = _mm256_add_pd(_mm256_add_pd(a, b), _mm256_add_pd(c, d));
  alignas(32) double t[4];
  _mm256_store_pd(t, s);
  return t[0] + t[1] + t[2] + t[3] + sum_plain(x + i, n - i);
}
#endif

}  // namespace

double read_bandwidth_gbs(size_t bytes, unsigned threads, unsigned passes) {
  const size_t n = std::max<size_t>(bytes / 8, 1024);
  if (threads == 0) threads = 1;
  std::vector<double> buf(n);
  for (size_t i = 0; i < n; ++i) buf[i] = double(i & 1023);  // touch every page before timing
  double (*sum)(const double*, size_t) = sum_plain;
#if MOTHER_X86
  if (active_isa() == Isa::AVX512) sum = sum_avx512;
  else if (active_isa() == Isa::AVX2) sum = sum_avx2;
#endif
  // The threads start every pass together (a spinning barrier, outside the timing) and a pass
  // lasts from the first start to the last end: the rate the threads reach together. (Summing
  // per-thread rates would count twice a core that the threads in fact take turns on.)
  const unsigned P = std::max(passes, 1u);
  using clock = std::chrono::steady_clock;
  std::vector<clock::time_point> t_start(size_t(threads) * P), t_end(size_t(threads) * P);
  std::vector<double> sink(threads);
  std::atomic<unsigned> arrived{0};
  std::vector<std::thread> pool;
  for (unsigned th = 0; th < threads; ++th) {
    const size_t b = n * th / threads, e = n * (th + 1) / threads;
    pool.emplace_back([&, b, e, th] {
      double acc = 0;
      for (unsigned p = 0; p < P; ++p) {
        arrived.fetch_add(1);
        while (arrived.load() < (p + 1) * threads) std::this_thread::yield();
        t_start[size_t(p) * threads + th] = clock::now();
        acc += sum(buf.data() + b, e - b);
        t_end[size_t(p) * threads + th] = clock::now();
      }
      sink[th] = acc;
    });
  }
  for (auto& th : pool) th.join();
  double best_s = 1e300;
  for (unsigned p = 0; p < P; ++p) {
    auto first = t_start[size_t(p) * threads], last = t_end[size_t(p) * threads];
    for (unsigned th = 1; th < threads; ++th) {
      first = std::min(first, t_start[size_t(p) * threads + th]);
      last = std::max(last, t_end[size_t(p) * threads + th]);
    }
    best_s = std::min(best_s, std::chrono::duration<double>(last - first).count());
  }
  const double best = double(n) * 8 / best_s / 1e9;
  volatile double keep = 0;
  for (double v : sink) keep = keep + v;  // the sums must not be optimised away
  (void)keep;
  return best;
}

}  // namespace mother::cpu
