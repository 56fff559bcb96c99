// One file parsed off the main thread (a promise, on the libuv pool) or on it (sync), for the
// header readers (readHeader: safetensors, readGguf: GGUF). Parse(path) runs on the pool and may
// throw; ToJs(env, path, result) builds the JS object on the main thread. Errors reject (or throw)
// the mapped mother::Error (code, file, tensor).
#pragma once
#include <napi.h>

#include <optional>
#include <string>

#include "workers/errors.h"

namespace mother {

template <class Result, Result (*Parse)(const std::string&),
          Napi::Object (*ToJs)(Napi::Env, const std::string&, const Result&)>
struct FileParse {
  static std::string path_arg(const Napi::CallbackInfo& info, const char* fn) {
    if (info.Length() < 1 || !info[0].IsString())
      throw Error("E_INPUT_PATH", std::string(fn) + " expects a file path string");
    std::string p = info[0].As<Napi::String>().Utf8Value();
    if (p.empty() || p.find('\0') != std::string::npos)
      throw Error("E_INPUT_PATH", std::string(fn) + " expects a non-empty file path without NUL bytes");
    return p;
  }

  class Worker : public Napi::AsyncWorker {
   public:
    Worker(Napi::Env env, const char* fn, std::string path)
        : Napi::AsyncWorker(env, (std::string("mother:") + fn).c_str()), deferred_(Napi::Promise::Deferred::New(env)),
          path_(std::move(path)) {}
    Napi::Promise promise() { return deferred_.Promise(); }
    void Execute() override {
      try {
        result_ = Parse(path_);
      } catch (...) {
        error_ = current_exception_as_error();
      }
    }
    void OnOK() override {
      Napi::Env env = Env();
      Napi::HandleScope scope(env);
      if (error_) deferred_.Reject(to_js_error(env, *error_).Value());
      else deferred_.Resolve(ToJs(env, path_, result_));
    }

   private:
    Napi::Promise::Deferred deferred_;
    std::string path_;
    Result result_;
    std::optional<Error> error_;
  };

  static Napi::Value async(const Napi::CallbackInfo& info, const char* fn) {
    Napi::Env env = info.Env();
    std::string path;
    try {
      path = path_arg(info, fn);
    } catch (const Error& e) {
      auto d = Napi::Promise::Deferred::New(env);
      d.Reject(to_js_error(env, e).Value());
      return d.Promise();
    }
    auto* w = new Worker(env, fn, std::move(path));
    Napi::Promise p = w->promise();
    w->Queue();
    return p;
  }

  static Napi::Value sync(const Napi::CallbackInfo& info, const char* fn) {
    Napi::Env env = info.Env();
    try {
      std::string path = path_arg(info, fn);
      return ToJs(env, path, Parse(path));
    } catch (const Napi::Error&) {
      throw;
    } catch (...) {
      throw to_js_error(env, current_exception_as_error());
    }
  }
};

}  // namespace mother
