#include "workers/job.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "common/error.h"

namespace mother::jobs {

namespace {

[[noreturn]] void bad(const char* code, const std::string& field, const std::string& msg) {
  throw Error(code, "invalid stats job: " + field + " " + msg);
}

std::string describe(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsArray()) return "an array";
  if (v.IsBoolean()) return "a boolean";
  if (v.IsNumber()) return "the number " + v.ToString().Utf8Value();
  if (v.IsString()) return "a string";
  if (v.IsFunction()) return "a function";
  return "an object";
}

Napi::Object need_object(const Napi::Value& v, const std::string& field) {
  if (!v.IsObject() || v.IsArray() || v.IsFunction()) bad("E_JOB_INVALID", field, "must be an object, received " + describe(v));
  return v.As<Napi::Object>();
}

Napi::Array need_array(const Napi::Value& v, const std::string& field) {
  if (!v.IsArray()) bad("E_JOB_INVALID", field, "must be an array, received " + describe(v));
  return v.As<Napi::Array>();
}

std::string need_string(const Napi::Value& v, const std::string& field) {
  if (!v.IsString()) bad("E_JOB_INVALID", field, "must be a string, received " + describe(v));
  return v.As<Napi::String>().Utf8Value();
}

bool opt_bool(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return false;
  if (!v.IsBoolean()) bad("E_JOB_INVALID", key, "must be a boolean, received " + describe(v));
  return v.As<Napi::Boolean>().Value();
}

// A non-negative integer <= max (and <= 2^53, so exact in a double).
uint64_t need_uint(const Napi::Value& v, const std::string& field, uint64_t min, uint64_t max) {
  if (!v.IsNumber()) bad("E_JOB_INVALID", field, "must be a number, received " + describe(v));
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::floor(d) || d < double(min) || d > double(max) || d > 9007199254740992.0)
    bad("E_JOB_RANGE", field,
        "must be an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "], received " + describe(v));
  return uint64_t(d);
}

}  // namespace

uint64_t StatsJob::total_bytes() const {
  uint64_t total = 0;
  for (const Tensor& t : tensors)
    for (const Source& s : t.sources) total += stored_bytes(s.dtype, t.numel());
  return total;
}

StatsJob parse_job(const Napi::Value& value) {
  Napi::Object o = need_object(value, "job");
  StatsJob job;
  job.models = size_t(need_uint(o.Get("models"), "models", 1, 1u << 20));
  job.kurtosis = opt_bool(o, "kurtosis");
  job.sumsq = opt_bool(o, "sumsq");
  job.sumabs = opt_bool(o, "sumabs");
  job.maxabs = opt_bool(o, "maxabs");
  job.dot = opt_bool(o, "dot");
  job.rank = opt_bool(o, "rank");
  job.per_tensor = opt_bool(o, "perTensor");
  job.spectrum = opt_bool(o, "spectrum");
  Napi::Value ss = o.Get("spectrumShort");
  if (!ss.IsUndefined()) job.spectrum_short = size_t(need_uint(ss, "spectrumShort", 1, 4096));
  Napi::Value sl = o.Get("spectrumLong");
  if (!sl.IsUndefined()) job.spectrum_long = size_t(need_uint(sl, "spectrumLong", 1, 1u << 16));
  else job.spectrum_long = std::max(job.spectrum_long, job.spectrum_short);  // the default rises with a larger short side
  if (job.spectrum_long < job.spectrum_short)
    bad("E_JOB_RANGE", "spectrumLong", "must be >= spectrumShort (" + std::to_string(job.spectrum_short) + ")");
  Napi::Value sp = o.Get("spectrumPairs");
  if (!sp.IsUndefined()) {
    Napi::Array pairs = need_array(sp, "spectrumPairs");
    if (pairs.Length() % 2) bad("E_JOB_INVALID", "spectrumPairs", "must hold pairs (an even number of model indices)");
    job.spectrum_pairs.reserve(pairs.Length());
    for (uint32_t k = 0; k < pairs.Length(); k += 2) {
      const std::string f = "spectrumPairs[" + std::to_string(k) + "]";
      const uint32_t i = uint32_t(need_uint(pairs.Get(k), f, 0, job.models - 1));
      const uint32_t j = uint32_t(need_uint(pairs.Get(k + 1), "spectrumPairs[" + std::to_string(k + 1) + "]", 0, job.models - 1));
      if (i == j) bad("E_JOB_RANGE", f, "pairs two different models (received " + std::to_string(i) + " twice)");
      job.spectrum_pairs.push_back(std::min(i, j));
      job.spectrum_pairs.push_back(std::max(i, j));
    }
  }
  Napi::Value th = o.Get("threads");
  if (!th.IsUndefined()) job.threads = unsigned(need_uint(th, "threads", 0, 1024));
  Napi::Value cb = o.Get("chunkBytes");
  if (!cb.IsUndefined()) job.chunk_bytes = need_uint(cb, "chunkBytes", 1, 1ull << 32);
  Napi::Value rn = o.Get("rankNoise");
  if (!rn.IsUndefined()) {
    if (!rn.IsNumber()) bad("E_JOB_INVALID", "rankNoise", "must be a number, received " + describe(rn));
    job.rank_noise = rn.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(job.rank_noise) || job.rank_noise < 0)
      bad("E_JOB_RANGE", "rankNoise", "must be a finite number >= 0, received " + describe(rn));
  }
  Napi::Value rl = o.Get("rankExactLimit");
  if (!rl.IsUndefined()) job.rank_exact_limit = size_t(need_uint(rl, "rankExactLimit", 1, 1u << 20));
  Napi::Value rm = o.Get("rankMaxRank");
  if (!rm.IsUndefined()) job.rank_max_rank = size_t(need_uint(rm, "rankMaxRank", 1, 1u << 20));
  Napi::Value dev = o.Get("device");
  if (!dev.IsUndefined()) job.device = int(need_uint(dev, "device", 0, 1024));

  Napi::Array tensors = need_array(o.Get("tensors"), "tensors");
  std::map<std::string, size_t> file_index;
  job.tensors.reserve(tensors.Length());
  for (uint32_t t = 0; t < tensors.Length(); ++t) {
    std::string tf = "tensors[" + std::to_string(t) + "]";
    Napi::Object to = need_object(tensors.Get(t), tf);
    Tensor tensor;
    tensor.name = need_string(to.Get("name"), tf + ".name");
    tensor.rows = need_uint(to.Get("rows"), tf + ".rows", 0, 1ull << 53);
    tensor.cols = need_uint(to.Get("cols"), tf + ".cols", 0, 1ull << 53);
    if (tensor.cols != 0 && tensor.rows > (1ull << 53) / tensor.cols)
      bad("E_JOB_RANGE", tf, "rows x cols is too large");
    Napi::Array sources = need_array(to.Get("sources"), tf + ".sources");
    if (sources.Length() != job.models)
      throw Error("E_JOB_MODELS", "invalid stats job: " + tf + " (\"" + tensor.name + "\") has " +
                                      std::to_string(sources.Length()) + " sources but models is " +
                                      std::to_string(job.models),
                  "", tensor.name);
    tensor.sources.reserve(job.models);
    for (uint32_t k = 0; k < sources.Length(); ++k) {
      std::string sf = tf + ".sources[" + std::to_string(k) + "]";
      Napi::Object so = need_object(sources.Get(k), sf);
      Source s;
      std::string file = need_string(so.Get("file"), sf + ".file");
      if (file.empty()) bad("E_JOB_INVALID", sf + ".file", "must not be empty");
      auto [it, inserted] = file_index.emplace(file, job.files.size());
      if (inserted) job.files.push_back(file);
      s.file = it->second;
      s.offset = need_uint(so.Get("offset"), sf + ".offset", 0, 1ull << 53);
      std::string dt = need_string(so.Get("dtype"), sf + ".dtype");
      if (!source_dtype(dt, &s.dtype))
        throw Error("E_JOB_DTYPE", "invalid stats job: " + sf + ".dtype \"" + dt + "\" of tensor \"" + tensor.name +
                                       "\" is not one of F64, F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K",
                    file, tensor.name);
      if (tensor.numel() % block_elems(s.dtype) != 0)
        bad("E_JOB_RANGE", sf + ".dtype",
            dt + " stores blocks of " + std::to_string(block_elems(s.dtype)) + " elements but tensor \"" + tensor.name +
                "\" has " + std::to_string(tensor.numel()));
      Napi::Value ph = so.Get("permuteHeads");
      if (!ph.IsUndefined()) {
        s.permute_heads = uint32_t(need_uint(ph, sf + ".permuteHeads", 0, 1u << 20));
        if (s.permute_heads && tensor.rows % (2ull * s.permute_heads) != 0)
          bad("E_JOB_RANGE", sf + ".permuteHeads",
              "must divide rows (" + std::to_string(tensor.rows) + ") into heads of an even number of rows, received " +
                  std::to_string(s.permute_heads));
      }
      tensor.sources.push_back(s);
    }
    job.tensors.push_back(std::move(tensor));
  }
  return job;
}

namespace {
void put(Napi::Env env, Napi::Object& o, const char* key, const std::vector<double>& v) {
  Napi::Float64Array a = Napi::Float64Array::New(env, v.size());
  std::copy(v.begin(), v.end(), a.Data());
  o.Set(key, a);
}
}  // namespace

Napi::Object build_result(Napi::Env env, const StatsOutput& out, const StatsJob& job) {
  Napi::Object r = Napi::Object::New(env);
  r.Set("backend", Napi::String::New(env, out.backend));
  r.Set("isa", Napi::String::New(env, out.isa));
  r.Set("threads", Napi::Number::New(env, out.threads));
  r.Set("bytesRead", Napi::Number::New(env, double(out.bytes_read)));
  r.Set("seconds", Napi::Number::New(env, out.seconds));
  if (!out.io.empty()) r.Set("io", Napi::String::New(env, out.io));
  if (!out.io_notes.empty()) {
    Napi::Array notes = Napi::Array::New(env, out.io_notes.size());
    for (size_t i = 0; i < out.io_notes.size(); ++i) notes.Set(uint32_t(i), Napi::String::New(env, out.io_notes[i]));
    r.Set("ioNotes", notes);
  }
  if (job.kurtosis) {
    Napi::Object m = Napi::Object::New(env);
    put(env, m, "n", out.n);
    put(env, m, "nonfinite", out.nonfinite);
    put(env, m, "mean", out.mean);
    put(env, m, "m2", out.m2);
    put(env, m, "kurtosis", out.kurtosis);
    r.Set("moments", m);
  }
  if (job.sumsq) put(env, r, "sumsq", out.sumsq);
  if (job.sumabs) put(env, r, "sumabs", out.sumabs);
  if (job.maxabs) put(env, r, "maxabs", out.maxabs);
  if (job.dot) put(env, r, "dot", out.dot);
  if (job.rank) put(env, r, "rank", out.rank);
  if (job.spectrum) {
    put(env, r, "spectrum", out.spectrum);
    put(env, r, "weightSpectrum", out.weight_spectrum);
    put(env, r, "spectrumNoise", out.spectrum_noise);
  }
  return r;
}

}  // namespace mother::jobs
