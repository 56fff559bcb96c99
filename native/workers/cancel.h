// CancelToken (src/native.ts): a JS object holding a shared atomic flag. Workers keep the
// shared_ptr, so the flag outlives the JS object if it is collected mid-job. Reusable by the CUDA
// addon: call CancelTokenWrap::Init in its module init.
#pragma once
#include <napi.h>

#include <atomic>
#include <memory>

namespace mother {

using CancelFlag = std::shared_ptr<std::atomic<bool>>;

class CancelTokenWrap : public Napi::ObjectWrap<CancelTokenWrap> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);  // exports.CancelToken
  explicit CancelTokenWrap(const Napi::CallbackInfo& info);
  // The flag of a CancelToken made by this addon; a fresh never-set flag for null/undefined.
  // Throws mother::Error E_JOB_INVALID for anything else.
  static CancelFlag flag_of(const Napi::Value& v);

 private:
  Napi::Value Cancel(const Napi::CallbackInfo& info);
  Napi::Value Cancelled(const Napi::CallbackInfo& info);
  CancelFlag flag_;
};

}  // namespace mother
