// readHeader (async, on the libuv pool) and readHeaderSync: a validated safetensors header as the
// RawHeader of src/native.ts. Errors reject with the mapped mother::Error (code, file, tensor).
#include <optional>

#include "exports.h"
#include "io/safetensors.h"
#include "workers/errors.h"

namespace mother {

namespace {

Napi::Object header_to_js(Napi::Env env, const std::string& path, const io::Header& h) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("path", Napi::String::New(env, path));
  o.Set("fileSize", Napi::Number::New(env, double(h.file_size)));
  o.Set("headerLength", Napi::Number::New(env, double(h.header_length)));
  o.Set("dataOffset", Napi::Number::New(env, double(h.data_offset)));
  if (h.metadata) {
    Napi::Object md = Napi::Object::New(env);
    // Defined, not Set: a Set of "__proto__" would change the prototype (here: a no-op) and drop the key.
    for (const auto& [k, v] : *h.metadata)
      md.DefineProperty(Napi::PropertyDescriptor::Value(Napi::String::New(env, k), Napi::String::New(env, v),
                                                        napi_property_attributes(napi_writable | napi_enumerable |
                                                                                 napi_configurable)));
    o.Set("metadata", md);
  } else {
    o.Set("metadata", env.Null());
  }
  Napi::Array tensors = Napi::Array::New(env, h.tensors.size());
  for (size_t i = 0; i < h.tensors.size(); ++i) {
    const io::TensorEntry& t = h.tensors[i];
    Napi::Object e = Napi::Object::New(env);
    e.Set("name", Napi::String::New(env, t.name));
    e.Set("dtype", Napi::String::New(env, t.dtype));
    Napi::Array shape = Napi::Array::New(env, t.shape.size());
    // Dimensions above 2^53 cannot pass the size check (the file would be larger), so doubles are exact.
    for (size_t d = 0; d < t.shape.size(); ++d) shape.Set(uint32_t(d), Napi::Number::New(env, double(t.shape[d])));
    e.Set("shape", shape);
    e.Set("begin", Napi::Number::New(env, double(t.begin)));
    e.Set("end", Napi::Number::New(env, double(t.end)));
    tensors.Set(uint32_t(i), e);
  }
  o.Set("tensors", tensors);
  return o;
}

std::string path_arg(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsString())
    throw Error("E_INPUT_PATH", "readHeader expects a file path string");
  std::string p = info[0].As<Napi::String>().Utf8Value();
  if (p.empty() || p.find('\0') != std::string::npos)
    throw Error("E_INPUT_PATH", "readHeader expects a non-empty file path without NUL bytes");
  return p;
}

class HeaderWorker : public Napi::AsyncWorker {
 public:
  HeaderWorker(Napi::Env env, std::string path)
      : Napi::AsyncWorker(env, "mother:readHeader"), deferred_(Napi::Promise::Deferred::New(env)),
        path_(std::move(path)) {}
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      header_ = io::read_header(path_);
    } catch (...) {
      error_ = current_exception_as_error();
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (error_) deferred_.Reject(to_js_error(env, *error_).Value());
    else deferred_.Resolve(header_to_js(env, path_, header_));
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::string path_;
  io::Header header_;
  std::optional<Error> error_;
};

Napi::Value ReadHeader(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  try {
    path = path_arg(info);
  } catch (const Error& e) {
    auto d = Napi::Promise::Deferred::New(env);
    d.Reject(to_js_error(env, e).Value());
    return d.Promise();
  }
  auto* w = new HeaderWorker(env, std::move(path));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

Napi::Value ReadHeaderSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    std::string path = path_arg(info);
    return header_to_js(env, path, io::read_header(path));
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    throw to_js_error(env, current_exception_as_error());
  }
}

}  // namespace

void InitHeader(Napi::Env env, Napi::Object exports) {
  exports.Set("readHeader", Napi::Function::New(env, ReadHeader, "readHeader"));
  exports.Set("readHeaderSync", Napi::Function::New(env, ReadHeaderSync, "readHeaderSync"));
}

}  // namespace mother
