// The computeStats AsyncWorker shared by the CPU and CUDA addons: validates the job on the main
// thread (bad jobs reject with E_JOB_*), runs a backend's engine off the main thread, delivers
// progress on the main thread (coalesced by AsyncProgressWorker, throttled by the engine), then a
// final (total, total) before resolving. An onProgress that throws cancels the job and the
// promise rejects with that exception.
#pragma once
#include <napi.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

#include "common/error.h"
#include "workers/cancel.h"
#include "workers/errors.h"
#include "workers/job.h"
#include "workers/stats_runner.h"

namespace mother {

using ProgressFn = std::function<void(uint64_t, uint64_t)>;
// A statistics engine: the CPU runner (stats::run_stats) or the CUDA pipeline.
using StatsEngine = jobs::StatsOutput (*)(const jobs::StatsJob&, const std::shared_ptr<std::atomic<bool>>&, const ProgressFn&);
using PlannedBytes = uint64_t (*)(const jobs::StatsJob&);

class StatsAsyncWorker : public Napi::AsyncProgressWorker<uint64_t> {
 public:
  StatsAsyncWorker(Napi::Env env, StatsEngine engine, uint64_t total, jobs::StatsJob job, CancelFlag cancel,
                   Napi::Value on_progress)
      : Napi::AsyncProgressWorker<uint64_t>(env, "mother:computeStats"),
        deferred_(Napi::Promise::Deferred::New(env)), engine_(engine), job_(std::move(job)),
        cancel_(std::move(cancel)), total_(total) {
    if (on_progress.IsFunction()) callback_ = Napi::Persistent(on_progress.As<Napi::Function>());
  }
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute(const ExecutionProgress& progress) override {
    try {
      out_ = engine_(job_, cancel_, [&](uint64_t done, uint64_t total) {
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
  // Calls onProgress; if it throws, the job is cancelled and rejects with that exception.
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
  StatsEngine engine_;
  jobs::StatsJob job_;
  CancelFlag cancel_;
  uint64_t total_;
  Napi::FunctionReference callback_;
  Napi::ObjectReference callback_error_;
  jobs::StatsOutput out_;
  bool aborted_ = false, finished_ = false;
  std::optional<Error> error_;
};

// computeStats(job, onProgress, cancelToken) for one engine: argument errors reject the promise
// (never throw synchronously), so callers see one failure path.
inline Napi::Value ComputeStatsWith(const Napi::CallbackInfo& info, StatsEngine engine, PlannedBytes planned) {
  Napi::Env env = info.Env();
  StatsAsyncWorker* w = nullptr;
  try {
    Napi::Value progress = info.Length() > 1 ? info[1] : env.Undefined();
    if (!progress.IsFunction() && !progress.IsNull() && !progress.IsUndefined())
      throw Error("E_JOB_INVALID", "onProgress must be a function or null");
    CancelFlag cancel = CancelTokenWrap::flag_of(info.Length() > 2 ? info[2] : env.Undefined());
    jobs::StatsJob job = jobs::parse_job(info.Length() > 0 ? info[0] : env.Undefined());
    uint64_t total = planned(job);
    w = new StatsAsyncWorker(env, engine, total, std::move(job), std::move(cancel), progress);
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

}  // namespace mother
