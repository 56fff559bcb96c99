// The one mapping from C++ failures to JavaScript errors, reused by every worker (and by the CUDA
// addon): a mother::Error becomes a JS Error with `code`, and `file` / `tensor` where known.
// Bad files never become TypeErrors.
#pragma once
#include <napi.h>

#include <exception>
#include <mutex>
#include <optional>

#include "common/error.h"

namespace mother {

// JS Error with message, code, file, tensor from a mother::Error.
Napi::Error to_js_error(Napi::Env env, const Error& e);

// Error{name: 'AbortError', code: 'ABORT_ERR'}, as DOM/Node aborts look.
Napi::Error abort_error(Napi::Env env, const char* message = "The operation was aborted");

// Converts whatever is being handled in a catch block into a mother::Error (unknown exceptions
// become E_INTERNAL, std::bad_alloc E_OUT_OF_MEMORY). Call only inside `catch (...)`.
Error current_exception_as_error();

// Thread-safe "first error wins" slot for worker threads: never throw across threads.
class FirstError {
 public:
  // Records the error being handled (call inside catch) unless one is already recorded.
  void capture_current();
  void set(const Error& e);
  bool has() const;
  std::optional<Error> get() const;

 private:
  mutable std::mutex mu_;
  std::optional<Error> err_;
};

}  // namespace mother
