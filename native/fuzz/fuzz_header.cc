// libFuzzer harness: bytes -> parse_header. A mother::Error is the expected way to reject input;
// any other exception, a crash, a sanitizer report or a leak is a finding. The first 8 bytes of the
// input also pick the claimed file size (so "the file is larger than the bytes we hold" paths run).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/error.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // parse_header's contract: `available` >= min(file_size, 8 + N). Honour it by claiming the real
  // size most of the time, and sometimes a larger file (the data area beyond what we hold).
  uint64_t file_size = size;
  if (size > 0 && (data[size - 1] & 0x0f) == 0x0f) file_size = uint64_t(size) + data[size - 1] * 4099u;
  try {
    mother::io::Header h = mother::io::parse_header(data, size, file_size, "fuzz.safetensors");
    // Invariants a valid header must satisfy (the rest of the pipeline relies on them).
    for (const auto& t : h.tensors) {
      if (t.begin > t.end || t.end > h.file_size - h.data_offset) std::abort();
      size_t es = mother::io::safetensors_dtype_size(t.dtype);
      if (es == 0 || t.numel() * es != t.end - t.begin) std::abort();
    }
    if (h.data_offset != 8 + h.header_length || h.data_offset > h.file_size) std::abort();
  } catch (const mother::Error& e) {
    // Every rejection must carry a stable code and name the file.
    if (e.code.rfind("E_", 0) != 0 || e.file != "fuzz.safetensors") std::abort();
  }
  return 0;
}
