// The CPU stats engine behind computeStats, free of Node so it can be tested and fuzzed alone.
// Reads every model's stretch of each tensor once, in chunks, with positional reads into staging
// buffers (the moments-only pass: straight from read-only mappings, docs/robustness.md), widens to
// float32, and feeds the moments and pairwise kernels on a small
// thread pool owned by the job. Threads take fixed items (slices of ~32k elements of a chunk, for
// all N models) from a counter, reduce each while it is in cache and fold the partial results in
// item order: no barrier per chunk, and results do not depend on the thread count or scheduling.
// See run_stats() for the contract.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>

#include "workers/job.h"

namespace mother::stats {

// Thrown by run_stats when the cancel flag was set; all threads are joined and files closed first.
struct Aborted {};

// Bytes run_stats will read: the chunked pass plus, when job.rank, a second whole-tensor pass over
// the tensors the rank kernel takes (rows > 1 and cols > 1).
uint64_t planned_bytes(const jobs::StatsJob& job);

// Runs the job on the calling thread plus job.threads - 1 helpers (0: all hardware threads).
// `progress(done, total)` is called on the calling thread, at most every 50 ms, never at the end
// (the caller reports the final total,total). Throws mother::Error (the first error any thread
// hit, e.g. E_IO_TRUNCATED naming file and tensor) or Aborted.
//
// Memory: per thread, N x item floats of staging (item <= 32k elements, or the chunk when smaller)
// and one raw chunk (job.chunk_bytes / N bytes x 2); a ring of 2 x threads + 1 slots of partial
// sums (N x N per metric, per tensor of the item when perTensor: <= 64 tensors). The rank pass
// holds one whole tensor for all N models as float32 (N x rows x cols x 4 bytes) because every
// pair needs both full matrices.
jobs::StatsOutput run_stats(const jobs::StatsJob& job, const std::shared_ptr<std::atomic<bool>>& cancel,
                            const std::function<void(uint64_t, uint64_t)>& progress);

}  // namespace mother::stats
