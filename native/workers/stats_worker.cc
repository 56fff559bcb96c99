// computeStats(job, onProgress, cancelToken) -> Promise<StatsResult>, and CancelToken.
// The job is validated on the main thread (bad jobs reject with E_JOB_*); the work runs off the
// main thread in stats_runner.cc; progress is delivered on the main thread, coalesced by
// AsyncProgressWorker and throttled by the runner, then a final (total, total) before resolving.
#include <optional>

#include "exports.h"
#include "workers/cancel.h"
#include "workers/errors.h"
#include "workers/job.h"
#include "workers/stats_runner.h"

namespace mother {

namespace {

class StatsWorker : public Napi::AsyncProgressWorker<uint64_t> {
 public:
  StatsWorker(Napi::Env env, jobs::StatsJob job, CancelFlag cancel, Napi::Value on_progress)
      : Napi::AsyncProgressWorker<uint64_t>(env, "mother:computeStats"),
        deferred_(Napi::Promise::Deferred::New(env)), job_(std::move(job)), cancel_(std::move(cancel)),
        total_(stats::planned_bytes(job_)) {
    if (on_progress.IsFunction()) callback_ = Napi::Persistent(on_progress.As<Napi::Function>());
  }
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute(const ExecutionProgress& progress) override {
    try {
      out_ = stats::run_stats(job_, cancel_, [&](uint64_t done, uint64_t total) {
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
  StatsWorker* w = nullptr;
  try {
    Napi::Value progress = info.Length() > 1 ? info[1] : env.Undefined();
    if (!progress.IsFunction() && !progress.IsNull() && !progress.IsUndefined())
      throw Error("E_JOB_INVALID", "onProgress must be a function or null");
    CancelFlag cancel = CancelTokenWrap::flag_of(info.Length() > 2 ? info[2] : env.Undefined());
    jobs::StatsJob job = jobs::parse_job(info.Length() > 0 ? info[0] : env.Undefined());
    w = new StatsWorker(env, std::move(job), std::move(cancel), progress);
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

void InitStats(Napi::Env env, Napi::Object exports) {
  exports.Set("computeStats", Napi::Function::New(env, ComputeStats, "computeStats"));
  CancelTokenWrap::Init(env, exports);
}

}  // namespace mother
