// STUB: replaced by the io work (computeStats, CancelToken).
#include "exports.h"
namespace mother {
void InitStats(Napi::Env env, Napi::Object exports) {}
}
