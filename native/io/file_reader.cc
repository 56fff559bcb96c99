#include "io/file_reader.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"

#if defined(__APPLE__)
#define MOTHER_MTIM st_mtimespec
#else
#define MOTHER_MTIM st_mtim
#endif

namespace mother::io {

FileReader::FileReader(std::string path) : path_(std::move(path)) {
  // O_NONBLOCK: opening a FIFO (or a path swapped for one after the caller's stat) would otherwise
  // block this thread until a writer appears; it is refused below as not a regular file.
  do {
    fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  } while (fd_ < 0 && errno == EINTR);
  if (fd_ < 0) {
    int e = errno;
    throw Error("E_IO_OPEN", "cannot open " + path_ + ": " + std::strerror(e), path_);
  }
  struct stat st;
  if (::fstat(fd_, &st) != 0) {
    int e = errno;
    ::close(fd_);
    fd_ = -1;
    throw Error("E_IO_OPEN", "cannot stat " + path_ + ": " + std::strerror(e), path_);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd_);
    fd_ = -1;
    throw Error("E_IO_OPEN", "cannot read " + path_ + ": not a regular file", path_);
  }
  size_ = uint64_t(st.st_size);
  mtime_sec_ = int64_t(st.MOTHER_MTIM.tv_sec);
  mtime_nsec_ = int64_t(st.MOTHER_MTIM.tv_nsec);
  // Regular files ignore O_NONBLOCK, but drop it so reads keep their plain blocking meaning.
  int fl = ::fcntl(fd_, F_GETFL);
  if (fl >= 0) ::fcntl(fd_, F_SETFL, fl & ~O_NONBLOCK);
}

FileReader::~FileReader() {
  unmap();
  if (fd_ >= 0) ::close(fd_);
}

FileReader::FileReader(FileReader&& o) noexcept
    : path_(std::move(o.path_)), fd_(o.fd_), size_(o.size_), mtime_sec_(o.mtime_sec_), mtime_nsec_(o.mtime_nsec_),
      map_(o.map_), map_len_(o.map_len_) {
  o.fd_ = -1;
  o.map_ = nullptr;
  o.map_len_ = 0;
}

FileReader& FileReader::operator=(FileReader&& o) noexcept {
  if (this != &o) {
    unmap();
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(o.path_);
    fd_ = o.fd_;
    size_ = o.size_;
    mtime_sec_ = o.mtime_sec_;
    mtime_nsec_ = o.mtime_nsec_;
    map_ = o.map_;
    map_len_ = o.map_len_;
    o.fd_ = -1;
    o.map_ = nullptr;
    o.map_len_ = 0;
  }
  return *this;
}

namespace {
constexpr uint64_t kHuge = uint64_t(2) << 20;  // x86-64 / arm64 (4 KiB pages) PMD size
uint64_t page_size() {
  static const uint64_t p = uint64_t(::sysconf(_SC_PAGESIZE) > 0 ? ::sysconf(_SC_PAGESIZE) : 4096);
  return p;
}
}  // namespace

bool FileReader::map(std::string* why) {
  if (map_ || size_ == 0) return true;
  if (uint64_t(size_t(size_)) != size_) {
    if (why) *why = "file larger than the address space";
    return false;
  }
  const size_t len = size_t(size_);
  void* at = nullptr;
  if (size_ >= kHuge) {
    // Reserve len + 2 MiB of address space, map the file at the first 2 MiB boundary inside it and
    // give the slack back: file offset 0 (and so every 2 MiB of the file) falls on a PMD boundary.
    const size_t span = size_t((uint64_t(len) + page_size() - 1) & ~(page_size() - 1)), total = span + size_t(kHuge);
    void* r = ::mmap(nullptr, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r != MAP_FAILED) {
      const uintptr_t base = reinterpret_cast<uintptr_t>(r);
      const uintptr_t aligned = (base + kHuge - 1) & ~uintptr_t(kHuge - 1);
      void* m = ::mmap(reinterpret_cast<void*>(aligned), len, PROT_READ, MAP_SHARED | MAP_FIXED, fd_, 0);
      if (m == MAP_FAILED) {
        int e = errno;
        ::munmap(r, total);
        if (why) *why = std::string("mmap: ") + std::strerror(e);
        return false;
      }
      if (aligned > base) ::munmap(r, aligned - base);
      if (base + total > aligned + span) ::munmap(reinterpret_cast<void*>(aligned + span), base + total - (aligned + span));
      at = m;
    }
  }
  if (!at) {
    void* m = ::mmap(nullptr, len, PROT_READ, MAP_SHARED, fd_, 0);
    if (m == MAP_FAILED) {
      int e = errno;
      if (why) *why = std::string("mmap: ") + std::strerror(e);
      return false;
    }
    at = m;
  }
#ifdef MADV_HUGEPAGE
  // Lets the kernel map huge page-cache folios whole, and read uncached data in 2 MiB folios (the
  // next run then maps them whole). Not MADV_SEQUENTIAL: it would stop pages we read from counting
  // as recently used, and re-runs over the same folder want them kept in the page cache.
  if (size_ >= kHuge) ::madvise(at, len, MADV_HUGEPAGE);
#endif
  map_ = static_cast<unsigned char*>(at);
  map_len_ = size_;
  return true;
}

void FileReader::unmap() {
  if (map_) ::munmap(map_, size_t(map_len_));
  map_ = nullptr;
  map_len_ = 0;
}

void FileReader::release(uint64_t offset, uint64_t n) const {
  if (!map_ || n == 0 || offset >= map_len_) return;
  // Whole 2 MiB blocks of the file: a page-cache folio is at most that large and aligned to its
  // size in the file, and a fault maps the whole folio it hits (and fault-around never crosses a
  // 2 MiB boundary), so pages next to a released range may have been mapped by our own reads.
  // Releasing the blocks leaves none of them behind.
  const uint64_t lo = offset & ~(kHuge - 1);
  uint64_t hi = std::min((offset + n + kHuge - 1) & ~(kHuge - 1), map_len_);
  hi = (hi + page_size() - 1) & ~(page_size() - 1);
  ::madvise(map_ + lo, size_t(hi - lo), MADV_DONTNEED);
}

uint64_t FileReader::current_size() const {
  struct stat st;
  if (::fstat(fd_, &st) != 0) return UINT64_MAX;
  return uint64_t(st.st_size);
}

bool FileReader::modified_since_open() const {
  struct stat st;
  if (::fstat(fd_, &st) != 0) return true;
  return uint64_t(st.st_size) != size_ || int64_t(st.MOTHER_MTIM.tv_sec) != mtime_sec_ ||
         int64_t(st.MOTHER_MTIM.tv_nsec) != mtime_nsec_;
}

void FileReader::read_exact(uint64_t offset, void* dst, size_t n, const std::string& tensor) const {
  auto* p = static_cast<uint8_t*>(dst);
  size_t done = 0;
  while (done < n) {
    // Large requests in <= 1 GiB pieces: Linux caps a single read at ~2 GiB anyway.
    size_t want = n - done;
    if (want > (size_t(1) << 30)) want = size_t(1) << 30;
    ssize_t got = ::pread(fd_, p + done, want, off_t(offset + done));
    if (got < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      throw Error("E_IO_READ",
                  "read error in " + path_ + (tensor.empty() ? "" : " (tensor " + tensor + ")") + " at byte " +
                      std::to_string(offset + done) + ": " + std::strerror(e),
                  path_, tensor);
    }
    if (got == 0) {
      throw Error("E_IO_TRUNCATED",
                  path_ + " ends at byte " + std::to_string(offset + done) + " but " +
                      std::to_string(offset + n) + " bytes were expected" +
                      (tensor.empty() ? "" : " (tensor " + tensor + ")") +
                      ": the file was truncated or replaced while being read",
                  path_, tensor);
    }
    done += size_t(got);
  }
}

}  // namespace mother::io
