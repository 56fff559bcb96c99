#include "workers/cancel.h"

#include "common/error.h"

namespace mother {

// Type tag: proves an object was made by CancelTokenWrap before we unwrap it (napi >= 8).
static const napi_type_tag kCancelTag = {0x6d6f746865721a2bULL, 0x63616e63656c7431ULL};

void CancelTokenWrap::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(env, "CancelToken",
                                    {InstanceMethod<&CancelTokenWrap::Cancel>("cancel"),
                                     InstanceAccessor<&CancelTokenWrap::Cancelled>("cancelled")});
  exports.Set("CancelToken", ctor);
}

CancelTokenWrap::CancelTokenWrap(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<CancelTokenWrap>(info), flag_(std::make_shared<std::atomic<bool>>(false)) {
  info.This().As<Napi::Object>().TypeTag(&kCancelTag);
}

Napi::Value CancelTokenWrap::Cancel(const Napi::CallbackInfo& info) {
  flag_->store(true);
  return info.Env().Undefined();
}

Napi::Value CancelTokenWrap::Cancelled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), flag_->load());
}

CancelFlag CancelTokenWrap::flag_of(const Napi::Value& v) {
  if (v.IsNull() || v.IsUndefined()) return std::make_shared<std::atomic<bool>>(false);
  if (v.IsObject() && v.As<Napi::Object>().CheckTypeTag(&kCancelTag))
    return Unwrap(v.As<Napi::Object>())->flag_;
  throw Error("E_JOB_INVALID", "cancel must be a CancelToken made by this addon (new addon.CancelToken()) or null");
}

}  // namespace mother
