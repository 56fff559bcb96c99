// Read-only positional file access. DESIGN DECISION (keep it): no mmap. We pread large chunks into
// our own buffers, so a file truncated or replaced while we read it gives E_IO_TRUNCATED instead of
// a SIGBUS that would kill the whole Node process.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace mother::io {

class FileReader {
 public:
  // Opens `path` read-only (O_RDONLY | O_CLOEXEC) and records its size.
  // Throws mother::Error E_IO_OPEN (missing, unreadable, or not a regular file).
  explicit FileReader(std::string path);
  ~FileReader();
  FileReader(FileReader&& other) noexcept;
  FileReader& operator=(FileReader&& other) noexcept;
  FileReader(const FileReader&) = delete;
  FileReader& operator=(const FileReader&) = delete;

  // Size when the file was opened.
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

  // Reads exactly n bytes at offset (pread loop, EINTR-safe, thread-safe: no shared file position).
  // Throws E_IO_TRUNCATED when the file ends first (it was truncated since the header was read),
  // E_IO_READ on an I/O error. `tensor` (optional) is named in the error.
  void read_exact(uint64_t offset, void* dst, size_t n, const std::string& tensor = {}) const;

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

}  // namespace mother::io
