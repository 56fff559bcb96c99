// The StatsJob of src/native.ts as a C++ struct, its validation, and the JS StatsResult built from
// C++ results. Shared by the CPU runner (stats_worker.cc) and the CUDA addon, so it depends on
// node-addon-api and common/ only (no kernels).
#pragma once
#include <napi.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/dtype.h"

namespace mother::jobs {

struct Source {
  size_t file = 0;      // index into StatsJob::files
  uint64_t offset = 0;  // absolute byte offset in the file
  DType dtype = DType::F32;  // a plain type or a ggml block type (dequantised on the fly)
  // Non-zero: the file stores this rows x cols tensor's rows in llama.cpp's rotary order, as
  // convert_hf_to_gguf.py permutes q_proj / k_proj with this many heads; the reader returns the
  // rows in Hugging Face order (row r is read from stored_row(r), see below).
  uint32_t permute_heads = 0;
};

// The stored row that holds logical (Hugging Face) row r of a rows-row tensor permuted with
// `heads` heads: HF row h*hd + half*hd/2 + i (hd = rows / heads) is stored at h*hd + 2*i + half.
inline uint64_t stored_row(uint64_t r, uint64_t rows, uint32_t heads) {
  const uint64_t hd = rows / heads, half_hd = hd / 2;
  const uint64_t h = r / hd, rem = r % hd;
  return h * hd + 2 * (rem % half_hd) + rem / half_hd;
}

struct Tensor {
  std::string name;
  uint64_t rows = 0, cols = 0;  // rows * cols elements
  std::vector<Source> sources;  // one per model
  uint64_t numel() const { return rows * cols; }
};

struct StatsJob {
  std::vector<std::string> files;  // distinct paths, first-use order
  std::vector<Tensor> tensors;
  size_t models = 0;
  bool kurtosis = false, sumsq = false, sumabs = false, maxabs = false, dot = false, rank = false;
  // Spectral entropy of every 2-D tensor (per model) and of every pair's difference, on a block
  // of at most spectrum_short x spectrum_long rows/columns (shorter side x longer side) sampled at
  // seeded positions shared by all models; exact when the tensor fits the block.
  bool spectrum = false;
  size_t spectrum_short = 64, spectrum_long = 256;
  // Pairs (i, j), i != j, flattened, whose difference spectra to compute; empty: every pair.
  std::vector<uint32_t> spectrum_pairs;
  // Set by the CUDA pipeline: the spectrum pass hands each tensor's blocks to it instead of
  // computing the entropies on the CPU. whole: N blocks of R x C floats; tasks: (i, j) pairs,
  // flattened, j = UINT32_MAX for model i's own spectrum; out[k]: the entropy of task k. Returns
  // false to leave the tensor to the CPU (a block it cannot take); throws mother::Error on failure.
  std::function<bool(const float* whole, size_t N, size_t R, size_t C, const std::vector<uint32_t>& tasks, double* out)>
      spectrum_offload;
  bool per_tensor = false;
  unsigned threads = 0;                 // 0: all hardware threads
  uint64_t chunk_bytes = 8ull << 20;    // default 8 MiB
  // Rank options: unset (< 0 / 0) means the rank kernel's own defaults (cpu::RankOptions).
  double rank_noise = -1;
  size_t rank_exact_limit = 0;  // 0 = kernel default (a limit of 0 is not useful)
  size_t rank_max_rank = 0;
  int device = 0;
  bool any_pairwise() const { return sumsq || sumabs || maxabs || dot; }
  uint64_t total_bytes() const;  // sum over tensors and models of the stored bytes
};

// Validates and converts a JS StatsJob. Throws mother::Error with code E_JOB_INVALID (wrong type
// or missing field; the message names the field path, e.g. "tensors[3].sources[1].offset"),
// E_JOB_DTYPE (dtype not F64/F32/F16/BF16), E_JOB_MODELS (sources.length != models) or
// E_JOB_RANGE (numbers out of range or not integers).
StatsJob parse_job(const Napi::Value& value);

// Results as the runners produce them. Arrays are empty when not requested. Pairwise arrays are
// full symmetric N x N (or T x N x N when per_tensor), row-major; moments are t * N + k.
struct StatsOutput {
  std::string backend = "cpu";
  std::string isa;
  unsigned threads = 0;
  uint64_t bytes_read = 0;
  double seconds = 0;
  std::vector<double> n, nonfinite, mean, m2, kurtosis;
  std::vector<double> sumsq, sumabs, maxabs, dot, rank;
  std::vector<double> spectrum, weight_spectrum;  // T x N x N (NaN on the diagonal), T x N
  std::vector<double> spectrum_noise;              // T: entropy of a Gaussian block of the same shape
  // How the files were read ("mmap", "pread", "mmap+pread"; empty: not reported) and why not
  // mapped where they were not (e.g. a filesystem that refuses mmap).
  std::string io;
  std::vector<std::string> io_notes;
};

// Builds the JS StatsResult (Float64Arrays; keys absent when not requested).
Napi::Object build_result(Napi::Env env, const StatsOutput& out, const StatsJob& job);

}  // namespace mother::jobs
