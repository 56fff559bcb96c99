// readGguf (async, on the libuv pool) and readGgufSync: a validated GGUF header (metadata and
// tensor infos, io/gguf.h) as the RawGguf of src/native.ts. Errors reject with the mapped
// mother::Error (code E_GGUF_* / E_IO_*, file, tensor).
#include <optional>

#include "exports.h"
#include "io/gguf.h"
#include "workers/errors.h"
#include "workers/file_parse.h"

namespace mother {

namespace {

Napi::Value value_to_js(Napi::Env env, const io::GgufValue& v) {
  switch (v.type) {
    case io::kGgufString: return Napi::String::New(env, v.text);
    case io::kGgufBool: return Napi::Boolean::New(env, v.number != 0);
    case io::kGgufArray: {
      Napi::Object o = Napi::Object::New(env);
      o.Set("itemType", Napi::String::New(env, io::gguf_value_type_name(v.item_type)));
      o.Set("length", Napi::Number::New(env, double(v.length)));
      Napi::Array items = Napi::Array::New(env, v.items.size());
      for (size_t i = 0; i < v.items.size(); ++i) items.Set(uint32_t(i), value_to_js(env, v.items[i]));
      o.Set("items", items);
      return o;
    }
    default:
      // 64-bit integers beyond 2^53 as their exact decimal string.
      if (!v.exact) return Napi::String::New(env, v.text);
      return Napi::Number::New(env, v.number);
  }
}

Napi::Object gguf_to_js(Napi::Env env, const std::string& path, const io::GgufFile& g) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("path", Napi::String::New(env, path));
  o.Set("fileSize", Napi::Number::New(env, double(g.file_size)));
  o.Set("version", Napi::Number::New(env, g.version));
  o.Set("alignment", Napi::Number::New(env, double(g.alignment)));
  o.Set("dataOffset", Napi::Number::New(env, double(g.data_offset)));
  Napi::Array kv = Napi::Array::New(env, g.kv.size());
  for (size_t i = 0; i < g.kv.size(); ++i) {
    Napi::Object e = Napi::Object::New(env);
    e.Set("key", Napi::String::New(env, g.kv[i].key));
    e.Set("type", Napi::String::New(env, io::gguf_value_type_name(g.kv[i].value.type)));
    e.Set("value", value_to_js(env, g.kv[i].value));
    kv.Set(uint32_t(i), e);
  }
  o.Set("kv", kv);
  Napi::Array tensors = Napi::Array::New(env, g.tensors.size());
  for (size_t i = 0; i < g.tensors.size(); ++i) {
    const io::GgufTensor& t = g.tensors[i];
    Napi::Object e = Napi::Object::New(env);
    e.Set("name", Napi::String::New(env, t.name));
    e.Set("ggmlType", Napi::Number::New(env, t.type));
    const char* tn = io::ggml_type_name(t.type);
    e.Set("type", tn ? Napi::Value(Napi::String::New(env, tn)) : env.Null());
    Napi::Array ne = Napi::Array::New(env, t.ne.size());
    for (size_t d = 0; d < t.ne.size(); ++d) ne.Set(uint32_t(d), Napi::Number::New(env, double(t.ne[d])));
    e.Set("ne", ne);
    e.Set("offset", Napi::Number::New(env, double(g.data_offset + t.offset)));
    e.Set("byteLength", t.known ? Napi::Number::New(env, double(t.nbytes)) : env.Null());
    tensors.Set(uint32_t(i), e);
  }
  o.Set("tensors", tensors);
  return o;
}

using Reader = FileParse<io::GgufFile, io::read_gguf, gguf_to_js>;

Napi::Value ReadGguf(const Napi::CallbackInfo& info) { return Reader::async(info, "readGguf"); }
Napi::Value ReadGgufSync(const Napi::CallbackInfo& info) { return Reader::sync(info, "readGguf"); }

}  // namespace

void InitGguf(Napi::Env env, Napi::Object exports) {
  exports.Set("readGguf", Napi::Function::New(env, ReadGguf, "readGguf"));
  exports.Set("readGgufSync", Napi::Function::New(env, ReadGgufSync, "readGgufSync"));
}

}  // namespace mother
