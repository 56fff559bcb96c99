#include "workers/errors.h"

#include <new>

namespace mother {

Napi::Error to_js_error(Napi::Env env, const Error& e) {
  Napi::Error err = Napi::Error::New(env, e.what());
  Napi::Object o = err.Value();
  o.Set("code", Napi::String::New(env, e.code));
  if (!e.file.empty()) o.Set("file", Napi::String::New(env, e.file));
  if (!e.tensor.empty()) o.Set("tensor", Napi::String::New(env, e.tensor));
  return err;
}

Napi::Error abort_error(Napi::Env env, const char* message) {
  Napi::Error err = Napi::Error::New(env, message);
  Napi::Object o = err.Value();
  o.Set("name", Napi::String::New(env, "AbortError"));
  o.Set("code", Napi::String::New(env, "ABORT_ERR"));
  return err;
}

Error current_exception_as_error() {
  try {
    throw;
  } catch (const Error& e) {
    return e;
  } catch (const std::bad_alloc&) {
    return Error("E_OUT_OF_MEMORY", "out of memory");
  } catch (const std::exception& e) {
    return Error("E_INTERNAL", std::string("internal error: ") + e.what());
  } catch (...) {
    return Error("E_INTERNAL", "internal error: unknown exception");
  }
}

void FirstError::capture_current() { set(current_exception_as_error()); }

void FirstError::set(const Error& e) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!err_) err_ = e;
}

bool FirstError::has() const {
  std::lock_guard<std::mutex> lock(mu_);
  return err_.has_value();
}

std::optional<Error> FirstError::get() const {
  std::lock_guard<std::mutex> lock(mu_);
  return err_;
}

}  // namespace mother
