// STUB: replaced by the kernels work (capabilities + kernels.*).
#include "exports.h"
namespace mother {
void InitKernels(Napi::Env env, Napi::Object exports) {}
}
