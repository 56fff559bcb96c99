// STUB: replaced by the io work (readHeader, readHeaderSync).
#include "exports.h"
namespace mother {
void InitHeader(Napi::Env env, Napi::Object exports) {}
}
