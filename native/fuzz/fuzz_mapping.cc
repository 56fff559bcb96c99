// libFuzzer harness for the tensor mapping path: the input is written to a real file, then
//   read_header -> FileReader reads of every tensor's byte range -> to_f32 / to_f64 / moments
//   -> run_stats (the chunked multi-threaded reader used by computeStats) on the same file.
// mother::Error is the expected rejection; crashes, sanitizer reports, other exceptions, and
// results that break invariants (n + nonfinite != numel, bytes read != planned) are findings.
// The last input byte also drives "hostile" events: the file may be truncated after its header
// was read (the runner must answer E_IO_TRUNCATED, never read past the end).
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "common/error.h"
#include "cpu/kernels.h"
#include "io/file_reader.h"
#include "io/safetensors.h"
#include "workers/stats_runner.h"

namespace {

const std::string& scratch_path() {
  static const std::string p = [] {
    const char* dir = std::getenv("TMPDIR");
    return std::string(dir && *dir ? dir : "/tmp") + "/mother-fuzz-mapping-" + std::to_string(getpid()) +
           ".safetensors";
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

void check_moments(const mother::cpu::Moments& m, uint64_t numel) {
  if (m.n + m.nonfinite != numel) std::abort();
  (void)mother::cpu::excess_kurtosis(m);  // must not trap (UBSan) on any input
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mother;
  const std::string& path = scratch_path();
  write_file(path, data, size);
  uint8_t knob = size ? data[size - 1] : 0;

  io::Header h;
  try {
    h = io::read_header(path);
  } catch (const Error& e) {
    if (e.code.rfind("E_", 0) != 0) std::abort();
    return 0;
  }

  // Direct reads of every tensor's range, then the kernels on the bytes.
  try {
    io::FileReader f(path);
    for (const auto& t : h.tensors) {
      uint64_t len = t.end - t.begin;
      // Buffers of at least one element: kernels get real pointers even for zero-size tensors
      // (memcpy(nullptr, nullptr, 0) is UB; reported separately for kernels.convert).
      std::vector<uint8_t> raw(static_cast<size_t>(len) + 1);
      f.read_exact(h.data_offset + t.begin, raw.data(), size_t(len), t.name);
      DType dt;
      if (!computable_dtype(t.dtype, &dt)) continue;
      size_t n = size_t(t.numel());
      std::vector<float> x(n + 1);
      cpu::to_f32(dt, raw.data(), x.data(), n);
      check_moments(cpu::moments_f32(x.data(), n), n);
      std::vector<double> w(n + 1);
      cpu::to_f64(dt, raw.data(), w.data(), n);
      check_moments(cpu::moments_f64(w.data(), n), n);
    }
  } catch (const Error&) {
    std::abort();  // the file is exactly what the header described: no read may fail
  }

  // The stats runner over the computable tensors, the file compared with itself (2 models).
  jobs::StatsJob job;
  job.files = {path};
  job.models = 2;
  job.kurtosis = job.sumsq = job.sumabs = job.maxabs = job.dot = true;
  job.per_tensor = knob & 1;
  job.threads = 1 + ((knob >> 1) & 1);
  job.chunk_bytes = 8u << ((knob >> 2) & 7);  // 8 B .. 1 KiB: chunks split and pack tensors
  for (const auto& t : h.tensors) {
    DType dt;
    if (!computable_dtype(t.dtype, &dt) || t.numel() == 0) continue;
    jobs::Tensor jt;
    jt.name = t.name;
    jt.rows = 1;
    jt.cols = t.numel();
    jt.sources = {{0, h.data_offset + t.begin, dt}, {0, h.data_offset + t.begin, dt}};
    job.tensors.push_back(std::move(jt));
  }
  if (job.tensors.empty()) return 0;
  bool truncate = (knob & 0xe0) == 0xe0 && h.data_offset < size;
  if (truncate && ::truncate(path.c_str(), off_t(h.data_offset + (size - h.data_offset) / 2)) != 0) std::abort();
  try {
    auto cancel = std::make_shared<std::atomic<bool>>(false);
    jobs::StatsOutput out = stats::run_stats(job, cancel, [](uint64_t done, uint64_t total) {
      if (done > total) std::abort();
    });
    if (out.bytes_read != stats::planned_bytes(job)) std::abort();
    size_t T = job.tensors.size();
    for (size_t t = 0; t < T; ++t) {
      // A model against itself: distance 0 unless NaN is involved; both copies have equal moments.
      if (out.n[t * 2] != out.n[t * 2 + 1] || out.n[t * 2] + out.nonfinite[t * 2] != double(job.tensors[t].numel()))
        std::abort();
    }
  } catch (const Error& e) {
    if (!truncate || e.code != "E_IO_TRUNCATED") std::abort();
  }
  return 0;
}
