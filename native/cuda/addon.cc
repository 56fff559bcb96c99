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

// As the CPU addon's StatsWorker: work off the main thread, progress coalesced, a final
// (total, total), AbortError on cancel, errors with code / file / tensor.
class CudaStatsWorker : public Napi::AsyncProgressWorker<uint64_t> {
 public:
  CudaStatsWorker(Napi::Env env, jobs::StatsJob job, CancelFlag cancel, Napi::Value on_progress)
      : Napi::AsyncProgressWorker<uint64_t>(env, "mother:cudaComputeStats"),
        deferred_(Napi::Promise::Deferred::New(env)), job_(std::move(job)), cancel_(std::move(cancel)),
        total_(planned_bytes(job_)) {
    if (on_progress.IsFunction()) callback_ = Napi::Persistent(on_progress.As<Napi::Function>());
  }
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute(const ExecutionProgress& progress) override {
    try {
      out_ = run_cuda_stats(job_, cancel_, [&](uint64_t done, uint64_t total) {
        uint64_t v[2] = {done, total};
        progress.Send(v, 2);
      });
    } catch (const stats::Aborted&) {
      aborted_ = true;
    } catch (...) {
      error_ = current_exception_as_error();
    }
  }

  void OnProgress(const uint64_t* data, size_t count) override {
    if (finished_ || count < 2) return;
    Napi::HandleScope scope(Env());
    report(data[0], data[1]);
  }

  void OnOK() override {
    finished_ = true;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (!aborted_ && !error_ && callback_error_.IsEmpty()) report(total_, total_);
    if (!callback_error_.IsEmpty()) deferred_.Reject(callback_error_.Value());
    else if (aborted_) deferred_.Reject(abort_error(env).Value());
    else if (error_) deferred_.Reject(to_js_error(env, *error_).Value());
    else deferred_.Resolve(jobs::build_result(env, out_, job_));
  }

 private:
  void report(uint64_t done, uint64_t total) {
    if (callback_.IsEmpty() || !callback_error_.IsEmpty()) return;
    try {
      callback_.Call({Napi::Number::New(Env(), double(done)), Napi::Number::New(Env(), double(total))});
    } catch (const Napi::Error& e) {
      callback_error_ = Napi::Persistent(e.Value());
      cancel_->store(true);
    }
  }

  Napi::Promise::Deferred deferred_;
  jobs::StatsJob job_;
  CancelFlag cancel_;
  uint64_t total_;
  Napi::FunctionReference callback_;
  Napi::ObjectReference callback_error_;
  jobs::StatsOutput out_;
  bool aborted_ = false, finished_ = false;
  std::optional<Error> error_;
};

Napi::Value ComputeStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CudaStatsWorker* w = nullptr;
  try {
    Napi::Value progress = info.Length() > 1 ? info[1] : env.Undefined();
    if (!progress.IsFunction() && !progress.IsNull() && !progress.IsUndefined())
      throw Error("E_JOB_INVALID", "onProgress must be a function or null");
    CancelFlag cancel = CancelTokenWrap::flag_of(info.Length() > 2 ? info[2] : env.Undefined());
    jobs::StatsJob job = jobs::parse_job(info.Length() > 0 ? info[0] : env.Undefined());
    w = new CudaStatsWorker(env, std::move(job), std::move(cancel), progress);
  } catch (const Napi::Error& e) {
    auto d = Napi::Promise::Deferred::New(env);
    d.Reject(e.Value());
    return d.Promise();
  } catch (...) {
    auto d = Napi::Promise::Deferred::New(env);
    d.Reject(to_js_error(env, current_exception_as_error()).Value());
    return d.Promise();
  }
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
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
