// How a statistics job reads its files. open_job_files: every file once, each source's byte range
// checked against the file as it is now. plan_batches: how the job walks its tensors: chunks ("batches") of at most `chunk` elements per model,
// each holding one big tensor's stretch or many small tensors packed together, so hundreds of
// biases cost one read and one reduction, not hundreds. Shared by the CPU runner and the CUDA
// pipeline so both backends see the same chunks.
#pragma once
#include <cstddef>
#include <cstdint>
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

// Packs every tensor of the job, in order, into batches of at most `chunk` elements per model and
// at most `max_segments` segments (a bound on per-segment partial sums; SIZE_MAX: none).
std::vector<Batch> plan_batches(const StatsJob& job, uint64_t chunk, size_t max_segments);

}  // namespace mother::jobs
