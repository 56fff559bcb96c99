#include "io/file_reader.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"

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
  // Regular files ignore O_NONBLOCK, but drop it so reads keep their plain blocking meaning.
  int fl = ::fcntl(fd_, F_GETFL);
  if (fl >= 0) ::fcntl(fd_, F_SETFL, fl & ~O_NONBLOCK);
}

FileReader::~FileReader() {
  if (fd_ >= 0) ::close(fd_);
}

FileReader::FileReader(FileReader&& o) noexcept : path_(std::move(o.path_)), fd_(o.fd_), size_(o.size_) {
  o.fd_ = -1;
}

FileReader& FileReader::operator=(FileReader&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(o.path_);
    fd_ = o.fd_;
    size_ = o.size_;
    o.fd_ = -1;
  }
  return *this;
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
