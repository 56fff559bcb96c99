#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <unordered_set>

#include "common/error.h"
#include "common/json.h"
#include "io/file_reader.h"

namespace mother::io {

uint64_t TensorEntry::numel() const {
  uint64_t n = 1;
  for (uint64_t d : shape) n *= d;
  return n;
}

size_t safetensors_dtype_size(const std::string& t) {
  if (t == "F64" || t == "I64" || t == "U64") return 8;
  if (t == "F32" || t == "I32" || t == "U32") return 4;
  if (t == "F16" || t == "BF16" || t == "I16" || t == "U16") return 2;
  if (t == "BOOL" || t == "U8" || t == "I8" || t == "F8_E4M3" || t == "F8_E5M2" || t == "F8_E8M0") return 1;
  return 0;
}

namespace {

[[noreturn]] void fail(const char* code, const std::string& path, const std::string& msg,
                       const std::string& tensor = {}) {
  std::string where = tensor.empty() ? "" : " (tensor \"" + tensor + "\")";
  throw Error(code, "invalid safetensors file " + path + where + ": " + msg, path, tensor);
}

uint64_t read_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

TensorEntry parse_entry(const std::string& name, const json::Value& v, uint64_t data_size,
                        const std::string& path) {
  if (!v.is_object())
    fail("E_HEADER_FIELD", path, std::string("a tensor entry must be an object, found ") + json::kind_name(v.kind), name);
  if (const std::string* dup = v.find_duplicate_key())
    fail("E_HEADER_FIELD", path, "key \"" + *dup + "\" appears twice in the tensor entry", name);
  TensorEntry e;
  e.name = name;

  const json::Value* dtype = v.find("dtype");
  if (!dtype || !dtype->is_string()) fail("E_HEADER_FIELD", path, "missing or non-string \"dtype\"", name);
  e.dtype = dtype->text;
  size_t esize = safetensors_dtype_size(e.dtype);
  if (esize == 0) fail("E_HEADER_DTYPE", path, "unknown dtype \"" + e.dtype + "\"", name);

  const json::Value* shape = v.find("shape");
  if (!shape || !shape->is_array()) fail("E_HEADER_FIELD", path, "missing or non-array \"shape\"", name);
  uint64_t numel = 1;
  bool overflow = false;
  for (const json::Value& d : shape->items) {
    if (!d.is_number())
      fail("E_HEADER_SHAPE", path, std::string("shape holds a ") + json::kind_name(d.kind) + ", not an integer", name);
    uint64_t x;
    if (!json::parse_u64(d.text, &x)) {
      if (json::is_unsigned_integer_literal(d.text))
        fail("E_HEADER_SHAPE", path, "shape dimension " + d.text + " does not fit in 64 bits", name);
      fail("E_HEADER_SHAPE", path, "shape dimension " + d.text + " is not a non-negative integer", name);
    }
    e.shape.push_back(x);
    if (x != 0 && numel > UINT64_MAX / x) overflow = true;
    else numel *= x;
  }
  // A zero dimension makes the product 0 whatever the others are; only overflow without one fails.
  if (overflow && std::find(e.shape.begin(), e.shape.end(), 0) == e.shape.end())
    fail("E_HEADER_SHAPE", path, "the shape's element count overflows 64 bits", name);
  if (overflow) numel = 0;

  const json::Value* offs = v.find("data_offsets");
  if (!offs || !offs->is_array() || offs->items.size() != 2)
    fail("E_HEADER_FIELD", path, "missing \"data_offsets\" or not an array of two integers", name);
  uint64_t be[2];
  for (int i = 0; i < 2; ++i) {
    const json::Value& o = offs->items[size_t(i)];
    if (!o.is_number() || !json::is_unsigned_integer_literal(o.text))
      fail("E_HEADER_FIELD", path, "data_offsets must be non-negative integers", name);
    if (!json::parse_u64(o.text, &be[i]))
      fail("E_HEADER_OFFSETS", path, "data offset " + o.text + " is past the data area", name);
  }
  e.begin = be[0];
  e.end = be[1];
  if (e.begin > e.end)
    fail("E_HEADER_OFFSETS", path,
         "data_offsets begin " + std::to_string(e.begin) + " > end " + std::to_string(e.end), name);
  if (e.end > data_size)
    fail("E_HEADER_OFFSETS", path,
         "data_offsets end " + std::to_string(e.end) + " is past the data area (" + std::to_string(data_size) +
             " bytes)",
         name);
  uint64_t bytes = e.end - e.begin;
  // numel * esize may overflow; the byte count is bounded by the file so compare by division.
  if (numel > UINT64_MAX / esize || numel * esize != bytes)
    fail("E_HEADER_SIZE", path,
         "holds " + std::to_string(bytes) + " bytes but shape x dtype " + e.dtype + " needs " +
             (numel > UINT64_MAX / esize ? std::string("more than 2^64") : std::to_string(numel * esize)),
         name);
  return e;
}

}  // namespace

Header parse_header(const uint8_t* bytes, size_t available, uint64_t file_size, const std::string& path) {
  if (file_size == 0) fail("E_HEADER_EMPTY", path, "the file is empty (0 bytes)");
  if (file_size < 8) fail("E_HEADER_SHORT", path, "the file has " + std::to_string(file_size) + " bytes, fewer than the 8-byte header length");
  if (available < 8) throw Error("E_IO_READ", "internal: fewer than 8 header bytes given for " + path, path);
  Header h;
  h.file_size = file_size;
  h.header_length = read_le64(bytes);
  if (h.header_length > kMaxHeaderLength)
    fail("E_HEADER_TOO_LARGE", path,
         "header length " + std::to_string(h.header_length) + " exceeds the limit of 100000000 bytes (not a safetensors file?)");
  h.data_offset = 8 + h.header_length;
  if (h.data_offset > file_size)
    fail("E_HEADER_PAST_EOF", path,
         "header length " + std::to_string(h.header_length) + " runs past the end of the file (" +
             std::to_string(file_size) + " bytes)");
  if (available < h.data_offset)
    throw Error("E_IO_READ", "internal: header bytes not all given for " + path, path);
  uint64_t data_size = file_size - h.data_offset;

  json::Value root;
  try {
    root = json::parse(std::string_view(reinterpret_cast<const char*>(bytes + 8), size_t(h.header_length)));
  } catch (const json::ParseError& e) {
    fail("E_HEADER_JSON", path, std::string("the header is not valid JSON: ") + e.what());
  }
  if (!root.is_object())
    fail("E_HEADER_NOT_OBJECT", path, std::string("the header must be a JSON object, found ") + json::kind_name(root.kind));
  if (const std::string* dup = root.find_duplicate_key())
    fail("E_HEADER_DUPLICATE", path, "tensor name \"" + *dup + "\" appears twice in the header", *dup);

  h.tensors.reserve(root.members.size());
  for (const auto& [name, v] : root.members) {
    if (name == "__metadata__") {
      if (v.kind == json::Value::Kind::Null) continue;
      if (!v.is_object()) fail("E_HEADER_FIELD", path, "__metadata__ must be an object of strings");
      if (const std::string* dup = v.find_duplicate_key())
        fail("E_HEADER_FIELD", path, "__metadata__ key \"" + *dup + "\" appears twice");
      std::map<std::string, std::string> md;
      for (const auto& [k, mv] : v.members) {
        if (!mv.is_string())
          fail("E_HEADER_FIELD", path, "__metadata__ value of \"" + k + "\" must be a string, found " + json::kind_name(mv.kind));
        md.emplace(k, mv.text);
      }
      h.metadata = std::move(md);
      continue;
    }
    h.tensors.push_back(parse_entry(name, v, data_size, path));
  }

  // The reference implementation's layout rule (safetensors Metadata::validate + read_metadata):
  // in (begin, end) order the tensors tile the data area exactly: the first starts at 0, each one
  // starts where the previous ends, and the last ends at the end of the file. Overlaps, holes and
  // trailing bytes are all refused, so no byte of the file is outside the header or a tensor (a
  // polyglot file cannot hide a second payload there). Zero-size tensors sit at any boundary.
  std::vector<const TensorEntry*> order;
  order.reserve(h.tensors.size());
  for (const auto& t : h.tensors) order.push_back(&t);
  std::stable_sort(order.begin(), order.end(), [](const TensorEntry* a, const TensorEntry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t covered = 0;
  const TensorEntry* prev = nullptr;
  for (const TensorEntry* t : order) {
    if (t->begin < covered)
      fail("E_HEADER_OFFSETS", path,
           "bytes [" + std::to_string(t->begin) + ", " + std::to_string(t->end) + ") overlap tensor \"" + prev->name +
               "\" [" + std::to_string(prev->begin) + ", " + std::to_string(prev->end) + ")",
           t->name);
    if (t->begin > covered)
      fail("E_HEADER_OFFSETS", path,
           "data bytes [" + std::to_string(covered) + ", " + std::to_string(t->begin) + ") " +
               (prev ? "between tensor \"" + prev->name + "\" and this one" : std::string("before this tensor")) +
               " belong to no tensor (holes are not allowed)",
           t->name);
    covered = t->end;
    prev = t;
  }
  if (covered != data_size)
    fail("E_HEADER_TRAILING", path,
         std::to_string(data_size - covered) + " byte(s) after the " +
             (prev ? "last tensor (\"" + prev->name + "\", ending at data offset " + std::to_string(covered) + ")"
                   : std::string("header (it lists no tensor)")) +
             " belong to no tensor (trailing bytes are not allowed)");
  return h;
}

Header read_header(const std::string& path) {
  FileReader f(path);
  uint64_t size = f.size();
  std::vector<uint8_t> buf(size_t(std::min<uint64_t>(size, 8)));
  if (!buf.empty()) f.read_exact(0, buf.data(), buf.size());
  if (size >= 8) {
    uint64_t n = read_le64(buf.data());
    // Only read the JSON when parse_header would accept its length; it reports the error otherwise.
    if (n <= kMaxHeaderLength && 8 + n <= size) {
      buf.resize(size_t(8 + n));
      if (n) f.read_exact(8, buf.data() + 8, size_t(n));
    }
  }
  return parse_header(buf.data(), buf.size(), size, path);
}

}  // namespace mother::io
