// Read-only file access: positional reads (read_exact, pread), and for the stats runner a read-only
// mapping of the whole file (map()). A mapped file that is truncated while we read it raises
// SIGBUS on the next access past its new end: whoever reads data() must do so under the SIGBUS
// guard (workers/sigbus_guard.h), which turns that into E_IO_TRUNCATED. See docs/robustness.md,
// "Memory-mapped reading".
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

  // Maps the whole file (its size at open) read-only: PROT_READ, MAP_SHARED, no MAP_POPULATE, at a
  // 2 MiB-aligned address with MADV_HUGEPAGE so that huge folios in the page cache are mapped by
  // single page-table entries. Returns false, with the reason in `why`, when the file cannot be
  // mapped (a filesystem that refuses mmap, no address space): read with read_exact then.
  // A 0-byte file maps nothing and returns true (data() stays null).
  bool map(std::string* why);
  // The mapping (byte 0 of the file) or nullptr. Reads through it must run under guard::run.
  const unsigned char* data() const { return map_; }
  uint64_t mapped_size() const { return map_len_; }
  // Drops the pages of the 2 MiB blocks of the file that bytes [offset, offset + n) touch from this
  // process's page tables (MADV_DONTNEED): the page cache keeps them, our resident set does not.
  // Whole blocks, because a fault maps the whole page-cache folio it hits (up to 2 MiB, aligned in
  // the file): rounding to pages would leave the rest of such a folio mapped. Later reads fault
  // them in again (another thread reading a neighbouring stretch included). No-op when not mapped.
  void release(uint64_t offset, uint64_t n) const;

  // The file as it is now: size (UINT64_MAX when fstat fails), and whether it was modified since
  // it was opened (size or modification time changed: truncated, rewritten in place).
  uint64_t current_size() const;
  bool modified_since_open() const;

 private:
  void unmap();
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
  int64_t mtime_sec_ = 0, mtime_nsec_ = 0;
  unsigned char* map_ = nullptr;
  uint64_t map_len_ = 0;
};

}  // namespace mother::io
