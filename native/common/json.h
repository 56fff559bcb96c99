// A small strict JSON parser (RFC 8259) for safetensors headers and shard indexes. Usable without
// Node (the fuzz harness calls it directly). Strict on purpose:
//   - the input must be valid UTF-8 (no overlongs, no surrogate code points, <= U+10FFFF);
//   - \u escapes are decoded, surrogate pairs combined, lone surrogates rejected;
//   - nesting is limited (default 64) so hostile input cannot exhaust the stack;
//   - numbers keep their literal text, so callers can demand exact unsigned integers;
//   - object members keep file order and duplicates are KEPT: callers decide what a duplicate
//     means (find_duplicate_key() names the first one).
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mother::json {

struct ParseError : std::runtime_error {
  size_t offset;  // byte offset of the problem in the input
  ParseError(const std::string& what, size_t offset_) : std::runtime_error(what), offset(offset_) {}
};

struct Value {
  enum class Kind : uint8_t { Null, Bool, Number, String, Array, Object };
  Kind kind = Kind::Null;
  bool boolean = false;
  std::string text;  // String: decoded UTF-8; Number: the literal as written
  std::vector<Value> items;                             // Array
  std::vector<std::pair<std::string, Value>> members;  // Object, file order, duplicates kept

  bool is_object() const { return kind == Kind::Object; }
  bool is_array() const { return kind == Kind::Array; }
  bool is_string() const { return kind == Kind::String; }
  bool is_number() const { return kind == Kind::Number; }
  // First member named `key`, or null.
  const Value* find(std::string_view key) const;
  // Name of the first key that occurs twice in this object, or null.
  const std::string* find_duplicate_key() const;
};

// The literal is a non-negative integer (digits only, no sign/fraction/exponent).
bool is_unsigned_integer_literal(const std::string& literal);
// Parses a non-negative integer literal; false when it is not one or overflows 64 bits.
bool parse_u64(const std::string& literal, uint64_t* out);

// Validates UTF-8; returns the offset of the first bad byte, or npos.
size_t find_invalid_utf8(const uint8_t* s, size_t n);

Value parse(std::string_view text, size_t max_depth = 64);

const char* kind_name(Value::Kind k);

}  // namespace mother::json
