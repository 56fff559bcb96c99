// The rank pass of the CUDA addon runs on the CPU (cpu::diff_rank, the CPU addon's own kernel):
// this machine has no cuSOLVER, and rank is a small share of the work (a few LoRA tensors).
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "io/file_reader.h"
#include "workers/job.h"

namespace mother::cuda {

bool rank_eligible(const jobs::Tensor& t);  // rows > 1 and cols > 1, as the CPU runner

// Fills out (T x N x N, NaN for tensors not taken) with numerical ranks; upper triangle mirrored,
// diagonal 0. Uses `threads` threads (0: all). Adds the bytes read to *bytes_read. Returns false
// when cancelled. Throws mother::Error on I/O errors.
bool rank_pass(const jobs::StatsJob& job, const std::vector<io::FileReader>& files, unsigned threads,
               const std::shared_ptr<std::atomic<bool>>& cancel, std::vector<double>& out,
               std::atomic<uint64_t>* bytes_read);

}  // namespace mother::cuda
