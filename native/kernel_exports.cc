// capabilities() and the synchronous `kernels` object: small in-memory calls for tests, benches
// and diagnostics only (they run on the calling thread; real work goes through computeStats).
// Bad arguments are programmer errors and throw TypeError / RangeError with a clear message.
#include <cmath>
#include <cstring>
#include <string>
#include <thread>
#include <vector>
#include "cpu/kernels.h"
#include "exports.h"

namespace mother {
namespace {

using namespace mother::cpu;

const char* arch_name() {
#if defined(__x86_64__) || defined(_M_X64)
  return "x64";
#elif defined(__aarch64__)
  return "arm64";
#else
  return "unknown";
#endif
}

[[noreturn]] void type_error(Napi::Env env, const std::string& msg) {
  throw Napi::TypeError::New(env, "kernels." + msg);
}
[[noreturn]] void range_error(Napi::Env env, const std::string& msg) {
  throw Napi::RangeError::New(env, "kernels." + msg);
}

bool parse_isa(const std::string& s, Isa* out) {
  static const struct { const char* name; Isa isa; } names[] = {
      {"scalar", Isa::Scalar}, {"sse2", Isa::SSE2}, {"avx2", Isa::AVX2}, {"avx512", Isa::AVX512}, {"neon", Isa::NEON}};
  for (auto& n : names)
    if (s == n.name) { *out = n.isa; return true; }
  return false;
}

// Forces an ISA for the duration of one call and restores the previous one afterwards.
struct IsaScope {
  Isa prev;
  bool active = false;
  IsaScope(const Napi::CallbackInfo& info, size_t idx, const char* fn)
      : IsaScope(info.Env(), info.Length() > idx ? info[idx] : info.Env().Undefined(), fn) {}
  IsaScope(Napi::Env env, Napi::Value v, const char* fn) : prev(active_isa()) {
    if (v.IsUndefined() || v.IsNull()) return;
    Isa want;
    if (!v.IsString() || !parse_isa(v.As<Napi::String>().Utf8Value(), &want))
      type_error(env, std::string(fn) + ": isa must be 'scalar', 'sse2', 'avx2', 'avx512' or 'neon'");
    force_isa(want);
    active = true;
  }
  ~IsaScope() { if (active) force_isa(prev); }
};

DType get_dtype(const Napi::CallbackInfo& info, size_t idx, const char* fn) {
  DType t;
  if (info.Length() <= idx || !info[idx].IsString() ||
      !computable_dtype(info[idx].As<Napi::String>().Utf8Value(), &t))
    type_error(info.Env(), std::string(fn) + ": dtype must be 'F64', 'F32', 'F16' or 'BF16'");
  return t;
}

struct Bytes {
  const uint8_t* data;
  size_t length;
};

Bytes get_bytes(Napi::Env env, Napi::Value v, const std::string& what, DType t) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    type_error(env, what + " must be a Uint8Array (or Buffer)");
  auto a = v.As<Napi::Uint8Array>();
  Bytes b{a.Data(), a.ByteLength()};
  if (b.length % dtype_size(t) != 0)
    range_error(env, what + ": byte length " + std::to_string(b.length) + " is not a multiple of " +
                         std::to_string(dtype_size(t)) + " (the size of " + dtype_name(t) + ")");
  return b;
}

// float32 view of stored bytes: F32 data that is already aligned is used in place.
const float* as_f32(const Bytes& b, DType t, std::vector<float>& store) {
  const size_t n = b.length / dtype_size(t);
  if (t == DType::F32 && reinterpret_cast<uintptr_t>(b.data) % alignof(float) == 0)
    return reinterpret_cast<const float*>(b.data);
  store.resize(n);
  to_f32(t, b.data, store.data(), n);
  return store.data();
}

Napi::Value Capabilities(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto o = Napi::Object::New(env);
  o.Set("backend", "cpu");
  o.Set("isa", isa_name(active_isa()));
  o.Set("detectedIsa", isa_name(detected_isa()));
  o.Set("features", cpu_features());
  o.Set("arch", arch_name());
  o.Set("hardwareThreads", Napi::Number::New(env, std::max(1u, std::thread::hardware_concurrency())));
  o.Set("momentsWidth", Napi::Number::New(env, moments_width()));
  return o;
}

Napi::Value MomentsFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1) type_error(env, "moments(data, dtype, isa?): data is missing");
  const DType t = get_dtype(info, 1, "moments");
  const Bytes b = get_bytes(env, info[0], "moments: data", t);
  IsaScope scope(info, 2, "moments");
  const size_t n = b.length / dtype_size(t);
  Moments m;
  if (t == DType::F64) {
    std::vector<double> x(n);
    to_f64(t, b.data, x.data(), n);
    m = moments_f64(x.data(), n);
  } else {
    std::vector<float> store;
    m = moments_f32(as_f32(b, t, store), n);
  }
  auto o = Napi::Object::New(env);
  o.Set("n", Napi::Number::New(env, double(m.n)));
  o.Set("nonfinite", Napi::Number::New(env, double(m.nonfinite)));
  o.Set("mean", Napi::Number::New(env, m.mean));
  o.Set("m2", Napi::Number::New(env, m.m2));
  o.Set("m3", Napi::Number::New(env, m.m3));
  o.Set("m4", Napi::Number::New(env, m.m4));
  o.Set("kurtosis", Napi::Number::New(env, excess_kurtosis(m)));
  return o;
}

size_t get_index(Napi::Env env, Napi::Value v, const std::string& what, size_t max) {
  if (!v.IsNumber()) type_error(env, what + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d > double(max) || d != std::floor(d))
    range_error(env, what + " must be an integer in [0, " + std::to_string(max) + "]");
  return size_t(d);
}

// pairwise(data[], dtype, isa?, options?: { metrics?: string[], rowBegin?, rowEnd? })
// F64 inputs are rounded to float32 first (the kernel is float32). Unrequested metrics come back
// as empty arrays; requested ones as full symmetric N x N (distance diagonals 0, dot's = norms^2).
Napi::Value PairwiseFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArray()) type_error(env, "pairwise(data, dtype, isa?, options?): data must be an array of Uint8Array");
  const DType t = get_dtype(info, 1, "pairwise");
  auto arr = info[0].As<Napi::Array>();
  const size_t N = arr.Length();
  std::vector<std::vector<float>> stores(N);
  std::vector<const float*> x(N);
  size_t len = 0;
  for (size_t k = 0; k < N; ++k) {
    const Bytes b = get_bytes(env, arr.Get(uint32_t(k)), "pairwise: data[" + std::to_string(k) + "]", t);
    const size_t n = b.length / dtype_size(t);
    if (k == 0) len = n;
    else if (n != len)
      range_error(env, "pairwise: data[" + std::to_string(k) + "] has " + std::to_string(n) +
                           " elements, data[0] has " + std::to_string(len));
    x[k] = as_f32(b, t, stores[k]);
  }
  bool want[4] = {true, true, true, true};
  static const char* names[4] = {"sumsq", "sumabs", "maxabs", "dot"};
  size_t rb = 0, re = N;
  if (info.Length() > 3 && !info[3].IsUndefined()) {
    if (!info[3].IsObject()) type_error(env, "pairwise: options must be an object");
    auto o = info[3].As<Napi::Object>();
    if (o.Has("metrics") && !o.Get("metrics").IsUndefined()) {
      if (!o.Get("metrics").IsArray()) type_error(env, "pairwise: options.metrics must be an array of metric names");
      auto ms = o.Get("metrics").As<Napi::Array>();
      for (bool& w : want) w = false;
      for (uint32_t i = 0; i < ms.Length(); ++i) {
        const std::string s = ms.Get(i).IsString() ? ms.Get(i).As<Napi::String>().Utf8Value() : "";
        bool found = false;
        for (int m = 0; m < 4; ++m)
          if (s == names[m]) { want[m] = true; found = true; }
        if (!found) type_error(env, "pairwise: unknown metric '" + s + "' (sumsq, sumabs, maxabs, dot)");
      }
    }
    if (o.Has("rowBegin") && !o.Get("rowBegin").IsUndefined()) rb = get_index(env, o.Get("rowBegin"), "pairwise: options.rowBegin", N);
    if (o.Has("rowEnd") && !o.Get("rowEnd").IsUndefined()) re = get_index(env, o.Get("rowEnd"), "pairwise: options.rowEnd", N);
    if (rb > re)
      range_error(env, "pairwise: options.rowBegin " + std::to_string(rb) + " > rowEnd " + std::to_string(re));
  }
  IsaScope scope(info, 2, "pairwise");
  Napi::Float64Array outs[4];
  PairOutputs po;
  double** ptr[4] = {&po.sumsq, &po.sumabs, &po.maxabs, &po.dot};
  for (int m = 0; m < 4; ++m) {
    outs[m] = Napi::Float64Array::New(env, want[m] ? N * N : 0);  // zero-filled
    if (want[m] && N) *ptr[m] = outs[m].Data();
  }
  pairwise_f32(x.data(), N, len, rb, re, po);
  for (int m = 0; m < 4; ++m) {
    if (!want[m]) continue;
    double* o = outs[m].Data();
    for (size_t i = 0; i < N; ++i)
      for (size_t j = i + 1; j < N; ++j) o[j * N + i] = o[i * N + j];
  }
  auto r = Napi::Object::New(env);
  for (int m = 0; m < 4; ++m) r.Set(names[m], outs[m]);
  return r;
}

// rank(a, b, rows, cols, dtype, options?: { noise?, exactLimit?, maxRank?, seed?, isa? }) -> number
// (NaN when a or b holds NaN/Inf). The kernel is float32: F64 data is rounded first, so its
// unit roundoff counts as float32's.
Napi::Value RankFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5) type_error(env, "rank(a, b, rows, cols, dtype, options?): too few arguments");
  const DType t = get_dtype(info, 4, "rank");
  const Bytes a = get_bytes(env, info[0], "rank: a", t), b = get_bytes(env, info[1], "rank: b", t);
  const size_t rows = get_index(env, info[2], "rank: rows", size_t(1) << 31);
  const size_t cols = get_index(env, info[3], "rank: cols", size_t(1) << 31);
  const size_t n = rows * cols;  // < 2^62: no wrap; n * dtype_size may wrap, so compare by division
  const size_t es = dtype_size(t);
  if (a.length % es || b.length % es || a.length / es != n || b.length / es != n)
    range_error(env, "rank: a and b must hold rows * cols = " + std::to_string(n) + " elements of " + dtype_name(t));
  RankOptions opt;
  opt.unit_roundoff = t == DType::F64 ? 0x1p-24 : unit_roundoff(t);
  if (info.Length() > 5 && !info[5].IsUndefined()) {
    if (!info[5].IsObject()) type_error(env, "rank: options must be an object");
    auto o = info[5].As<Napi::Object>();
    auto num = [&](const char* key, double lo, double hi) -> double {
      Napi::Value v = o.Get(key);
      if (!v.IsNumber()) type_error(env, std::string("rank: options.") + key + " must be a number");
      const double d = v.As<Napi::Number>().DoubleValue();
      if (!(d >= lo && d <= hi)) range_error(env, std::string("rank: options.") + key + " is out of range");
      return d;
    };
    if (o.Has("noise") && !o.Get("noise").IsUndefined()) opt.noise = num("noise", 0, 1e6);
    if (o.Has("exactLimit") && !o.Get("exactLimit").IsUndefined()) opt.exact_limit = size_t(num("exactLimit", 0, 1e9));
    if (o.Has("maxRank") && !o.Get("maxRank").IsUndefined()) opt.max_rank = size_t(num("maxRank", 1, 1e9));
    if (o.Has("seed") && !o.Get("seed").IsUndefined()) opt.seed = uint64_t(num("seed", 0, 9007199254740991.0));
  }
  IsaScope scope(env, info.Length() > 5 && info[5].IsObject() ? info[5].As<Napi::Object>().Get("isa") : env.Undefined(), "rank");
  std::vector<float> sa, sb;
  const float* pa = as_f32(a, t, sa);
  const float* pb = as_f32(b, t, sb);
  const int r = diff_rank(pa, pb, rows, cols, opt);
  return Napi::Number::New(env, r < 0 ? NAN : double(r));
}

// spectralEntropy(a, b | null, rows, cols, dtype, isa?) -> number: H of sigma(A - B), or of
// sigma(A) when b is null (NaN when a value is NaN/Inf or the matrix is zero). Float32 kernel input.
Napi::Value SpectralEntropyFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5) type_error(env, "spectralEntropy(a, b, rows, cols, dtype, isa?): too few arguments");
  const DType t = get_dtype(info, 4, "spectralEntropy");
  const Bytes a = get_bytes(env, info[0], "spectralEntropy: a", t);
  const bool has_b = !info[1].IsNull() && !info[1].IsUndefined();
  const Bytes b = has_b ? get_bytes(env, info[1], "spectralEntropy: b", t) : a;
  const size_t rows = get_index(env, info[2], "spectralEntropy: rows", size_t(1) << 16);
  const size_t cols = get_index(env, info[3], "spectralEntropy: cols", size_t(1) << 16);
  const size_t n = rows * cols, es = dtype_size(t);
  if (a.length % es || b.length % es || a.length / es != n || b.length / es != n)
    range_error(env, "spectralEntropy: a and b must hold rows * cols = " + std::to_string(n) + " elements of " + dtype_name(t));
  if (std::min(rows, cols) > 4096) range_error(env, "spectralEntropy: min(rows, cols) must be <= 4096");
  IsaScope scope(env, info.Length() > 5 ? info[5] : env.Undefined(), "spectralEntropy");
  std::vector<float> sa, sb;
  const float* pa = as_f32(a, t, sa);
  const float* pb = has_b ? as_f32(b, t, sb) : nullptr;
  return Napi::Number::New(env, spectral_entropy(pa, pb, rows, cols));
}

Napi::Value ConvertFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3) type_error(env, "convert(data, dtype, to): too few arguments");
  const DType t = get_dtype(info, 1, "convert");
  const Bytes b = get_bytes(env, info[0], "convert: data", t);
  const std::string to = info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : "";
  const size_t n = b.length / dtype_size(t);
  if (to == "f32") {
    auto out = Napi::Float32Array::New(env, n);
    to_f32(t, b.data, out.Data(), n);
    return out;
  }
  if (to == "f64") {
    auto out = Napi::Float64Array::New(env, n);
    to_f64(t, b.data, out.Data(), n);
    return out;
  }
  type_error(env, "convert: to must be 'f32' or 'f64'");
}

// dequantize(data, type) -> Float32Array: whole storage blocks of a ggml block type (or of a
// plain type) dequantised by cpu::dequantize (tests and benches; computeStats reads GGUF itself).
Napi::Value DequantizeFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2) type_error(env, "dequantize(data, type): too few arguments");
  DType t;
  if (!info[1].IsString() || !source_dtype(info[1].As<Napi::String>().Utf8Value(), &t))
    type_error(env, "dequantize: type must be one of F64 F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q5_K Q6_K");
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    type_error(env, "dequantize: data must be a Uint8Array (or Buffer)");
  auto a = info[0].As<Napi::Uint8Array>();
  const size_t bb = block_bytes(t);
  if (a.ByteLength() % bb != 0)
    range_error(env, "dequantize: byte length " + std::to_string(a.ByteLength()) + " is not a multiple of the " +
                         dtype_name(t) + " block size " + std::to_string(bb));
  const size_t nb = a.ByteLength() / bb;
  auto out = Napi::Float32Array::New(env, nb * size_t(block_elems(t)));
  dequantize(t, a.Data(), out.Data(), nb);
  return out;
}

// readBandwidth(bytes, threads?, passes?) -> GB/s of a plain streaming sum (bench yardstick).
Napi::Value ReadBandwidthFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1) type_error(env, "readBandwidth(bytes, threads?, passes?): bytes is missing");
  const size_t bytes = get_index(env, info[0], "readBandwidth: bytes", size_t(1) << 36);
  const size_t threads = info.Length() > 1 && !info[1].IsUndefined() ? get_index(env, info[1], "readBandwidth: threads", 256) : 1;
  const size_t passes = info.Length() > 2 && !info[2].IsUndefined() ? get_index(env, info[2], "readBandwidth: passes", 1000000) : 3;
  return Napi::Number::New(env, read_bandwidth_gbs(bytes, unsigned(threads), unsigned(passes)));
}

// momentsWidth(bits?: 256 | 512 | 0) -> the width in use before the call. With bits, sets the
// register width of the AVX-512 moments body for the whole process (0: this CPU's default);
// for benches and tests comparing the two bodies.
Napi::Value MomentsWidthFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const unsigned before = moments_width();
  if (info.Length() > 0 && !info[0].IsUndefined()) {
    const size_t bits = get_index(env, info[0], "momentsWidth: bits", 512);
    if (bits != 0 && bits != 256 && bits != 512) type_error(env, "momentsWidth: bits must be 256, 512 or 0");
    set_moments_width(unsigned(bits));
  }
  return Napi::Number::New(env, before);
}

}  // namespace

void InitKernels(Napi::Env env, Napi::Object exports) {
  exports.Set("capabilities", Napi::Function::New(env, Capabilities, "capabilities"));
  auto k = Napi::Object::New(env);
  k.Set("moments", Napi::Function::New(env, MomentsFn, "moments"));
  k.Set("pairwise", Napi::Function::New(env, PairwiseFn, "pairwise"));
  k.Set("rank", Napi::Function::New(env, RankFn, "rank"));
  k.Set("spectralEntropy", Napi::Function::New(env, SpectralEntropyFn, "spectralEntropy"));
  k.Set("convert", Napi::Function::New(env, ConvertFn, "convert"));
  k.Set("dequantize", Napi::Function::New(env, DequantizeFn, "dequantize"));
  k.Set("readBandwidth", Napi::Function::New(env, ReadBandwidthFn, "readBandwidth"));
  k.Set("momentsWidth", Napi::Function::New(env, MomentsWidthFn, "momentsWidth"));
  exports.Set("kernels", k);
}

}  // namespace mother
