// libFuzzer harness for GGUF: bytes -> parse_gguf, then (for inputs that parse) the file is written
// out and every tensor the kernels can dequantise is read by run_stats (the stats runner's GGUF
// path: covering blocks sliced, permuted rows) with tiny chunks, the file against itself.
// mother::Error is the expected rejection; crashes, sanitizer reports, other exceptions and broken
// invariants (data past the end, sizes that disagree with the type, bytes read != planned,
// n + nonfinite != numel, a copy that differs from itself) are findings.
// The last input byte is a knob: a claimed file size larger than the bytes held (the
// GgufNeedMore path), the chunk size, the thread count and the permutation.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "common/dtype.h"
#include "common/error.h"
#include "io/gguf.h"
#include "workers/stats_runner.h"

namespace {

const std::string& scratch_path() {
  static const std::string p = [] {
    const char* dir = std::getenv("TMPDIR");
    return std::string(dir && *dir ? dir : "/tmp") + "/mother-fuzz-gguf-" + std::to_string(getpid()) + ".gguf";
  }();
  return p;
}

void write_file(const std::string& path, const uint8_t* data, size_t size) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) std::abort();
  for (size_t done = 0; done < size;) {
    ssize_t w = ::write(fd, data + done, size - done);
    if (w <= 0) std::abort();
    done += size_t(w);
  }
  ::close(fd);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mother;
  const uint8_t knob = size ? data[size - 1] : 0;
  const bool claim_larger = (knob & 0x0f) == 0x0f;
  const uint64_t file_size = claim_larger ? uint64_t(size) + knob * 4099u : size;
  io::GgufFile g;
  try {
    g = io::parse_gguf(data, size, file_size, "fuzz.gguf");
  } catch (const io::GgufNeedMore& m) {
    if (!claim_larger || m.need <= size) std::abort();  // only when the file is longer than the bytes held
    return 0;
  } catch (const Error& e) {
    if (e.code.rfind("E_GGUF_", 0) != 0 || e.file != "fuzz.gguf") std::abort();
    return 0;
  }
  // Invariants of an accepted header.
  if (g.version != 2 && g.version != 3) std::abort();
  if (g.alignment == 0 || (g.alignment & (g.alignment - 1)) || g.data_offset % g.alignment) std::abort();
  for (const auto& t : g.tensors) {
    if (t.ne.empty() || t.ne.size() > 4 || t.offset % g.alignment) std::abort();
    uint64_t be, bb;
    if (t.known != io::ggml_type_block(t.type, &be, &bb)) std::abort();
    if (t.known && (t.ne[0] % be || t.nbytes != t.numel() / be * bb)) std::abort();
    if (t.nbytes && g.data_offset + t.offset + t.nbytes > g.file_size) std::abort();
  }
  if (claim_larger) return 0;  // the data is not all here

  // The runner over the dequantisable tensors: the file compared with itself.
  jobs::StatsJob job;
  const std::string& path = scratch_path();
  job.files = {path};
  job.models = 2;
  job.kurtosis = job.sumsq = job.maxabs = true;
  job.per_tensor = true;
  job.threads = 1 + ((knob >> 4) & 1);
  job.chunk_bytes = 8u << ((knob >> 5) & 7);  // 8 B .. 1 KiB: stretches start and end inside blocks
  for (const auto& t : g.tensors) {
    const char* name = io::ggml_type_name(t.type);
    DType dt;
    if (!t.known || !name || !source_dtype(name, &dt) || t.numel() == 0 || t.numel() > (1u << 20)) continue;
    jobs::Tensor jt;
    jt.name = t.name;
    jt.cols = t.ne[0];
    jt.rows = t.numel() / t.ne[0];
    jobs::Source s{0, g.data_offset + t.offset, dt};
    const uint32_t heads = 1 + (knob & 3);
    if ((knob & 4) && jt.rows % (2ull * heads) == 0) s.permute_heads = heads;
    jt.sources = {s, s};
    job.tensors.push_back(std::move(jt));
  }
  if (job.tensors.empty()) return 0;
  write_file(path, data, size);
  try {
    auto cancel = std::make_shared<std::atomic<bool>>(false);
    jobs::StatsOutput out = stats::run_stats(job, cancel, [](uint64_t done, uint64_t total) {
      if (done > total) std::abort();
    });
    if (out.bytes_read != stats::planned_bytes(job)) std::abort();
    for (size_t t = 0; t < job.tensors.size(); ++t) {
      if (out.n[t * 2] != out.n[t * 2 + 1] || out.n[t * 2] + out.nonfinite[t * 2] != double(job.tensors[t].numel()))
        std::abort();
      const double d = out.sumsq[t * 4 + 1];
      if (!(d == 0 || std::isnan(d))) std::abort();  // a copy against itself
    }
  } catch (const Error&) {
    std::abort();  // the header was accepted: every read is inside the file
  }
  return 0;
}
