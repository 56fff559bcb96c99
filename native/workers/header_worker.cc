// readHeader (async, on the libuv pool) and readHeaderSync: a validated safetensors header as the
// RawHeader of src/native.ts. Errors reject with the mapped mother::Error (code, file, tensor).
#include <optional>

#include "exports.h"
#include "io/safetensors.h"
#include "workers/errors.h"
#include "workers/file_parse.h"

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

using Reader = FileParse<io::Header, io::read_header, header_to_js>;

Napi::Value ReadHeader(const Napi::CallbackInfo& info) { return Reader::async(info, "readHeader"); }
Napi::Value ReadHeaderSync(const Napi::CallbackInfo& info) { return Reader::sync(info, "readHeader"); }

}  // namespace

void InitHeader(Napi::Env env, Napi::Object exports) {
  exports.Set("readHeader", Napi::Function::New(env, ReadHeader, "readHeader"));
  exports.Set("readHeaderSync", Napi::Function::New(env, ReadHeaderSync, "readHeaderSync"));
}

}  // namespace mother
