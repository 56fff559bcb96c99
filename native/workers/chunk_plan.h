// How a statistics job walks its tensors: chunks ("batches") of at most `chunk` elements per model,
// each holding one big tensor's stretch or many small tensors packed together, so hundreds of
// biases cost one read and one reduction, not hundreds. Shared by the CPU runner and the CUDA
// pipeline so both backends see the same chunks.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

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

// Packs every tensor of the job, in order, into batches of at most `chunk` elements per model and
// at most `max_segments` segments (a bound on per-segment partial sums; SIZE_MAX: none).
std::vector<Batch> plan_batches(const StatsJob& job, uint64_t chunk, size_t max_segments);

}  // namespace mother::jobs
