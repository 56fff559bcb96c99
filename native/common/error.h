// One exception type for every failure the addon reports to JavaScript. `code` is stable and
// documented (E_HEADER_*, E_IO_*, ...); the message names the file and, where relevant, the tensor.
#pragma once
#include <stdexcept>
#include <string>

namespace mother {

struct Error : std::runtime_error {
  std::string code;
  std::string file;    // may be empty
  std::string tensor;  // may be empty
  Error(std::string code_, std::string message, std::string file_ = {}, std::string tensor_ = {})
      : std::runtime_error(std::move(message)), code(std::move(code_)), file(std::move(file_)),
        tensor(std::move(tensor_)) {}
};

}  // namespace mother
