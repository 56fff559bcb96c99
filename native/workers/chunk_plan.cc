#include "workers/chunk_plan.h"

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/dtype.h"
#include "common/error.h"
#include "workers/sigbus_guard.h"

namespace mother::jobs {

std::vector<io::FileReader> open_job_files(const StatsJob& job) {
  std::vector<io::FileReader> files;
  files.reserve(job.files.size());
  for (const auto& f : job.files) files.emplace_back(f);
  for (const auto& t : job.tensors)
    for (const auto& s : t.sources) {
      const io::FileReader& r = files[s.file];
      const uint64_t len = stored_bytes(s.dtype, t.numel());
      if (s.offset > r.size() || len > r.size() - s.offset)
        throw Error("E_IO_TRUNCATED",
                    r.path() + " has " + std::to_string(r.size()) + " bytes but tensor \"" + t.name +
                        "\" needs bytes [" + std::to_string(s.offset) + ", " + std::to_string(s.offset + len) +
                        "): the file was truncated or replaced after its header was read",
                    r.path(), t.name);
    }
  return files;
}

std::string map_job_files(std::vector<io::FileReader>& files, const std::function<void(const std::string&)>& note,
                          bool copies_only) {
  const std::string env = std::getenv("MOTHER_MMAP") ? std::getenv("MOTHER_MMAP") : "";
  std::string why;
  bool map = true;
  if (env == "0") {
    note("MOTHER_MMAP=0: files read with pread");
    map = false;
  } else if (copies_only && env != "1") {
    map = false;
  } else if (!guard::ensure_installed(&why)) {
    note(why + ": files read with pread");
    map = false;
  }
  size_t mapped = 0, plain = 0;
  for (auto& f : files) {
    if (f.size() == 0) continue;
    if (map && f.map(&why)) {
      ++mapped;
    } else {
      if (map) note(f.path() + ": cannot be mapped (" + why + "), read with pread");
      ++plain;
    }
  }
  return plain == 0 ? "mmap" : mapped == 0 ? "pread" : "mmap+pread";
}

void copy_range(const io::FileReader& f, uint64_t off, void* dst, size_t n, const std::string& tensor) {
  if (n == 0) return;
  if (const unsigned char* base = f.data()) {
    const guard::Outcome o = guard::run(base, size_t(f.mapped_size()), [&] { std::memcpy(dst, base + off, n); });
    if (o.kind == guard::Outcome::Fault) throw_mapped_fault(f, tensor, o.code, o.addr);
    if (o.kind == guard::Outcome::Ok) {
      f.release(off, n);
      return;
    }
    // NoGuard (every guard slot in use): nothing was read; read with pread.
  }
  f.read_exact(off, dst, n, tensor);
}

void throw_mapped_fault(const io::FileReader& f, const std::string& tensor, int code, uintptr_t addr) {
  const uint64_t at = uint64_t(addr - reinterpret_cast<uintptr_t>(f.data()));
  const uint64_t now = f.current_size();
#ifdef BUS_MCEERR_AR
  const bool hw = code == BUS_MCEERR_AR || code == BUS_MCEERR_AO;
#else
  (void)code;
  const bool hw = false;
#endif
  if (!hw && (now == UINT64_MAX || now <= at || f.modified_since_open()))
    throw Error("E_IO_TRUNCATED",
                f.path() + " ends at byte " + (now == UINT64_MAX ? std::string("?") : std::to_string(now)) +
                    " but byte " + std::to_string(at) + " was needed (tensor " + tensor +
                    "): the file was truncated or replaced while being read",
                f.path(), tensor);
  throw Error("E_IO_READ",
              "read error in " + f.path() + " (tensor " + tensor + ") at byte " + std::to_string(at) + ": " +
                  (hw ? "hardware memory error" : "the mapped page could not be read (I/O error)"),
              f.path(), tensor);
}

void check_unchanged(const std::vector<io::FileReader>& files) {
  for (const auto& f : files)
    if (f.modified_since_open())
      throw Error("E_IO_TRUNCATED",
                  f.path() + " was modified while being read (now " + std::to_string(f.current_size()) +
                      " bytes, " + std::to_string(f.size()) +
                      " when opened): the file was truncated or replaced while being read",
                  f.path());
}

std::vector<Batch> plan_batches(const StatsJob& job, uint64_t chunk, size_t max_segments) {
  std::vector<Batch> batches;
  Batch cur;
  for (size_t t = 0; t < job.tensors.size(); ++t) {
    const Tensor& ten = job.tensors[t];
    for (uint64_t pos = 0, n = ten.numel(); pos < n;) {
      const uint64_t take = std::min(n - pos, chunk - cur.elems);
      cur.segs.push_back({t, pos, take, cur.elems});
      cur.elems += take;
      for (const auto& s : ten.sources) cur.bytes += stored_range(s.dtype, pos, take);
      pos += take;
      if (cur.elems == chunk || cur.segs.size() >= max_segments) batches.push_back(std::move(cur)), cur = Batch{};
    }
  }
  if (!cur.segs.empty()) batches.push_back(std::move(cur));
  return batches;
}

}  // namespace mother::jobs
