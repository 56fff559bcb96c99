// Registers the CPU addon's exports. No maths and no I/O here: see io/, cpu/ and workers/.
// The exports are described, for TypeScript, in src/native.ts.
#include <napi.h>
#include "exports.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  mother::InitKernels(env, exports);  // capabilities, kernels.* (kernel_exports.cc)
  mother::InitHeader(env, exports);   // readHeader, readHeaderSync (workers/header_worker.cc)
  mother::InitGguf(env, exports);    // readGguf, readGgufSync (workers/gguf_worker.cc)
  mother::InitStats(env, exports);    // computeStats, CancelToken (workers/stats_worker.cc)
  return exports;
}

NODE_API_MODULE(mother_cpu, Init)
