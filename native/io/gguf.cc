#include "io/gguf.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "common/error.h"
#include "common/json.h"
#include "io/file_reader.h"

namespace mother::io {

namespace {

constexpr uint64_t kMaxGgufHeader = 1ull << 30;  // 1 GiB of metadata and tensor infos
constexpr int kMaxDepth = 4;                     // arrays of arrays of ...

struct TypeInfo {
  uint32_t id;
  const char* name;
  uint64_t elems, bytes;
};
// ggml_type ids, names and block sizes (ggml.h / ggml.c type_traits); 4, 5 and 31-33, 36-38 are
// ids ggml has retired.
constexpr TypeInfo kTypes[] = {
    {0, "F32", 1, 4},        {1, "F16", 1, 2},         {2, "Q4_0", 32, 18},      {3, "Q4_1", 32, 20},
    {6, "Q5_0", 32, 22},     {7, "Q5_1", 32, 24},      {8, "Q8_0", 32, 34},      {9, "Q8_1", 32, 36},
    {10, "Q2_K", 256, 84},   {11, "Q3_K", 256, 110},   {12, "Q4_K", 256, 144},   {13, "Q5_K", 256, 176},
    {14, "Q6_K", 256, 210},  {15, "Q8_K", 256, 292},   {16, "IQ2_XXS", 256, 66}, {17, "IQ2_XS", 256, 74},
    {18, "IQ3_XXS", 256, 98}, {19, "IQ1_S", 256, 50},  {20, "IQ4_NL", 32, 18},   {21, "IQ3_S", 256, 110},
    {22, "IQ2_S", 256, 82},  {23, "IQ4_XS", 256, 136}, {24, "I8", 1, 1},         {25, "I16", 1, 2},
    {26, "I32", 1, 4},       {27, "I64", 1, 8},        {28, "F64", 1, 8},        {29, "IQ1_M", 256, 56},
    {30, "BF16", 1, 2},      {34, "TQ1_0", 256, 54},   {35, "TQ2_0", 256, 66},   {39, "MXFP4", 32, 17},
};

const TypeInfo* type_info(uint32_t t) {
  for (const auto& e : kTypes)
    if (e.id == t) return &e;
  return nullptr;
}

// Fixed sizes of the scalar value types; 0 for STRING / ARRAY / unknown.
size_t scalar_size(uint32_t t) {
  switch (t) {
    case kGgufU8: case kGgufI8: case kGgufBool: return 1;
    case kGgufU16: case kGgufI16: return 2;
    case kGgufU32: case kGgufI32: case kGgufF32: return 4;
    case kGgufU64: case kGgufI64: case kGgufF64: return 8;
    default: return 0;
  }
}

// The fewest bytes one value of type t takes (arrays: item type + count).
uint64_t min_size(uint32_t t) {
  if (t == kGgufString) return 8;
  if (t == kGgufArray) return 12;
  return scalar_size(t);
}

class Parser {
 public:
  Parser(const uint8_t* b, size_t avail, uint64_t size, const std::string& path)
      : b_(b), avail_(avail), size_(size), path_(path) {}

  GgufFile run() {
    GgufFile g;
    g.file_size = size_;
    if (size_ >= 4) {
      need(4);
      if (std::memcmp(b_, "GGUF", 4) != 0) magic_fail();
    }
    if (size_ < 24) {
      fail("E_GGUF_SHORT", "the file has " + std::to_string(size_) +
                               " bytes, fewer than the 24 of magic, version, tensor count and KV count");
    }
    need(24);
    pos_ = 4;
    const uint32_t version = u32("the version");
    if (version == 1) fail("E_GGUF_VERSION", "version 1 (32-bit counts and lengths) is not supported; convert the file to GGUF v3");
    if (version != 2 && version != 3) {
      uint32_t swapped = __builtin_bswap32(version);
      if (swapped == 2 || swapped == 3)
        fail("E_GGUF_VERSION", "the file is big-endian GGUF (version " + std::to_string(swapped) + "); only little-endian is supported");
      fail("E_GGUF_VERSION", "version " + std::to_string(version) + " is not supported (2 and 3 are)");
    }
    g.version = version;
    const uint64_t n_tensors = u64("the tensor count");
    const uint64_t n_kv = u64("the KV count");
    // Each tensor info takes at least 32 bytes (name length, 1 dimension, type, offset), each KV
    // pair at least 13 (key length, a 1-byte key, type, a 1-byte value).
    if (n_kv > (size_ - 24) / 13)
      fail("E_GGUF_COUNT", "the header claims " + std::to_string(n_kv) + " KV pairs, more than " +
                               std::to_string(size_) + " bytes can hold");
    if (n_tensors > (size_ - 24) / 32)
      fail("E_GGUF_COUNT", "the header claims " + std::to_string(n_tensors) + " tensors, more than " +
                               std::to_string(size_) + " bytes can hold");

    std::set<std::string> keys;
    g.kv.reserve(size_t(n_kv));
    for (uint64_t i = 0; i < n_kv; ++i) {
      const std::string where = "KV pair " + std::to_string(i);
      GgufKV kv;
      kv.key = name(where + " key");
      const std::string wk = where + " (\"" + kv.key + "\")";
      if (!keys.insert(kv.key).second) fail("E_GGUF_KEY", wk + ": the key appears twice");
      const uint32_t t = u32(wk + " value type");
      kv.value = value(t, wk, 0);
      if (kv.key == "general.alignment") {
        if (t != kGgufU32)
          fail("E_GGUF_KEY", wk + ": must be a UINT32, found " +
                                 std::string(gguf_value_type_name(t) ? gguf_value_type_name(t) : "?"));
        const uint64_t a = uint64_t(kv.value.number);
        if (a == 0 || (a & (a - 1)) != 0) fail("E_GGUF_KEY", wk + ": " + std::to_string(a) + " is not a power of two");
        g.alignment = a;
      }
      g.kv.push_back(std::move(kv));
    }

    std::set<std::string> names;
    g.tensors.reserve(size_t(n_tensors));
    for (uint64_t i = 0; i < n_tensors; ++i) {
      GgufTensor t;
      t.name = name("tensor info " + std::to_string(i) + " name");
      const std::string wt = "tensor info " + std::to_string(i) + " (\"" + t.name + "\")";
      if (!names.insert(t.name).second) fail("E_GGUF_TENSOR", wt + ": the name appears twice", t.name);
      const uint32_t nd = u32(wt + " dimension count");
      if (nd == 0 || nd > 4) fail("E_GGUF_TENSOR", wt + ": " + std::to_string(nd) + " dimensions (1 to 4 allowed)", t.name);
      uint64_t numel = 1;
      for (uint32_t d = 0; d < nd; ++d) {
        const uint64_t n = u64(wt + " ne[" + std::to_string(d) + "]");
        // ggml holds sizes as int64; 2^53 keeps every count exact in JavaScript.
        if (n > (1ull << 53) || (n && numel > (1ull << 53) / n))
          fail("E_GGUF_TENSOR", wt + ": ne[" + std::to_string(d) + "] = " + std::to_string(n) + " makes the size overflow", t.name);
        numel *= n;
        t.ne.push_back(n);
      }
      t.type = u32(wt + " type");
      t.offset = u64(wt + " offset");
      if (const TypeInfo* ti = type_info(t.type)) {
        t.known = true;
        if (t.ne[0] % ti->elems != 0)
          fail("E_GGUF_TENSOR", wt + ": ne[0] = " + std::to_string(t.ne[0]) + " is not a multiple of the " +
                                    ti->name + " block of " + std::to_string(ti->elems) + " elements", t.name);
        t.nbytes = numel / ti->elems * ti->bytes;
      }
      g.tensors.push_back(std::move(t));
    }

    // Data section: after the tensor infos, aligned.
    g.data_offset = (pos_ + g.alignment - 1) / g.alignment * g.alignment;
    const uint64_t room = g.data_offset <= size_ ? size_ - g.data_offset : 0;
    std::vector<const GgufTensor*> order;
    for (const auto& t : g.tensors) {
      const std::string wt = "tensor \"" + t.name + "\"";
      if (t.offset % g.alignment)
        fail("E_GGUF_OFFSETS", wt + ": data offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
                                   std::to_string(g.alignment), t.name);
      if (g.data_offset > size_ || t.offset > room || t.nbytes > room - t.offset)
        fail("E_GGUF_OFFSETS", wt + ": data [" + std::to_string(g.data_offset + t.offset) + ", " +
                                   std::to_string(g.data_offset + t.offset + t.nbytes) + ") runs past the end of the file (" +
                                   std::to_string(size_) + " bytes)", t.name);
      if (t.known) order.push_back(&t);
    }
    std::stable_sort(order.begin(), order.end(), [](const GgufTensor* a, const GgufTensor* b) { return a->offset < b->offset; });
    for (size_t i = 1; i < order.size(); ++i) {
      const GgufTensor* p = order[i - 1];
      if (order[i]->nbytes && p->nbytes && order[i]->offset < p->offset + p->nbytes)
        fail("E_GGUF_OFFSETS", "tensor \"" + order[i]->name + "\": data at offset " + std::to_string(order[i]->offset) +
                                   " overlaps tensor \"" + p->name + "\" [" + std::to_string(p->offset) + ", " +
                                   std::to_string(p->offset + p->nbytes) + ")", order[i]->name);
    }
    return g;
  }

 private:
  [[noreturn]] void fail(const char* code, const std::string& msg, const std::string& tensor = {}) {
    throw Error(code, "invalid GGUF file " + path_ + ": " + msg, path_, tensor);
  }
  [[noreturn]] void magic_fail() {
    std::string got;
    for (int i = 0; i < 4; ++i) {
      const unsigned c = b_[i];
      got += c >= 32 && c < 127 ? std::string(1, char(c)) : "\\x" + std::string(1, "0123456789abcdef"[c >> 4]) +
                                                                 std::string(1, "0123456789abcdef"[c & 15]);
    }
    fail("E_GGUF_MAGIC", "the file starts with \"" + got + "\", not the magic \"GGUF\"");
  }

  // n more bytes at pos_ must exist: in the file (else E_GGUF_TRUNCATED naming `what`) and in
  // the buffer (else GgufNeedMore).
  void need(uint64_t n, const std::string& what = "the header") {
    if (n > size_ - std::min(pos_, size_))
      fail("E_GGUF_TRUNCATED", what + " at byte " + std::to_string(pos_) + " needs " + std::to_string(n) +
                                   " bytes but the file ends at " + std::to_string(size_));
    if (pos_ + n > avail_) {
      if (pos_ + n > kMaxGgufHeader)
        fail("E_GGUF_TOO_LARGE", "the metadata and tensor infos go on past " + std::to_string(kMaxGgufHeader) + " bytes");
      throw GgufNeedMore{pos_ + n};
    }
  }
  template <class T>
  T scalar(const std::string& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, b_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  uint32_t u32(const std::string& what) { return scalar<uint32_t>(what); }
  uint64_t u64(const std::string& what) { return scalar<uint64_t>(what); }

  // A string's bytes (length-prefixed). `copy` false: checked and skipped.
  std::string str(const std::string& what, bool copy = true) {
    const uint64_t n = u64(what + " length");
    if (n > size_ - pos_)
      fail("E_GGUF_STRING", what + ": string length " + std::to_string(n) + " at byte " + std::to_string(pos_ - 8) +
                                " runs past the end of the file (" + std::to_string(size_ - pos_) + " bytes left)");
    need(n, what);
    std::string s = copy ? std::string(reinterpret_cast<const char*>(b_ + pos_), size_t(n)) : std::string();
    pos_ += n;
    return s;
  }
  // A key or tensor name: non-empty UTF-8.
  std::string name(const std::string& what) {
    std::string s = str(what);
    if (s.empty()) fail("E_GGUF_STRING", what + " is empty");
    const size_t bad = json::find_invalid_utf8(reinterpret_cast<const uint8_t*>(s.data()), s.size());
    if (bad != size_t(-1)) fail("E_GGUF_STRING", what + " is not valid UTF-8 (byte " + std::to_string(bad) + ")");
    return s;
  }

  GgufValue value(uint32_t t, const std::string& what, int depth, bool keep = true) {
    GgufValue v;
    v.type = t;
    switch (t) {
      case kGgufU8: v.number = scalar<uint8_t>(what); break;
      case kGgufI8: v.number = scalar<int8_t>(what); break;
      case kGgufU16: v.number = scalar<uint16_t>(what); break;
      case kGgufI16: v.number = scalar<int16_t>(what); break;
      case kGgufU32: v.number = scalar<uint32_t>(what); break;
      case kGgufI32: v.number = scalar<int32_t>(what); break;
      case kGgufF32: v.number = scalar<float>(what); break;
      case kGgufF64: v.number = scalar<double>(what); break;
      case kGgufBool: {
        const uint8_t b = scalar<uint8_t>(what);
        if (b > 1) fail("E_GGUF_TYPE", what + ": a BOOL must be 0 or 1, found " + std::to_string(b));
        v.number = b;
        break;
      }
      case kGgufU64: {
        const uint64_t u = scalar<uint64_t>(what);
        v.number = double(u);
        if (u > (1ull << 53)) v.exact = false, v.text = std::to_string(u);
        break;
      }
      case kGgufI64: {
        const int64_t s = scalar<int64_t>(what);
        v.number = double(s);
        if (s > (1ll << 53) || s < -(1ll << 53)) v.exact = false, v.text = std::to_string(s);
        break;
      }
      case kGgufString: v.text = str(what, keep); break;
      case kGgufArray: {
        if (depth >= kMaxDepth) fail("E_GGUF_TYPE", what + ": arrays nested deeper than " + std::to_string(kMaxDepth));
        v.item_type = u32(what + " array item type");
        if (!gguf_value_type_name(v.item_type))
          fail("E_GGUF_TYPE", what + ": unknown array item type " + std::to_string(v.item_type));
        v.length = u64(what + " array length");
        const uint64_t each = min_size(v.item_type);
        if (v.length > (size_ - pos_) / each)
          fail("E_GGUF_COUNT", what + ": an array of " + std::to_string(v.length) + " " + gguf_value_type_name(v.item_type) +
                                   " items cannot fit in the " + std::to_string(size_ - pos_) + " bytes left");
        if (const size_t sz = scalar_size(v.item_type); sz && !(keep && v.item_type == kGgufBool)) {
          // Fixed-size items: keep the first ones, skip the rest in one step.
          const uint64_t kept = keep ? std::min(v.length, kGgufKeepItems) : 0;
          for (uint64_t i = 0; i < kept; ++i) v.items.push_back(value(v.item_type, what + "[" + std::to_string(i) + "]", depth + 1));
          need((v.length - kept) * sz, what);
          if (v.item_type == kGgufBool)
            for (uint64_t i = kept; i < v.length; ++i)
              if (b_[pos_ + (i - kept)] > 1) fail("E_GGUF_TYPE", what + "[" + std::to_string(i) + "]: a BOOL must be 0 or 1");
          pos_ += (v.length - kept) * sz;
        } else {
          for (uint64_t i = 0; i < v.length; ++i) {
            const bool k = keep && i < kGgufKeepItems;
            GgufValue item = value(v.item_type, what + "[" + std::to_string(i) + "]", depth + 1, k);
            if (k) v.items.push_back(std::move(item));
          }
        }
        break;
      }
      default: fail("E_GGUF_TYPE", what + ": unknown value type " + std::to_string(t));
    }
    return v;
  }

  const uint8_t* b_;
  uint64_t avail_, size_;
  const std::string& path_;
  uint64_t pos_ = 0;
};

}  // namespace

const char* gguf_value_type_name(uint32_t t) {
  static const char* names[] = {"UINT8", "INT8",  "UINT16", "INT16",  "UINT32", "INT32", "FLOAT32",
                                "BOOL",  "STRING", "ARRAY", "UINT64", "INT64",  "FLOAT64"};
  return t < 13 ? names[t] : nullptr;
}

const char* ggml_type_name(uint32_t type) {
  const TypeInfo* t = type_info(type);
  return t ? t->name : nullptr;
}

bool ggml_type_block(uint32_t type, uint64_t* elems, uint64_t* bytes) {
  const TypeInfo* t = type_info(type);
  if (!t) return false;
  *elems = t->elems;
  *bytes = t->bytes;
  return true;
}

uint64_t GgufTensor::numel() const {
  uint64_t n = 1;
  for (uint64_t d : ne) n *= d;
  return n;
}

GgufFile parse_gguf(const uint8_t* bytes, size_t available, uint64_t file_size, const std::string& path) {
  return Parser(bytes, std::min<uint64_t>(available, file_size), file_size, path).run();
}

GgufFile read_gguf(const std::string& path) {
  FileReader f(path);
  const uint64_t size = f.size();
  std::vector<uint8_t> buf;
  uint64_t want = std::min<uint64_t>(size, 1ull << 20);
  for (;;) {
    const size_t have = buf.size();
    buf.resize(size_t(want));
    if (want > have) f.read_exact(have, buf.data() + have, size_t(want - have));
    try {
      return parse_gguf(buf.data(), buf.size(), size, path);
    } catch (const GgufNeedMore& m) {
      want = std::min<uint64_t>(size, std::max<uint64_t>(m.need, want * 2));
    }
  }
}

}  // namespace mother::io
