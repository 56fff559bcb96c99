// How a statistics job reads its files. open_job_files: every file once, each source's byte range
// checked against the file as it is now. plan_batches: how the job walks its tensors: chunks ("batches") of at most `chunk` elements per model,
// each holding one big tensor's stretch or many small tensors packed together, so hundreds of
// biases cost one read and one reduction, not hundreds. Shared by the CPU runner and the CUDA
// pipeline so both backends see the same chunks.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "io/file_reader.h"
#include "workers/job.h"

namespace mother::jobs {

// One stretch of one tensor inside a chunk: elements [elem_begin, elem_begin + count) of tensor
// `tensor`, stored at x_offset in every model's chunk buffer.
struct Segment {
  size_t tensor;
  uint64_t elem_begin, count, x_offset;
};

struct Batch {
  std::vector<Segment> segs;
  uint64_t elems = 0;  // elements per model
  uint64_t bytes = 0;  // bytes to read, all models together
};

// Opens every file of the job once (read-only) and checks that each source's byte range lies inside
// its file as it is now: a file shorter than its header promised was truncated or replaced after the
// header was read (E_IO_TRUNCATED, naming the file and the tensor).
std::vector<io::FileReader> open_job_files(const StatsJob& job);

// Maps the job's files for reading (FileReader::map) unless MOTHER_MMAP=0 or the SIGBUS guard
// cannot be installed; a file that cannot be mapped is read with pread. Every reason is passed to
// `note`. copies_only: the job copies every byte it reads, so its files are read with pread (a
// choice, not noted) unless MOTHER_MMAP=1. Returns what StatsOutput::io reports: "mmap", "pread"
// or "mmap+pread". Shared by the CPU runner and the CUDA pipeline so both read the same way.
std::string map_job_files(std::vector<io::FileReader>& files, const std::function<void(const std::string&)>& note,
                          bool copies_only = false);

// Copies bytes [off, off + n) of f into dst: from its mapping under the SIGBUS guard when it is
// mapped (a file cut short below them fails with E_IO_TRUNCATED, as a short pread), then gives
// those pages back (FileReader::release); with pread otherwise. For the CUDA pipeline's staging.
void copy_range(const io::FileReader& f, uint64_t off, void* dst, size_t n, const std::string& tensor);

// The error for a SIGBUS at address `addr` (si_code `code`) while reading f's mapping: the file
// ended before the faulting byte (truncated, or replaced in place): E_IO_TRUNCATED; else an I/O or
// memory error behind the mapping: E_IO_READ.
[[noreturn]] void throw_mapped_fault(const io::FileReader& f, const std::string& tensor, int code, uintptr_t addr);

// After every read and before the files are closed: a file modified since it was opened
// (truncated, or rewritten in place by cp or a sync tool) may have given us a mix of old and new
// bytes without any read failing; its model's statistics cannot be trusted (E_IO_TRUNCATED).
void check_unchanged(const std::vector<io::FileReader>& files);

// Packs every tensor of the job, in order, into batches of at most `chunk` elements per model and
// at most `max_segments` segments (a bound on per-segment partial sums; SIZE_MAX: none).
std::vector<Batch> plan_batches(const StatsJob& job, uint64_t chunk, size_t max_segments);

}  // namespace mother::jobs
