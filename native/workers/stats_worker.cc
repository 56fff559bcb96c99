// computeStats(job, onProgress, cancelToken) -> Promise<StatsResult>, and CancelToken, for the CPU
// addon: the shared AsyncWorker (stats_async.h) running the CPU engine (stats_runner.cc).
#include "exports.h"
#include "workers/stats_async.h"

namespace mother {

namespace {
Napi::Value ComputeStats(const Napi::CallbackInfo& info) {
  return ComputeStatsWith(info, stats::run_stats, stats::planned_bytes);
}
}  // namespace

void InitStats(Napi::Env env, Napi::Object exports) {
  exports.Set("computeStats", Napi::Function::New(env, ComputeStats, "computeStats"));
  CancelTokenWrap::Init(env, exports);
}

}  // namespace mother
