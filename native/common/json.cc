#include "common/json.h"

#include <unordered_set>

namespace mother::json {

const Value* Value::find(std::string_view key) const {
  for (const auto& m : members)
    if (m.first == key) return &m.second;
  return nullptr;
}

const std::string* Value::find_duplicate_key() const {
  std::unordered_set<std::string_view> seen;
  seen.reserve(members.size());
  for (const auto& m : members)
    if (!seen.insert(m.first).second) return &m.first;
  return nullptr;
}

bool is_unsigned_integer_literal(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

bool parse_u64(const std::string& s, uint64_t* out) {
  if (!is_unsigned_integer_literal(s)) return false;
  uint64_t v = 0;
  for (char c : s) {
    uint64_t d = uint64_t(c - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

size_t find_invalid_utf8(const uint8_t* s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    if (c < 0x80) { ++i; continue; }
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
    else return i;  // continuation byte, overlong 2-byte lead (C0/C1) or > U+10FFFF lead
    if (i + len > n) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return i;
    i += len;
  }
  return std::string_view::npos;
}

const char* kind_name(Value::Kind k) {
  switch (k) {
    case Value::Kind::Null: return "null";
    case Value::Kind::Bool: return "boolean";
    case Value::Kind::Number: return "number";
    case Value::Kind::String: return "string";
    case Value::Kind::Array: return "array";
    default: return "object";
  }
}

namespace {

struct Parser {
  std::string_view s;
  size_t pos = 0;
  size_t max_depth;

  [[noreturn]] void fail(const std::string& what) const {
    throw ParseError(what + " at byte " + std::to_string(pos), pos);
  }
  void skip_ws() {
    while (pos < s.size() && (s[pos] == ' ' || s[pos] == '\t' || s[pos] == '\n' || s[pos] == '\r')) ++pos;
  }
  bool at_end() const { return pos >= s.size(); }
  char peek() const { return s[pos]; }

  void expect_word(std::string_view w) {
    if (s.substr(pos, w.size()) != w) fail("invalid literal");
    pos += w.size();
  }

  static void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) out += char(cp);
    else if (cp < 0x800) { out += char(0xC0 | (cp >> 6)); out += char(0x80 | (cp & 0x3F)); }
    else if (cp < 0x10000) {
      out += char(0xE0 | (cp >> 12)); out += char(0x80 | ((cp >> 6) & 0x3F)); out += char(0x80 | (cp & 0x3F));
    } else {
      out += char(0xF0 | (cp >> 18)); out += char(0x80 | ((cp >> 12) & 0x3F));
      out += char(0x80 | ((cp >> 6) & 0x3F)); out += char(0x80 | (cp & 0x3F));
    }
  }

  uint32_t hex4() {
    if (pos + 4 > s.size()) fail("truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = s[pos++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= uint32_t(c - '0');
      else if (c >= 'a' && c <= 'f') v |= uint32_t(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= uint32_t(c - 'A' + 10);
      else fail("bad hex digit in \\u escape");
    }
    return v;
  }

  std::string string() {
    ++pos;  // opening quote
    std::string out;
    for (;;) {
      if (at_end()) fail("unterminated string");
      unsigned char c = static_cast<unsigned char>(s[pos]);
      if (c == '"') { ++pos; return out; }
      if (c < 0x20) fail("control character in string");
      if (c != '\\') { out += char(c); ++pos; continue; }  // UTF-8 was validated up front
      ++pos;
      if (at_end()) fail("unterminated escape");
      char e = s[pos++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = hex4();
          if (cp >= 0xDC00 && cp <= 0xDFFF) fail("lone low surrogate in \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (pos + 2 > s.size() || s[pos] != '\\' || s[pos + 1] != 'u') fail("lone high surrogate in \\u escape");
            pos += 2;
            uint32_t lo = hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) fail("high surrogate not followed by a low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          append_utf8(out, cp);
          break;
        }
        default: fail("invalid escape");
      }
    }
  }

  std::string number() {
    size_t start = pos;
    auto digit = [&](size_t p) { return p < s.size() && s[p] >= '0' && s[p] <= '9'; };
    if (s[pos] == '-') ++pos;
    if (!digit(pos)) fail("invalid number");
    if (s[pos] == '0') ++pos;
    else while (digit(pos)) ++pos;
    if (pos < s.size() && s[pos] == '.') {
      ++pos;
      if (!digit(pos)) fail("invalid number fraction");
      while (digit(pos)) ++pos;
    }
    if (pos < s.size() && (s[pos] == 'e' || s[pos] == 'E')) {
      ++pos;
      if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) ++pos;
      if (!digit(pos)) fail("invalid number exponent");
      while (digit(pos)) ++pos;
    }
    return std::string(s.substr(start, pos - start));
  }

  Value value(size_t depth) {
    skip_ws();
    if (at_end()) fail("unexpected end of input");
    Value v;
    char c = peek();
    if (c == '{' || c == '[') {
      if (depth >= max_depth) fail("nesting deeper than " + std::to_string(max_depth));
      ++pos;
      bool obj = c == '{';
      v.kind = obj ? Value::Kind::Object : Value::Kind::Array;
      skip_ws();
      if (!at_end() && peek() == (obj ? '}' : ']')) { ++pos; return v; }
      for (;;) {
        if (obj) {
          skip_ws();
          if (at_end() || peek() != '"') fail("expected a string key");
          std::string key = string();
          skip_ws();
          if (at_end() || peek() != ':') fail("expected ':'");
          ++pos;
          Value member = value(depth + 1);
          v.members.emplace_back(std::move(key), std::move(member));
        } else {
          v.items.push_back(value(depth + 1));
        }
        skip_ws();
        if (at_end()) fail("unterminated container");
        char d = s[pos++];
        if (d == ',') continue;
        if (d == (obj ? '}' : ']')) return v;
        --pos;
        fail(obj ? "expected ',' or '}'" : "expected ',' or ']'");
      }
    }
    if (c == '"') { v.kind = Value::Kind::String; v.text = string(); return v; }
    if (c == 't') { expect_word("true"); v.kind = Value::Kind::Bool; v.boolean = true; return v; }
    if (c == 'f') { expect_word("false"); v.kind = Value::Kind::Bool; return v; }
    if (c == 'n') { expect_word("null"); return v; }
    if (c == '-' || (c >= '0' && c <= '9')) { v.kind = Value::Kind::Number; v.text = number(); return v; }
    fail("unexpected character");
  }
};

}  // namespace

Value parse(std::string_view text, size_t max_depth) {
  size_t bad = find_invalid_utf8(reinterpret_cast<const uint8_t*>(text.data()), text.size());
  if (bad != std::string_view::npos) throw ParseError("invalid UTF-8 at byte " + std::to_string(bad), bad);
  Parser p{text, 0, max_depth};
  Value v = p.value(0);
  p.skip_ws();
  if (!p.at_end()) p.fail("trailing characters after the JSON value");
  return v;
}

}  // namespace mother::json
