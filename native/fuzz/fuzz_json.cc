// libFuzzer harness: bytes -> json::parse (strict RFC 8259 + UTF-8 + depth limit). ParseError is
// the expected rejection; anything else is a finding. Accepted values are checked: strings are
// valid UTF-8, numbers are well-formed literals, and parse_u64 agrees with a slow reference.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/json.h"

namespace {

using mother::json::Value;

void check(const Value& v, int depth) {
  if (depth > 64) std::abort();  // the default depth limit must hold
  switch (v.kind) {
    case Value::Kind::String:
      if (mother::json::find_invalid_utf8(reinterpret_cast<const uint8_t*>(v.text.data()), v.text.size()) !=
          std::string_view::npos)
        std::abort();
      break;
    case Value::Kind::Number: {
      if (v.text.empty()) std::abort();
      uint64_t x;
      bool ok = mother::json::parse_u64(v.text, &x);
      // Reference: digits only and value < 2^64, computed with long division on the string.
      bool digits = mother::json::is_unsigned_integer_literal(v.text);
      if (ok && !digits) std::abort();
      if (ok && std::to_string(x) != v.text) std::abort();  // no leading zeros in valid JSON
      break;
    }
    case Value::Kind::Array:
      for (const auto& i : v.items) check(i, depth + 1);
      break;
    case Value::Kind::Object:
      for (const auto& m : v.members) check(m.second, depth + 1);
      (void)v.find_duplicate_key();
      break;
    default:
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    Value v = mother::json::parse(text);
    check(v, 0);
  } catch (const mother::json::ParseError& e) {
    if (e.offset > size) std::abort();  // the reported offset must lie inside the input
  }
  // Also with a tiny depth limit: must reject deep input cleanly, never recurse past it.
  try {
    (void)mother::json::parse(text, 2);
  } catch (const mother::json::ParseError&) {
  }
  return 0;
}
