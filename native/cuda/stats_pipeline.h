// The CUDA stats engine behind the CUDA addon's computeStats, free of Node (like the CPU's
// workers/stats_runner.h, with the same job, result and error contract).
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>

#include "workers/job.h"

namespace mother::cuda {

// Streams every model's stretch of each tensor through pinned staging buffers to the device
// (double-buffered: the host reads chunk b+1 while the GPU copies and computes chunk b), runs the
// moments and pairwise kernels there, and the rank pass on the CPU (stats::run_stats, rank only).
// Reads stats::planned_bytes(job) bytes, as the CPU runner.
// Throws mother::Error (E_CUDA_*, E_IO_*) or stats::Aborted when `cancel` is set; `progress` is
// called on the calling thread at most every 50 ms.
jobs::StatsOutput run_cuda_stats(const jobs::StatsJob& job, const std::shared_ptr<std::atomic<bool>>& cancel,
                                 const std::function<void(uint64_t, uint64_t)>& progress);

}  // namespace mother::cuda
