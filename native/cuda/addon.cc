// Registers the CUDA addon's exports (src/native.ts, CudaAddon): capabilities(device?), devices(),
// computeStats(job, onProgress, cancel) and CancelToken. The maths is in the .cu files and the
// streaming in stats_pipeline.cc; job parsing, results, errors and CancelToken are the CPU addon's
// own host code (workers/), compiled in, so both backends accept and return the same shapes.
#include <napi.h>

#include <optional>
#include <thread>

#include "cuda/device.h"
#include "cuda/stats_pipeline.h"
#include "workers/cancel.h"
#include "workers/errors.h"
#include "workers/job.h"
#include "workers/stats_async.h"
#include "workers/stats_runner.h"

namespace mother::cuda {
namespace {

int device_arg(const Napi::CallbackInfo& info) {
  if (info.Length() == 0 || info[0].IsUndefined() || info[0].IsNull()) return 0;
  if (!info[0].IsNumber()) throw Error("E_JOB_INVALID", "device must be a non-negative integer");
  const double d = info[0].As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 1024 && d == double(int(d)))) throw Error("E_JOB_RANGE", "device must be a non-negative integer");
  return int(d);
}

Napi::Value Capabilities(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    const DeviceInfo d = use_device(device_arg(info));
    int driver = 0, runtime = 0;
    cudaDriverGetVersion(&driver);
    cudaRuntimeGetVersion(&runtime);
    std::string sm = "sm_" + std::to_string(int(d.compute_capability[0] - '0')) +
                     d.compute_capability.substr(d.compute_capability.find('.') + 1);
    Napi::Object o = Napi::Object::New(env);
    o.Set("backend", "cuda");
    o.Set("isa", d.name);
    o.Set("detectedIsa", sm);
    o.Set("features", "device " + std::to_string(d.index) + ", compute " + d.compute_capability + ", " +
                          std::to_string(d.sm_count) + " SMs, " + std::to_string(d.memory_bytes >> 20) +
                          " MiB, driver " + std::to_string(driver) + ", runtime " + std::to_string(runtime));
    o.Set("arch", sm);
    o.Set("hardwareThreads", double(std::max(1u, std::thread::hardware_concurrency())));
    return o;
  } catch (const Error& e) {
    throw to_js_error(env, e);
  }
}

Napi::Value Devices(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    const auto list = list_devices();
    Napi::Array a = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); ++i) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("index", list[i].index);
      o.Set("name", list[i].name);
      o.Set("memoryBytes", double(list[i].memory_bytes));
      o.Set("computeCapability", list[i].compute_capability);
      a.Set(uint32_t(i), o);
    }
    return a;
  } catch (const Error& e) {
    throw to_js_error(env, e);
  }
}

// The CPU addon's AsyncWorker (workers/stats_async.h) running the CUDA pipeline.
Napi::Value ComputeStats(const Napi::CallbackInfo& info) {
  return ComputeStatsWith(info, run_cuda_stats, stats::planned_bytes);
}

}  // namespace
}  // namespace mother::cuda

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("capabilities", Napi::Function::New(env, mother::cuda::Capabilities, "capabilities"));
  exports.Set("devices", Napi::Function::New(env, mother::cuda::Devices, "devices"));
  exports.Set("computeStats", Napi::Function::New(env, mother::cuda::ComputeStats, "computeStats"));
  mother::CancelTokenWrap::Init(env, exports);
  return exports;
}

NODE_API_MODULE(mother_cuda, Init)
