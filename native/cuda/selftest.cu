// Standalone check of the CUDA kernels against a float64 CPU reference, plus a small benchmark.
// Needs no Node.js: bench/gpu-check.sh builds and runs it on the GPU machine.
//   mother_cuda_selftest            parity checks (every dtype, odd sizes, NaN/Inf, near-equal models)
//   mother_cuda_selftest --bench    also times kurtosis / pairwise on N=32 x 4M float32 vs D2D copy
// Exit status: 0 all passed, 1 a check failed, 2 no usable CUDA device (message says why).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "cuda/cuda_check.h"
#include "cuda/kernels.cuh"

using namespace mother;
using namespace mother::cuda;

namespace {

int failures = 0, checks = 0;

void expect(bool ok, const std::string& what) {
  ++checks;
  if (!ok) {
    ++failures;
    if (failures <= 40) std::printf("FAIL %s\n", what.c_str());
  }
}

bool close(double got, double want, double rel, double abs_floor = 0) {
  if (std::isnan(want)) return std::isnan(got);
  if (std::isinf(want)) return got == want;
  return std::fabs(got - want) <= rel * std::fabs(want) + abs_floor;
}

// Host encoders / decoders for the stored types (round to nearest even, like torch).
uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
float f16_to_f32(uint16_t h) {
  const uint32_t s = (h >> 15) & 1u, e = (h >> 10) & 31u, m = h & 1023u;
  double v;
  if (e == 0) v = std::ldexp(double(m), -24);
  else if (e == 31) v = m ? NAN : INFINITY;
  else v = std::ldexp(double(m | 1024u), int(e) - 25);
  return float(s ? -v : v);
}
uint16_t f32_to_f16(float f) {  // by search over the exactly-decoded values (slow, tests only)
  if (std::isnan(f)) return 0x7e00;
  const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  const double a = std::fabs(double(f));
  if (a >= 65520.0) return sign | 0x7c00;
  uint16_t lo = 0, hi = 0x7bff;
  while (lo < hi) {  // largest code with value <= a
    const uint16_t mid = uint16_t((lo + hi + 1) / 2);
    if (f16_to_f32(mid) <= a) lo = mid; else hi = uint16_t(mid - 1);
  }
  uint16_t best = lo;
  if (lo < 0x7bff) {
    const double dl = a - f16_to_f32(lo), dh = f16_to_f32(uint16_t(lo + 1)) - a;
    if (dh < dl || (dh == dl && (lo & 1))) best = uint16_t(lo + 1);
  }
  return sign | best;
}

struct Data {
  DType type;
  size_t N, n;
  std::vector<uint8_t> raw;       // model-major, n elements each
  std::vector<double> exact;      // the stored values, widened exactly
  std::vector<float> as_f32;      // what the pairwise kernel sees (to_f32)
};

Data make(DType type, size_t N, size_t n, uint32_t seed, double nonfinite_rate, double near_equal = 0) {
  Data d{type, N, n, {}, {}, {}};
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> g(0.0, 1.0);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const size_t es = dtype_size(type);
  d.raw.resize(N * n * es);
  d.exact.resize(N * n);
  d.as_f32.resize(N * n);
  std::vector<double> base(n);
  for (auto& b : base) b = 0.02 * g(rng) + 0.001;
  for (size_t k = 0; k < N; ++k) {
    for (size_t i = 0; i < n; ++i) {
      double v = near_equal > 0 ? base[i] + near_equal * g(rng) : 0.02 * g(rng) * (1 + k % 3) + 0.001 * k;
      if (u(rng) < 0.01) v *= 40;  // heavy tail: kurtosis well away from 0
      if (nonfinite_rate > 0 && u(rng) < nonfinite_rate) {
        const double r = u(rng);
        v = r < 0.4 ? NAN : r < 0.7 ? INFINITY : -INFINITY;
      }
      const size_t at = k * n + i;
      uint8_t* p = d.raw.data() + at * es;
      double stored;
      switch (type) {
        case DType::F64: std::memcpy(p, &v, 8); stored = v; break;
        case DType::F32: { float f = float(v); std::memcpy(p, &f, 4); stored = f; break; }
        case DType::F16: { uint16_t h = f32_to_f16(float(v)); std::memcpy(p, &h, 2); stored = f16_to_f32(h); break; }
        default: { uint16_t h = f32_to_bf16(float(v)); std::memcpy(p, &h, 2); stored = bf16_to_f32(h); break; }
      }
      d.exact[at] = stored;
      d.as_f32[at] = float(stored);
    }
  }
  return d;
}

struct RefMoments { double n = 0, nonfinite = 0, mean = 0, m2 = 0, m3 = 0, m4 = 0, kurt = NAN; };

RefMoments ref_moments(const double* x, size_t n) {  // two-pass, float64
  RefMoments r;
  long double s = 0;
  for (size_t i = 0; i < n; ++i) {
    if (std::isfinite(x[i])) { s += x[i]; r.n += 1; } else r.nonfinite += 1;
  }
  if (r.n == 0) return r;
  r.mean = double(s / r.n);
  long double m2 = 0, m3 = 0, m4 = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) continue;
    const long double d = (long double)x[i] - r.mean, q = d * d;
    m2 += q; m3 += q * d; m4 += q * q;
  }
  r.m2 = double(m2); r.m3 = double(m3); r.m4 = double(m4);
  if (r.n >= 2 && r.m2 > 0) r.kurt = r.n * r.m4 / (r.m2 * r.m2) - 3.0;
  return r;
}

int sm_count() {
  int dev = 0, sms = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev), "cudaDeviceGetAttribute");
  return sms;
}
size_t max_smem() {
  int dev = 0, v = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  check(cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev), "cudaDeviceGetAttribute");
  return size_t(v);
}

template <typename T>
struct Dev {
  T* p = nullptr;
  explicit Dev(size_t count) { check(cudaMalloc(&p, std::max<size_t>(count, 1) * sizeof(T)), "cudaMalloc"); }
  ~Dev() { cudaFree(p); }
};

// Runs the kernels on `d` split into chunks of `chunk` elements (as the addon streams them) and
// compares every output with the float64 reference.
void check_case(const Data& d, size_t chunk, const std::string& label) {
  const size_t N = d.N, n = d.n, es = dtype_size(d.type);
  const int sms = sm_count();
  const size_t ld = (chunk + 3) / 4 * 4;
  Dev<uint8_t> raw(N * ld * es);
  Dev<float> f32(N * ld);
  Dev<MState> acc(N), mscratch(moments_scratch(N, chunk, sms));
  const PairwisePlan plan = pairwise_plan(N, sms, max_smem());
  Dev<double> pscratch(pairwise_scratch(plan)), pacc(4 * N * N);
  check(cudaMemset(acc.p, 0, N * sizeof(MState)), "cudaMemset");
  check(cudaMemset(pacc.p, 0, 4 * N * N * sizeof(double)), "cudaMemset");
  PairFlags all;
  all.sumsq = all.sumabs = all.maxabs = all.dot = true;
  std::vector<uint8_t> host(N * ld * es);
  for (size_t off = 0; off < n; off += chunk) {
    const size_t len = std::min(chunk, n - off);
    for (size_t k = 0; k < N; ++k)
      std::memcpy(host.data() + k * ld * es, d.raw.data() + (k * n + off) * es, len * es);
    check(cudaMemcpy(raw.p, host.data(), N * ld * es, cudaMemcpyHostToDevice), "cudaMemcpy");
    moments_accumulate(d.type, raw.p, N, len, ld, mscratch.p, acc.p, sms, 0);
    for (size_t k = 0; k < N; ++k) convert_to_f32(d.type, raw.p + k * ld * es, f32.p + k * ld, len, 0);
    pairwise_accumulate(plan, all, f32.p, len, ld, pscratch.p, pacc.p, 0);
  }
  check(cudaDeviceSynchronize(), "kernels");
  std::vector<MState> m(N);
  std::vector<double> pw(4 * N * N);
  check(cudaMemcpy(m.data(), acc.p, N * sizeof(MState), cudaMemcpyDeviceToHost), "cudaMemcpy");
  check(cudaMemcpy(pw.data(), pacc.p, pw.size() * sizeof(double), cudaMemcpyDeviceToHost), "cudaMemcpy");

  // Converted values must be exactly the CPU's to_f32 (checked on the last chunk of model 0).
  {
    const size_t off = (n - 1) / chunk * chunk, len = n - off;
    std::vector<float> back(len);
    check(cudaMemcpy(back.data(), f32.p, len * sizeof(float), cudaMemcpyDeviceToHost), "cudaMemcpy");
    bool same = true;
    for (size_t i = 0; i < len; ++i) {
      const float w = d.as_f32[off + i], g = back[i];
      same &= (std::isnan(w) && std::isnan(g)) || std::memcmp(&w, &g, 4) == 0;
    }
    expect(same, label + " convert exact");
  }
  for (size_t k = 0; k < N; ++k) {
    const RefMoments r = ref_moments(d.exact.data() + k * n, n);
    const std::string at = label + " model " + std::to_string(k);
    expect(m[k].n == r.n, at + " n " + std::to_string(m[k].n) + " vs " + std::to_string(r.n));
    expect(m[k].nonfinite == r.nonfinite, at + " nonfinite");
    const double scale = std::sqrt(r.m2 / std::max(r.n, 1.0)) + 1e-300;
    expect(close(m[k].mean, r.mean, 1e-12, 1e-12 * scale), at + " mean");
    expect(close(m[k].m2, r.m2, 1e-10, 1e-300), at + " m2");
    const double kurt = mstate_kurtosis(m[k]);
    expect(close(kurt, r.kurt, 1e-9, 1e-9), at + " kurtosis " + std::to_string(kurt) + " vs " + std::to_string(r.kurt));
  }
  for (size_t i = 0; i < N; ++i) {
    for (size_t j = i; j < N; ++j) {
      long double sq = 0, ab = 0, dt = 0, dtabs = 0;
      float mx = 0;
      bool nan = false;
      const float* a = d.as_f32.data() + i * n;
      const float* b = d.as_f32.data() + j * n;
      for (size_t e = 0; e < n; ++e) {
        const float df = a[e] - b[e];  // the difference as the kernels form it (float)
        const long double dd = df;
        sq += dd * dd; ab += std::fabs(dd);
        dt += (long double)a[e] * b[e]; dtabs += std::fabs((long double)a[e] * b[e]);
        if (std::isnan(df)) nan = true; else mx = std::max(mx, std::fabs(df));
      }
      const std::string at = label + " pair " + std::to_string(i) + "," + std::to_string(j);
      const size_t ij = i * N + j;
      // Float partials over <= E/L elements per thread, then double: 1e-5 relative.
      if (i < j) {
        expect(close(pw[0 * N * N + ij], double(sq), 1e-5), at + " sumsq " + std::to_string(pw[ij]) + " vs " + std::to_string(double(sq)));
        expect(close(pw[1 * N * N + ij], double(ab), 1e-5), at + " sumabs");
        const double want_mx = nan ? NAN : double(mx);
        expect(close(pw[2 * N * N + ij], want_mx, 0), at + " maxabs");
      }
      const double got_dt = pw[3 * N * N + ij];
      if (std::isfinite(double(dtabs)))
        expect(std::fabs(got_dt - double(dt)) <= 1e-5 * double(dtabs) + 1e-300, at + " dot");
      else
        expect(std::isnan(got_dt) == std::isnan(double(dt)), at + " dot nonfinite");
    }
  }
}

// Float64 reference of the spectral entropy of an m x n matrix (long double Gram matrix, serial
// cyclic Jacobi to convergence): independent of both the kernel and the CPU's Householder + QL.
double ref_spectral_entropy(const std::vector<double>& a, size_t rows, size_t cols) {
  const bool wide = cols > rows;
  const size_t m = wide ? cols : rows, n = wide ? rows : cols;
  auto D = [&](size_t k, size_t c) { return wide ? a[c * cols + k] : a[k * cols + c]; };
  for (double v : a) if (!std::isfinite(v)) return NAN;
  std::vector<long double> G(n * n, 0);
  for (size_t x = 0; x < n; ++x)
    for (size_t y = x; y < n; ++y) {
      long double s = 0;
      for (size_t k = 0; k < m; ++k) s += (long double)D(k, x) * D(k, y);
      G[x * n + y] = G[y * n + x] = s;
    }
  for (int sweep = 0; sweep < 100; ++sweep) {
    long double off = 0, all = 0;
    for (size_t i = 0; i < n * n; ++i) { all += G[i] * G[i]; if (i / n != i % n) off += G[i] * G[i]; }
    if (!(off > 1e-36L * all)) break;
    for (size_t p = 0; p + 1 < n; ++p)
      for (size_t q = p + 1; q < n; ++q) {
        const long double apq = G[p * n + q];
        if (apq == 0) continue;
        const long double th = (G[q * n + q] - G[p * n + p]) / (2 * apq);
        const long double t = (th >= 0 ? 1 : -1) / (std::fabs(th) + std::sqrt(th * th + 1));
        const long double c = 1 / std::sqrt(t * t + 1), sn = t * c;
        for (size_t r = 0; r < n; ++r) {
          const long double gp = G[r * n + p], gq = G[r * n + q];
          G[r * n + p] = c * gp - sn * gq;
          G[r * n + q] = sn * gp + c * gq;
        }
        for (size_t r = 0; r < n; ++r) {
          const long double gp = G[p * n + r], gq = G[q * n + r];
          G[p * n + r] = c * gp - sn * gq;
          G[q * n + r] = sn * gp + c * gq;
        }
      }
  }
  long double total = 0;
  for (size_t i = 0; i < n; ++i) total += std::sqrt(std::max(G[i * n + i], 0.0L));
  if (!(total > 0)) return NAN;
  long double h = 0;
  for (size_t i = 0; i < n; ++i) {
    const long double sg = std::sqrt(std::max(G[i * n + i], 0.0L));
    if (sg > 0) h -= (sg / total) * std::log(sg / total);
  }
  return double(h);
}

// spectral_entropy_batch against the reference: tall, wide, odd and the largest shorter side,
// every model alone and every pair, a low-rank and an all-zero difference, NaN.
void check_spectrum() {
  struct Shape { int R, C; };
  const Shape shapes[] = {{1, 1}, {5, 3}, {3, 5}, {37, 11}, {9, 300}, {64, 64}, {256, 64}, {64, 256}, {63, 200}};
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (const Shape& sh : shapes) {
    const int N = 4, E = sh.R * sh.C;
    std::vector<float> w(size_t(N) * E);
    for (auto& x : w) x = 0.05f * nd(rng);
    for (int e = 0; e < E; ++e) w[size_t(1) * E + e] = w[e] + 0.01f * float((e / sh.C) % 2) * float(e % sh.C) / float(sh.C);  // W1 - W0: rank 1
    for (int e = 0; e < E; ++e) w[size_t(2) * E + e] = w[e];  // W2 = W0: an all-zero difference
    if (E > 3) w[size_t(3) * E + 2] = NAN;
    std::vector<int2> tasks;
    for (int i = 0; i < N; ++i) tasks.push_back(make_int2(i, -1));
    for (int i = 0; i < N; ++i) for (int j = i + 1; j < N; ++j) tasks.push_back(make_int2(i, j));
    const int P = int(tasks.size());
    float* dw; int2* dt; double *dg, *dout;
    check(cudaMalloc(&dw, w.size() * sizeof(float)), "cudaMalloc");
    check(cudaMalloc(&dt, P * sizeof(int2)), "cudaMalloc");
    check(cudaMalloc(&dg, spectrum_gram_doubles(sh.R, sh.C, P) * sizeof(double)), "cudaMalloc");
    check(cudaMalloc(&dout, P * sizeof(double)), "cudaMalloc");
    check(cudaMemcpy(dw, w.data(), w.size() * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy");
    check(cudaMemcpy(dt, tasks.data(), P * sizeof(int2), cudaMemcpyHostToDevice), "cudaMemcpy");
    spectral_entropy_batch(dw, sh.R, sh.C, dt, P, dg, dout, nullptr);
    std::vector<double> got(P);
    check(cudaMemcpy(got.data(), dout, P * sizeof(double), cudaMemcpyDeviceToHost), "cudaMemcpy");
    cudaFree(dw); cudaFree(dt); cudaFree(dg); cudaFree(dout);
    for (int k = 0; k < P; ++k) {
      std::vector<double> d(E);
      for (int e = 0; e < E; ++e)
        d[e] = double(w[size_t(tasks[k].x) * E + e]) - (tasks[k].y >= 0 ? double(w[size_t(tasks[k].y) * E + e]) : 0.0);
      const double want = ref_spectral_entropy(d, sh.R, sh.C);
      const std::string at = "spectrum " + std::to_string(sh.R) + "x" + std::to_string(sh.C) + " task " + std::to_string(tasks[k].x) +
                             "," + std::to_string(tasks[k].y) + ": " + std::to_string(got[k]) + " vs " + std::to_string(want);
      // Rank-deficient blocks: eigenvalues at the float64 Gram's rounding (~1e-16 lambda_max) give
      // sigma ~1e-8 sigma_max each, ~n * 1e-8 * 18 = 1.2e-5 nats at n = 64, on either side.
      expect(std::isnan(want) ? std::isnan(got[k]) : std::fabs(got[k] - want) <= 5e-5, at);
    }
  }
}

float time_ms(cudaEvent_t a, cudaEvent_t b) {
  float ms = 0;
  check(cudaEventElapsedTime(&ms, a, b), "cudaEventElapsedTime");
  return ms;
}

template <typename F>
float median_ms(F&& f, int reps = 7) {
  cudaEvent_t a, b;
  check(cudaEventCreate(&a), "cudaEventCreate");
  check(cudaEventCreate(&b), "cudaEventCreate");
  f();  // warm-up
  std::vector<float> t;
  for (int r = 0; r < reps; ++r) {
    check(cudaEventRecord(a), "cudaEventRecord");
    f();
    check(cudaEventRecord(b), "cudaEventRecord");
    check(cudaEventSynchronize(b), "cudaEventSynchronize");
    t.push_back(time_ms(a, b));
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

void bench() {
  const size_t N = 32, n = size_t(4) << 20;  // N=32 x 4M float32: 512 MiB
  const int sms = sm_count();
  Dev<float> x(N * n), y(N * n);
  {
    std::vector<float> h(N * n);
    std::mt19937 rng(7);
    std::normal_distribution<float> g(0.f, 0.02f);
    for (auto& v : h) v = g(rng);
    check(cudaMemcpy(x.p, h.data(), h.size() * 4, cudaMemcpyHostToDevice), "cudaMemcpy");
  }
  const double bytes = double(N * n * 4);
  Dev<MState> acc(N), ms(moments_scratch(N, n, sms));
  const PairwisePlan plan = pairwise_plan(N, sms, max_smem());
  Dev<double> ps(pairwise_scratch(plan)), pa(4 * N * N);
  check(cudaMemset(acc.p, 0, N * sizeof(MState)), "cudaMemset");
  check(cudaMemset(pa.p, 0, 4 * N * N * sizeof(double)), "cudaMemset");

  const float copy = median_ms([&] { check(cudaMemcpyAsync(y.p, x.p, size_t(bytes), cudaMemcpyDeviceToDevice, 0), "copy"); });
  const float kurt = median_ms([&] { moments_accumulate(DType::F32, x.p, N, n, n, ms.p, acc.p, sms, 0); });
  auto pw = [&](bool sq, bool ab, bool mx, bool dt) {
    PairFlags f;
    f.sumsq = sq; f.sumabs = ab; f.maxabs = mx; f.dot = dt;
    return median_ms([&] { pairwise_accumulate(plan, f, x.p, n, n, ps.p, pa.p, 0); });
  };
  const float l2 = pw(true, false, false, false), l1 = pw(false, true, false, false),
              linf = pw(false, false, true, false), all = pw(true, true, true, true);
  // copy bandwidth counts bytes read + written (what the DRAM moves), kernels the bytes they read.
  std::printf("BENCH d2d_copy ms=%.4f GBps=%.1f\n", copy, 2 * bytes / copy / 1e6);
  std::printf("BENCH kurtosis ms=%.4f GBps=%.1f pct_of_copy=%.1f\n", kurt, bytes / kurt / 1e6,
              100.0 * (bytes / kurt) / (2 * bytes / copy));
  std::printf("BENCH pairwise_l2 ms=%.4f\n", l2);
  std::printf("BENCH pairwise_l1 ms=%.4f\n", l1);
  std::printf("BENCH pairwise_linf ms=%.4f\n", linf);
  std::printf("BENCH pairwise_all4 ms=%.4f\n", all);
  std::printf("BENCH plan N=%d L=%d block=%d grid=%dx%d E=%d smem=%zu\n", plan.N, plan.L, plan.block,
              plan.max_grid_x, plan.grid_y, plan.E, plan.smem);
}

}  // namespace

int main(int argc, char** argv) {
  const bool do_bench = argc > 1 && std::string(argv[1]) == "--bench";
  try {
    int count = 0;
    check(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
    if (count == 0) throw Error("E_CUDA_NO_DEVICE", "no CUDA device");
    cudaDeviceProp prop;
    check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
    std::printf("device 0: %s (sm_%d%d, %d SMs)\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount);
  } catch (const Error& e) {
    std::printf("SKIP %s: %s\n", e.code.c_str(), e.what());
    return 2;
  }
  try {
    const DType types[] = {DType::F32, DType::F16, DType::BF16, DType::F64};
    const size_t models[] = {1, 2, 3, 5, 8, 32, 37};
    uint32_t seed = 1;
    for (DType t : types) {
      for (size_t N : models) {
        for (size_t n : {size_t(1), size_t(3), size_t(513), size_t(20011)}) {
          const std::string label = std::string(dtype_name(t)) + " N=" + std::to_string(N) + " n=" + std::to_string(n);
          check_case(make(t, N, n, seed++, 0), n, label);
          if (n > 600) check_case(make(t, N, n, seed++, 0), 4099, label + " chunked");
        }
      }
      check_case(make(t, 6, 7777, seed++, 0.003), 1000, std::string(dtype_name(t)) + " nonfinite");
    }
    // Nearly identical models: differences ~1e-7 of the weights; direct differences keep 1e-4.
    check_case(make(DType::F32, 4, 100000, 99, 0, 1e-7), 100000, "near-equal");
    // Many models (several tile-pair groups per block column) and a constant tensor (kurtosis NaN).
    check_case(make(DType::F32, 70, 3001, 100, 0), 3001, "N=70");
    {
      Data c = make(DType::F32, 2, 1000, 5, 0);
      for (size_t i = 0; i < 2 * 1000; ++i) { float one = 1.f; std::memcpy(c.raw.data() + 4 * i, &one, 4); c.exact[i] = 1; c.as_f32[i] = 1; }
      check_case(c, 1000, "constant");
    }
    check_spectrum();
    std::printf("selftest: %d checks, %d failed\n", checks, failures);
    if (do_bench) bench();
  } catch (const Error& e) {
    std::printf("ERROR %s: %s\n", e.code.c_str(), e.what());
    return 1;
  }
  return failures ? 1 : 0;
}
