#include "cuda/stats_pipeline.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <thread>
#include <vector>

#include "common/error.h"
#include "cuda/cuda_check.h"
#include "cuda/device.h"
#include "cuda/kernels.cuh"
#include "io/file_reader.h"
#include "workers/errors.h"
#include "workers/chunk_plan.h"
#include "workers/stats_runner.h"  // stats::Aborted: one cancellation type for both backends

namespace mother::cuda {

namespace {


using jobs::Batch;
using jobs::Segment;

// Waits for both streams on every exit path, so no kernel or copy outlives the buffers it uses.
struct DrainStreams {
  cudaStream_t a, b;
  ~DrainStreams() {
    cudaStreamSynchronize(a);
    cudaStreamSynchronize(b);
  }
};

class Pipeline {
 public:
  Pipeline(const jobs::StatsJob& job, const std::shared_ptr<std::atomic<bool>>& cancel,
           const std::function<void(uint64_t, uint64_t)>& progress)
      : job_(job), cancel_(cancel), progress_(progress), N_(job.models), T_(job.tensors.size()) {}

  jobs::StatsOutput run() {
    const auto t0 = std::chrono::steady_clock::now();
    dev_ = use_device(job_.device);  // fails fast (E_CUDA_*) before any file is read
    open_files();
    plan();
    total_ = stats::planned_bytes(job_);
    if (!batches_.empty()) gpu_pass();
    if (job_.rank || job_.spectrum) {
      // The rank and spectrum passes run through the CPU addon's own runner (it reads and samples
      // the blocks): a copy of the job with only those, progress continuing from the GPU pass.
      // Ranks are computed there (cpu::diff_rank); the spectral entropies of each tensor's blocks
      // are handed back to the GPU (spectrum.cu; no cuSOLVER dependency).
      jobs::StatsJob rank_job = job_;
      rank_job.kurtosis = rank_job.sumsq = rank_job.sumabs = rank_job.maxabs = rank_job.dot = false;
      if (job_.spectrum)
        rank_job.spectrum_offload = [this](const float* whole, size_t N, size_t R, size_t C, const std::vector<uint32_t>& tasks,
                                           double* out) { return spectrum_on_device(whole, N, R, C, tasks, out); };
      const uint64_t before = bytes_read_.load();
      jobs::StatsOutput r = stats::run_stats(rank_job, cancel_, [&](uint64_t done, uint64_t) {
        if (progress_) progress_(before + done, total_);
      });
      out_.rank = std::move(r.rank);
      out_.spectrum = std::move(r.spectrum);
      out_.weight_spectrum = std::move(r.weight_spectrum);
      out_.spectrum_noise = std::move(r.spectrum_noise);
      bytes_read_ += r.bytes_read;
    }
    jobs::check_unchanged(files_);  // as the CPU runner: a file rewritten in place while read fails
    files_.clear();
    finish();
    out_.backend = "cuda";
    out_.isa = dev_.name;
    out_.threads = readers_;
    out_.bytes_read = bytes_read_.load();
    out_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return std::move(out_);
  }

 private:
  bool cancelled() const { return cancel_ && cancel_->load(std::memory_order_relaxed); }

  // The spectral entropies of one tensor's tasks (see jobs::StatsJob::spectrum_offload) on the GPU,
  // called from the CPU runner's thread 0. false for a block whose shorter side the kernel does not
  // take (> kSpectrumMaxSide: a job with a larger spectrumShort), which the CPU then computes.
  // Stops between batches when cancelled; the runner then aborts and discards the results.
  bool spectrum_on_device(const float* whole, size_t N, size_t R, size_t C, const std::vector<uint32_t>& tasks, double* out) {
    const size_t n = std::min(R, C), count = tasks.size() / 2, E = R * C;
    if (n == 0 || n > size_t(kSpectrumMaxSide) || std::max(R, C) > size_t(1) << 30 || N > size_t(1) << 30) return false;
    if (count == 0) return true;
    use_device(job_.device);  // the runner's thread is not the one that selected it
    SpectrumScratch& sc = spectrum_;
    if (!sc.stream) sc.stream = std::make_unique<Stream>();
    const cudaStream_t stream = sc.stream->get();
    // Tasks in batches whose Gram matrices stay within 256 MiB.
    const size_t batch = std::min(count, std::max<size_t>(1, (size_t(256) << 20) / (n * n * sizeof(double))));
    grow(sc.blocks, N * E * sizeof(float), "spectrum blocks");
    grow(sc.gram, spectrum_gram_doubles(int(R), int(C), int(batch)) * sizeof(double), "spectrum Gram matrices");
    grow(sc.out, count * sizeof(double), "spectrum results");
    // The runner gives every tensor the same task list: uploaded once.
    if (sc.host_tasks != tasks) {
      std::vector<int2> dev(count);
      for (size_t k = 0; k < count; ++k) dev[k] = make_int2(int(tasks[2 * k]), tasks[2 * k + 1] == UINT32_MAX ? -1 : int(tasks[2 * k + 1]));
      grow(sc.tasks, count * sizeof(int2), "spectrum tasks");
      check(cudaMemcpy(sc.tasks.as<void>(), dev.data(), count * sizeof(int2), cudaMemcpyHostToDevice), "cudaMemcpy (spectrum tasks)");
      sc.host_tasks = tasks;
    }
    check(cudaMemcpyAsync(sc.blocks.as<void>(), whole, N * E * sizeof(float), cudaMemcpyHostToDevice, stream),
          "cudaMemcpyAsync (spectrum blocks)");
    for (size_t k0 = 0; k0 < count && !cancelled(); k0 += batch) {
      const size_t m = std::min(batch, count - k0);
      spectral_entropy_batch(sc.blocks.as<float>(), int(R), int(C), sc.tasks.as<int2>() + k0, int(m), sc.gram.as<double>(),
                             sc.out.as<double>() + k0, stream);
      check(cudaStreamSynchronize(stream), "cudaStreamSynchronize (spectrum)");  // between batches: cancellation
    }
    check(cudaMemcpy(out, sc.out.as<void>(), count * sizeof(double), cudaMemcpyDeviceToHost), "cudaMemcpy (spectrum results)");
    return true;
  }

  // A device buffer of at least `bytes`, kept from tensor to tensor (reallocated only to grow).
  static void grow(DeviceBuffer& buf, size_t bytes, const char* what) {
    if (buf.bytes() < bytes) buf = DeviceBuffer(bytes, what);
  }

  // Every file once; every source's range checked against the file as it is now. Then mapped
  // read-only as the CPU runner maps them (jobs::map_job_files: pread where mmap cannot work, or
  // MOTHER_MMAP=0, with the reason in ioNotes).
  void open_files() {
    files_ = jobs::open_job_files(job_);
    out_.io = jobs::map_job_files(files_, [this](const std::string& s) {
      if (std::find(out_.io_notes.begin(), out_.io_notes.end(), s) == out_.io_notes.end() && out_.io_notes.size() < 8)
        out_.io_notes.push_back(s);
    });
  }

  void plan() {
    // GGUF block types and permuted rows are read by the CPU runner only (src/stats/compute.ts
    // sends such jobs there); refuse them here rather than misread them.
    for (const auto& t : job_.tensors)
      for (const auto& s : t.sources)
        if (is_quantized(s.dtype) || s.permute_heads)
          throw Error("E_JOB_DTYPE", "the CUDA backend does not read " + std::string(dtype_name(s.dtype)) +
                                         (s.permute_heads ? " permuted" : "") + " sources (tensor \"" + t.name +
                                         "\"): use the CPU backend", "", t.name);
    if (!(job_.kurtosis || job_.any_pairwise())) return;
    es_max_ = 1;
    bool first = true;
    uniform_ = true;
    for (const auto& t : job_.tensors)
      for (const auto& s : t.sources) {
        es_max_ = std::max(es_max_, dtype_size(s.dtype));
        if (first) dtype_ = s.dtype, first = false;
        else uniform_ &= s.dtype == dtype_;
      }
    // Chunk elements per model so that N x chunk x 4 bytes ~ chunkBytes (as the CPU); 64 Mi cap.
    uint64_t chunk = std::max<uint64_t>(1, job_.chunk_bytes / (uint64_t(N_) * 4));
    chunk = std::min<uint64_t>(chunk, 1ull << 26);
    batches_ = jobs::plan_batches(job_, chunk, SIZE_MAX);
    uint64_t largest = 1;
    for (const auto& b : batches_) largest = std::max(largest, b.elems);
    ld_ = (largest + 3) / 4 * 4;
    slot_ = ld_ * es_max_;
  }

  // Model k's part of a batch, as stored, into its slot of the pinned staging buffer: copied from
  // the file's mapping under the SIGBUS guard (a file cut short fails with E_IO_TRUNCATED, like a
  // short pread), its pages given back at once, or read with pread where the file is not mapped.
  // The staging copy stays: the asynchronous upload needs pinned memory, and pinning the mapping
  // itself (cudaHostRegister) would make every page of the file resident for the whole job and
  // turn a truncation into a device-side fault the guard cannot catch.
  void read_model(const Batch& batch, size_t k, unsigned char* stage) {
    unsigned char* slot = stage + k * slot_;
    for (const Segment& sg : batch.segs) {
      const jobs::Tensor& t = job_.tensors[sg.tensor];
      const jobs::Source& s = t.sources[k];
      const size_t es = dtype_size(s.dtype);
      // Element slots are es_max_ wide, so tensors of different dtypes in one batch never overlap.
      jobs::copy_range(files_[s.file], s.offset + sg.elem_begin * es, slot + sg.x_offset * es_max_,
                       size_t(sg.count * es), t.name);
    }
  }

  // Reads every model's part with up to `readers_` threads (the guard and pread are thread-safe).
  void read_batch(const Batch& batch, unsigned char* stage) {
    const unsigned n = unsigned(std::min<size_t>(readers_, N_));
    if (n <= 1 || batch.bytes < (1u << 20)) {
      for (size_t k = 0; k < N_; ++k) read_model(batch, k, stage);
    } else {
      std::atomic<size_t> next{0};
      FirstError err;
      auto work = [&] {
        try {
          for (size_t k; !err.has() && (k = next.fetch_add(1)) < N_;) read_model(batch, k, stage);
        } catch (...) {
          err.capture_current();
        }
      };
      std::vector<std::thread> pool;
      for (unsigned i = 1; i < n; ++i) {
        try {
          pool.emplace_back(work);
        } catch (...) {
          break;
        }
      }
      work();
      for (auto& th : pool) th.join();
      if (auto e = err.get()) throw *e;
    }
    bytes_read_ += batch.bytes;
  }

  void gpu_pass() {
    const size_t NN = N_ * N_, S = job_.per_tensor ? T_ : 1;
    PairFlags flags;
    flags.sumsq = job_.sumsq, flags.sumabs = job_.sumabs, flags.maxabs = job_.maxabs, flags.dot = job_.dot;
    const bool pairwise = flags.any();
    const bool direct_f32 = uniform_ && dtype_ == DType::F32;  // the kernels read the copy itself
    readers_ = job_.threads ? job_.threads : std::max(1u, std::thread::hardware_concurrency());
    readers_ = std::min(readers_, 64u);

    PairwisePlan pplan;
    if (pairwise) pplan = pairwise_plan(N_, dev_.sm_count, dev_.max_smem_optin);
    Stream copy, compute;
    Event copied[2], computed[2];
    PinnedBuffer stage[2] = {PinnedBuffer(N_ * slot_, "staging buffer"), PinnedBuffer(N_ * slot_, "staging buffer")};
    DeviceBuffer raw[2] = {DeviceBuffer(N_ * slot_, "chunk buffer"), DeviceBuffer(N_ * slot_, "chunk buffer")};
    DeviceBuffer f32(pairwise && !direct_f32 ? N_ * ld_ * sizeof(float) : 0, "float32 chunk buffer");
    DeviceBuffer macc(job_.kurtosis ? T_ * N_ * sizeof(MState) : 0, "moments accumulators");
    DeviceBuffer mscratch(job_.kurtosis ? moments_scratch(N_, ld_, dev_.sm_count) * sizeof(MState) : 0,
                          "moments partials");
    DeviceBuffer pacc(pairwise ? S * 4 * NN * sizeof(double) : 0, "pairwise accumulators");
    DeviceBuffer pscratch(pairwise ? pairwise_scratch(pplan) * sizeof(double) : 0, "pairwise partials");
    DrainStreams drain{copy.get(), compute.get()};  // destroyed first: waits before buffers go
    if (macc.bytes()) check(cudaMemsetAsync(macc.as<void>(), 0, macc.bytes(), compute.get()), "cudaMemsetAsync");
    if (pacc.bytes()) check(cudaMemsetAsync(pacc.as<void>(), 0, pacc.bytes(), compute.get()), "cudaMemsetAsync");

    auto last = std::chrono::steady_clock::now();
    for (size_t b = 0; b < batches_.size(); ++b) {
      const Batch& batch = batches_[b];
      const int s = int(b & 1);
      if (cancelled()) throw stats::Aborted{};
      // Staging s is free once the copy of batch b-2 has finished.
      if (b >= 2) check(cudaEventSynchronize(copied[s].get()), "cudaEventSynchronize");
      read_batch(batch, stage[s].data());
      // The device buffer s is free once batch b-2's kernels are done with it.
      if (b >= 2) check(cudaStreamWaitEvent(copy.get(), computed[s].get(), 0), "cudaStreamWaitEvent");
      check(cudaMemcpy2DAsync(raw[s].as<void>(), slot_, stage[s].data(), slot_, size_t(batch.elems * es_max_), N_,
                              cudaMemcpyHostToDevice, copy.get()),
            "cudaMemcpy2DAsync (host to device)");
      check(cudaEventRecord(copied[s].get(), copy.get()), "cudaEventRecord");
      check(cudaStreamWaitEvent(compute.get(), copied[s].get(), 0), "cudaStreamWaitEvent");
      unsigned char* dev = raw[s].as<unsigned char>();
      if (job_.kurtosis) {
        for (const Segment& sg : batch.segs) {
          const auto& src = job_.tensors[sg.tensor].sources;
          for (size_t k0 = 0, k1; k0 < N_; k0 = k1) {  // runs of models storing the same dtype
            const DType dt = src[k0].dtype;
            for (k1 = k0 + 1; k1 < N_ && src[k1].dtype == dt; ++k1) {}
            const size_t es = dtype_size(dt);
            moments_accumulate(dt, dev + k0 * slot_ + sg.x_offset * es_max_, k1 - k0, size_t(sg.count), slot_ / es,
                               mscratch.as<MState>(), macc.as<MState>() + sg.tensor * N_ + k0, dev_.sm_count,
                               compute.get());
          }
        }
      }
      if (pairwise) {
        const float* x = direct_f32 ? raw[s].as<float>() : f32.as<float>();
        if (!direct_f32) {
          if (uniform_) {
            convert_to_f32(dtype_, dev, f32.as<float>(), size_t(N_ * ld_), compute.get());
          } else {
            for (const Segment& sg : batch.segs)
              for (size_t k = 0; k < N_; ++k) {
                const DType dt = job_.tensors[sg.tensor].sources[k].dtype;
                convert_to_f32(dt, dev + k * slot_ + sg.x_offset * es_max_,
                               f32.as<float>() + k * ld_ + sg.x_offset, size_t(sg.count), compute.get());
              }
          }
        }
        double* acc = pacc.as<double>();
        if (job_.per_tensor) {
          for (const Segment& sg : batch.segs)
            pairwise_accumulate(pplan, flags, x + sg.x_offset, size_t(sg.count), size_t(ld_), pscratch.as<double>(),
                                acc + sg.tensor * 4 * NN, compute.get());
        } else {
          pairwise_accumulate(pplan, flags, x, size_t(batch.elems), size_t(ld_), pscratch.as<double>(), acc,
                              compute.get());
        }
      }
      check(cudaEventRecord(computed[s].get(), compute.get()), "cudaEventRecord");
      const auto now = std::chrono::steady_clock::now();
      if (progress_ && now - last >= std::chrono::milliseconds(50)) {
        last = now;
        progress_(bytes_read_.load(), total_);
      }
    }
    check(cudaStreamSynchronize(compute.get()), "kernels (cudaStreamSynchronize)");
    if (job_.kurtosis) {
      moments_.resize(T_ * N_);
      check(cudaMemcpy(moments_.data(), macc.as<void>(), macc.bytes(), cudaMemcpyDeviceToHost), "cudaMemcpy (moments)");
    }
    if (pairwise) {
      pairs_.resize(S * 4 * NN);
      check(cudaMemcpy(pairs_.data(), pacc.as<void>(), pacc.bytes(), cudaMemcpyDeviceToHost), "cudaMemcpy (pairwise)");
    }
  }

  void finish() {
    const size_t NN = N_ * N_, S = job_.per_tensor ? T_ : 1;
    auto take = [&](std::vector<double>& v, int metric, bool diag_zero) {
      v.assign(S * NN, 0.0);
      for (size_t s = 0; s < S; ++s) {
        const double* a = pairs_.data() + (s * 4 + size_t(metric)) * NN;
        double* o = v.data() + s * NN;
        for (size_t i = 0; i < N_; ++i) {
          o[i * N_ + i] = diag_zero ? 0.0 : a[i * N_ + i];
          for (size_t j = i + 1; j < N_; ++j) o[i * N_ + j] = o[j * N_ + i] = a[i * N_ + j];
        }
      }
    };
    if (!pairs_.empty()) {
      if (job_.sumsq) take(out_.sumsq, 0, true);
      if (job_.sumabs) take(out_.sumabs, 1, true);
      if (job_.maxabs) take(out_.maxabs, 2, true);
      if (job_.dot) take(out_.dot, 3, false);
    } else {
      // Nothing to read (every tensor empty): zeros, as the CPU runner.
      if (job_.sumsq) out_.sumsq.assign(S * NN, 0.0);
      if (job_.sumabs) out_.sumabs.assign(S * NN, 0.0);
      if (job_.maxabs) out_.maxabs.assign(S * NN, 0.0);
      if (job_.dot) out_.dot.assign(S * NN, 0.0);
    }
    if (job_.kurtosis) {
      const size_t M = T_ * N_;
      moments_.resize(M, MState{0, 0, 0, 0, 0, 0});
      out_.n.resize(M), out_.nonfinite.resize(M), out_.mean.resize(M), out_.m2.resize(M), out_.kurtosis.resize(M);
      for (size_t i = 0; i < M; ++i) {
        const MState& m = moments_[i];
        out_.n[i] = m.n;
        out_.nonfinite[i] = m.nonfinite;
        out_.mean[i] = m.n > 0 ? m.mean : std::numeric_limits<double>::quiet_NaN();
        out_.m2[i] = m.m2;
        out_.kurtosis[i] = mstate_kurtosis(m);
      }
    }
  }

  const jobs::StatsJob& job_;
  std::shared_ptr<std::atomic<bool>> cancel_;
  const std::function<void(uint64_t, uint64_t)>& progress_;
  size_t N_, T_;
  DeviceInfo dev_;
  std::vector<io::FileReader> files_;
  std::vector<Batch> batches_;
  size_t es_max_ = 4;
  bool uniform_ = true;
  DType dtype_ = DType::F32;
  uint64_t ld_ = 4, slot_ = 16;
  unsigned readers_ = 1;
  std::vector<MState> moments_;
  std::vector<double> pairs_;
  std::atomic<uint64_t> bytes_read_{0};
  uint64_t total_ = 0;
  jobs::StatsOutput out_;
  // The spectrum offload's stream and device memory, kept over the job's tensors.
  struct SpectrumScratch {
    std::unique_ptr<Stream> stream;
    DeviceBuffer blocks, gram, tasks, out;
    std::vector<uint32_t> host_tasks;  // the task list now in `tasks`
  } spectrum_;
};

}  // namespace

jobs::StatsOutput run_cuda_stats(const jobs::StatsJob& job, const std::shared_ptr<std::atomic<bool>>& cancel,
                                 const std::function<void(uint64_t, uint64_t)>& progress) {
  Pipeline p(job, cancel, progress);
  return p.run();
}

}  // namespace mother::cuda
