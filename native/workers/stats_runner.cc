#include "workers/stats_runner.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <thread>
#include <vector>

#include "common/error.h"
#include "cpu/kernels.h"
#include "io/file_reader.h"
#include "workers/chunk_plan.h"
#include "workers/errors.h"
#include "workers/sigbus_guard.h"

namespace mother::stats {

namespace {

// F32 sources are read straight into the float buffers; that needs a little-endian host.
static_assert(sizeof(float) == 4, "float32 expected");

// Reusable barrier (C++17 has no std::barrier). The last thread to arrive runs `completion`
// before anyone is released, so decisions made there (stop or go on) are seen by all threads.
class Barrier {
 public:
  explicit Barrier(size_t n) : n_(n) {}
  template <class F>
  void arrive_and_wait(F&& completion) {
    std::unique_lock<std::mutex> lock(mu_);
    size_t gen = gen_;
    if (++arrived_ == n_) {
      completion();
      arrived_ = 0;
      ++gen_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return gen_ != gen; });
    }
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  size_t n_, arrived_ = 0, gen_ = 0;
};

using jobs::Batch;
using jobs::Segment;

// A unit of the chunked pass: elements [lo, hi) of batch `batch` (offsets inside the batch).
struct Item {
  size_t batch;
  uint64_t lo, hi;
};
// Elements per model of an item: large enough that each pread moves >= 128 KiB of F32, small
// enough that a chunk splits into several items for the threads to share.
constexpr uint64_t kItemElems = 32768;

// A finished item's results, waiting to be folded: partial sums (one N x N part per entry of
// `parts`: the tensor when per_tensor, else a single part 0) and moments per (segment, model).
struct Slot {
  bool ready = false;
  std::vector<size_t> parts, mom_tensor;
  std::vector<double> sumsq, sumabs, maxabs, dot;
  std::vector<cpu::Moments> mom;
  uint64_t bytes = 0;
};

bool rank_eligible(const jobs::Tensor& t) { return t.rows > 1 && t.cols > 1; }

// The rows and columns of a tensor that the spectrum pass reads: all of a side that fits its cap
// (the shorter side against spectrum_short, the longer against spectrum_long), else a sorted
// sample without replacement, seeded by the tensor's name and shape so every model (and every
// run) reads the same block.
struct Block {
  std::vector<uint64_t> rows, cols;
  uint64_t elems() const { return uint64_t(rows.size()) * cols.size(); }
};
std::vector<uint64_t> sample_indices(uint64_t n, uint64_t keep, uint64_t seed) {
  std::vector<uint64_t> all(n);
  for (uint64_t i = 0; i < n; ++i) all[i] = i;
  if (keep >= n) return all;
  auto next = [&seed] {  // splitmix64
    uint64_t z = (seed += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  };
  for (uint64_t i = 0; i < keep; ++i) std::swap(all[i], all[i + next() % (n - i)]);  // partial Fisher-Yates
  all.resize(keep);
  std::sort(all.begin(), all.end());
  return all;
}
Block spectrum_block(const jobs::Tensor& t, size_t short_cap, size_t long_cap) {
  uint64_t seed = 1469598103934665603ull;  // FNV-1a of the name, then the shape
  for (unsigned char c : t.name) seed = (seed ^ c) * 1099511628211ull;
  seed ^= t.rows * 0x9e3779b97f4a7c15ull + t.cols;
  const bool tall = t.rows >= t.cols;
  Block b;
  b.rows = sample_indices(t.rows, tall ? long_cap : short_cap, seed);
  b.cols = sample_indices(t.cols, tall ? short_cap : long_cap, seed ^ 0x5bd1e995ull);
  return b;
}
// The spectral entropy that structureless differences of this block's shape have: the mean over
// four seeded standard Gaussian matrices (its spread is ~0.001-0.02 nats from 176 x 64 down to
// 16 x 16). The graph compares a family's differences with it: only clearly lower entropies are
// evidence (src/graph/spectrum.ts).
double noise_entropy(const Block& b, const jobs::Tensor& t) {
  const size_t R = b.rows.size(), C = b.cols.size();
  std::vector<float> g(R * C);
  uint64_t seed = 0x6a09e667f3bcc909ull ^ (t.rows * 0x9e3779b97f4a7c15ull + t.cols);
  auto next = [&seed] {  // splitmix64 -> (0, 1)
    uint64_t z = (seed += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (double((z ^ (z >> 31)) >> 11) + 0.5) * 0x1p-53;
  };
  double sum = 0;
  for (int rep = 0; rep < 4; ++rep) {
    for (auto& x : g) x = float(std::sqrt(-2 * std::log(next())) * std::cos(6.283185307179586 * next()));
    sum += cpu::spectral_entropy(g.data(), nullptr, R, C);
  }
  return sum / 4;
}

uint64_t spectrum_bytes(const jobs::Tensor& t, const Block& b) {
  uint64_t bytes = 0;  // whole sampled rows are read
  for (const auto& s : t.sources) {
    if (!is_quantized(s.dtype)) bytes += uint64_t(b.rows.size()) * t.cols * dtype_size(s.dtype);
    else for (uint64_t r : b.rows) bytes += stored_range(s.dtype, r * t.cols, t.cols);  // as read_stretch counts
  }
  return bytes;
}

uint64_t tensor_bytes(const jobs::Tensor& t) {
  uint64_t b = 0;
  for (const auto& s : t.sources) b += stored_bytes(s.dtype, t.numel());
  return b;
}

// Where read_plain / read_blocks take a stretch's bytes from: the file's mapping (under the SIGBUS
// guard, see read_stretch) or positional reads into the staging buffer.
struct FromMap {
  static constexpr bool mapped = true;
  const unsigned char* base;
  const unsigned char* at(uint64_t off, size_t, unsigned char*) const { return base + off; }
};
struct FromFile {
  static constexpr bool mapped = false;
  const io::FileReader& f;
  const std::string& tensor;
  const unsigned char* at(uint64_t off, size_t n, unsigned char* scratch) const {
    f.read_exact(off, scratch, n, tensor);
    return scratch;
  }
};

// Bytes [begin, end) of the file that elements [e0, e0 + n) of a source are stored in (whole
// blocks for ggml types; whole heads' rows when the rows are permuted).
std::pair<uint64_t, uint64_t> stored_span(const jobs::Tensor& t, const jobs::Source& s, uint64_t e0, uint64_t n) {
  if (n == 0) return {s.offset, s.offset};
  uint64_t first = e0, last = e0 + n - 1;
  if (s.permute_heads && t.cols) {
    const uint64_t hd = std::max<uint64_t>(1, t.rows / s.permute_heads);
    first = (first / t.cols / hd) * hd * t.cols;
    last = std::min(t.numel(), ((last / t.cols / hd) + 1) * hd * t.cols) - 1;
  }
  const uint64_t be = block_elems(s.dtype), bb = block_bytes(s.dtype);
  return {s.offset + (first / be) * bb, s.offset + (last / be + 1) * bb};
}

inline double max_nan(double a, double b) {
  if (a != a || b != b) return std::numeric_limits<double>::quiet_NaN();
  return a > b ? a : b;
}

class Runner {
 public:
  Runner(const jobs::StatsJob& job, const std::shared_ptr<std::atomic<bool>>& cancel,
         const std::function<void(uint64_t, uint64_t)>& progress)
      : job_(job), cancel_(cancel), progress_(progress), N_(job.models), T_(job.tensors.size()) {}

  jobs::StatsOutput run() {
    auto t0 = std::chrono::steady_clock::now();
    open_files();
    plan();
    allocate();
    total_ = planned_bytes(job_);

    unsigned want = job_.threads ? job_.threads : std::max(1u, std::thread::hardware_concurrency());
    want = std::min(want, 256u);
    // Helpers wait at a start gate until we know how many really started (spawning can fail).
    std::vector<std::thread> helpers;
    std::mutex gate_mu;
    std::condition_variable gate_cv;
    bool go = false;
    for (unsigned i = 1; i < want; ++i) {
      try {
        helpers.emplace_back([this, i, &gate_mu, &gate_cv, &go] {
          {
            std::unique_lock<std::mutex> lock(gate_mu);
            gate_cv.wait(lock, [&] { return go; });
          }
          work(i);
        });
      } catch (...) {
        break;  // run with the threads we have
      }
    }
    nthreads_ = unsigned(helpers.size()) + 1;
    barrier_ = std::make_unique<Barrier>(nthreads_);
    ring_ = 2 * nthreads_ + 1;
    slots_.resize(ring_);
    {
      std::lock_guard<std::mutex> lock(gate_mu);
      go = true;
    }
    gate_cv.notify_all();
    work(0);
    for (auto& h : helpers) h.join();
    if (!error_.has() && !aborted_) {
      try {
        jobs::check_unchanged(files_);
      } catch (...) {
        error_.capture_current();
      }
    }
    files_.clear();  // unmap and close every file before reporting anything

    if (auto e = error_.get()) throw *e;
    if (aborted_) throw Aborted{};
    finish();
    out_.backend = "cpu";
    out_.isa = cpu::isa_name(cpu::active_isa());
    out_.threads = nthreads_;
    out_.bytes_read = bytes_read_.load();
    out_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return std::move(out_);
  }

 private:
  // Every file once; every source's range checked against the file as it is now. Then each file is
  // mapped (read-only, no populate) when the SIGBUS guard is in place; a file that cannot be mapped
  // is read with pread, and the reason is noted in the result (ioNotes). Only the moments-only pass
  // reads the mapping in place: every other read is a copy (pairwise sums copy each stretch into
  // the threads' buffers, the rank and spectrum passes whole tensors), and a copy from the mapping
  // costs more than pread's, because each stretch's 2 MiB blocks are mapped and given back again
  // (docs/robustness.md). So other jobs read with pread, unless MOTHER_MMAP=1.
  void open_files() {
    files_ = jobs::open_job_files(job_);
    const bool in_place = job_.kurtosis && !job_.any_pairwise();
    out_.io = jobs::map_job_files(files_, [this](const std::string& s) { note(s); }, !in_place);
  }

  void note(const std::string& s) {
    if (std::find(out_.io_notes.begin(), out_.io_notes.end(), s) != out_.io_notes.end()) return;
    if (out_.io_notes.size() < 8) out_.io_notes.push_back(s);
    else if (out_.io_notes.size() == 8) out_.io_notes.push_back("(further notes left out)");
  }

  void plan() {
    // Chunk elements so that N models x chunk x 4 bytes ~ chunk_bytes; at most 16 Mi elements.
    chunk_ = std::max<uint64_t>(1, job_.chunk_bytes / (uint64_t(N_) * 4));
    chunk_ = std::min<uint64_t>(chunk_, 1ull << 24);
    if (job_.kurtosis || job_.any_pairwise()) {
      // per_tensor keeps N x N partial sums per segment until an item is folded: at most 64
      // segments per batch bound that memory (~64 x N^2 x 32 bytes per slot).
      batches_ = jobs::plan_batches(job_, chunk_, job_.per_tensor ? 64 : SIZE_MAX);
      if (!batches_.empty()) {
        uint64_t largest = 0;
        for (const auto& b : batches_) largest = std::max(largest, b.elems);
        chunk_ = largest;  // no bigger buffers than the data needs
      }
      for (size_t b = 0; b < batches_.size(); ++b) {
        const uint64_t e = batches_[b].elems, parts = std::max<uint64_t>(1, (e + kItemElems - 1) / kItemElems);
        for (uint64_t p = 0; p < parts; ++p) {
          items_.push_back({b, e * p / parts, e * (p + 1) / parts});
          item_max_ = std::max(item_max_, items_.back().hi - items_.back().lo);
        }
      }
    }
    if (job_.rank)
      for (size_t t = 0; t < T_; ++t)
        if (rank_eligible(job_.tensors[t])) rank_tensors_.push_back(t);
    if (job_.spectrum)
      for (size_t t = 0; t < T_; ++t)
        if (rank_eligible(job_.tensors[t])) spectrum_tensors_.push_back(t);
    blocks_.resize(T_);
    for (size_t t : spectrum_tensors_) blocks_[t] = spectrum_block(job_.tensors[t], job_.spectrum_short, job_.spectrum_long);
    if (!spectrum_tensors_.empty()) {  // the same tasks for every tensor: each model alone, then the pairs
      for (size_t i = 0; i < N_; ++i) spectrum_tasks_.insert(spectrum_tasks_.end(), {uint32_t(i), kOwn});
      const std::vector<uint32_t>& listed = job_.spectrum_pairs;
      if (!listed.empty()) spectrum_tasks_.insert(spectrum_tasks_.end(), listed.begin(), listed.end());
      else
        for (size_t i = 0; i < N_; ++i)
          for (size_t j = i + 1; j < N_; ++j) spectrum_tasks_.insert(spectrum_tasks_.end(), {uint32_t(i), uint32_t(j)});
    }
    for (const auto& t : job_.tensors)
      for (const auto& s : t.sources) any_f64_ |= s.dtype == DType::F64;
  }

  void allocate() {
    size_t NN = N_ * N_, P = job_.per_tensor ? T_ * NN : NN;
    if (job_.sumsq) out_.sumsq.assign(P, 0.0);
    if (job_.sumabs) out_.sumabs.assign(P, 0.0);
    if (job_.maxabs) out_.maxabs.assign(P, 0.0);
    if (job_.dot) out_.dot.assign(P, 0.0);
    if (job_.rank) out_.rank.assign(T_ * NN, std::numeric_limits<double>::quiet_NaN());
    if (job_.kurtosis) acc_.assign(T_ * N_, cpu::Moments{});
    if (job_.spectrum) {
      out_.spectrum.assign(T_ * NN, std::numeric_limits<double>::quiet_NaN());
      out_.weight_spectrum.assign(T_ * N_, std::numeric_limits<double>::quiet_NaN());
      out_.spectrum_noise.assign(T_, std::numeric_limits<double>::quiet_NaN());
    }
  }

  // Part `part` (N x N) of a slot's partial sums.
  cpu::PairOutputs outputs_at(Slot& sl, size_t part) {
    const size_t off = part * N_ * N_;
    cpu::PairOutputs o;
    if (job_.sumsq) o.sumsq = sl.sumsq.data() + off;
    if (job_.sumabs) o.sumabs = sl.sumabs.data() + off;
    if (job_.maxabs) o.maxabs = sl.maxabs.data() + off;
    if (job_.dot) o.dot = sl.dot.data() + off;
    return o;
  }

  // Record the error being handled and make the other threads stop at their next check.
  void fail() {
    error_.capture_current();
    halt_ = true;
  }
  bool halted() const { return halt_.load(std::memory_order_relaxed) || (cancel_ && cancel_->load(std::memory_order_relaxed)); }

  // Called by every thread at the same points; the completion step decides for everyone whether
  // to stop (cancelled or an error), so no thread is left waiting at a barrier.
  void sync(unsigned tid, uint64_t add_done) {
    barrier_->arrive_and_wait([&] {
      done_ += add_done;
      if (cancel_ && cancel_->load()) aborted_ = true;
      stop_ = aborted_ || error_.has();
    });
    if (tid == 0 && !stop_) report_progress();
  }

  // On the calling thread (tid 0) only, at most every 50 ms.
  void report_progress() {
    if (!progress_) return;
    auto now = std::chrono::steady_clock::now();
    if (now - last_progress_ >= std::chrono::milliseconds(50)) {
      const uint64_t done = done_ + streamed_.load(std::memory_order_relaxed);
      if (done >= total_) return;  // the caller reports the end
      last_progress_ = now;
      progress_(done, total_);
    }
  }

  // Adds a finished item's partial sums and moments to the outputs. Called in item order (under
  // fold_mu_), so every result is the same whatever the thread count and scheduling.
  void fold(Slot& sl) {
    const size_t NN = N_ * N_;
    for (size_t p = 0; p < sl.parts.size(); ++p) {
      const size_t base = job_.per_tensor ? sl.parts[p] * NN : 0, off = p * NN;
      if (job_.sumsq) for (size_t i = 0; i < NN; ++i) out_.sumsq[base + i] += sl.sumsq[off + i];
      if (job_.sumabs) for (size_t i = 0; i < NN; ++i) out_.sumabs[base + i] += sl.sumabs[off + i];
      if (job_.dot) for (size_t i = 0; i < NN; ++i) out_.dot[base + i] += sl.dot[off + i];
      if (job_.maxabs)
        for (size_t i = 0; i < NN; ++i) out_.maxabs[base + i] = max_nan(out_.maxabs[base + i], sl.maxabs[off + i]);
    }
    for (size_t q = 0; q < sl.mom_tensor.size(); ++q)
      for (size_t k = 0; k < N_; ++k) {
        cpu::Moments& a = acc_[sl.mom_tensor[q] * N_ + k];
        a = cpu::merge(a, sl.mom[q * N_ + k]);
      }
    streamed_ += sl.bytes;
  }

  // Reads item i (elements [lo, hi) of one batch) for all N models into x and reduces it into
  // the slot: moments per (segment, model) and pairwise partial sums (one N x N part, or one per
  // segment when per_tensor), while the data is still in cache.
  void run_item(const Item& it, Slot& sl, std::vector<float>& x, size_t stride, std::vector<unsigned char>& raw,
                std::vector<double>& wide, std::vector<const float*>& ptrs) {
    const Batch& batch = batches_[it.batch];
    const bool pairwise = job_.any_pairwise();
    sl.parts.clear();
    sl.mom_tensor.clear();
    sl.mom.clear();
    sl.bytes = 0;
    if (pairwise && !job_.per_tensor) sl.parts.push_back(0);
    for (const Segment& sg : batch.segs) {
      const uint64_t s0 = std::max(it.lo, sg.x_offset), s1 = std::min(it.hi, sg.x_offset + sg.count);
      if (s0 >= s1) continue;
      if (pairwise && job_.per_tensor) sl.parts.push_back(sg.tensor);
      if (job_.kurtosis) sl.mom_tensor.push_back(sg.tensor);
    }
    const size_t P = sl.parts.size() * N_ * N_;
    if (job_.sumsq) sl.sumsq.assign(P, 0.0);
    if (job_.sumabs) sl.sumabs.assign(P, 0.0);
    if (job_.maxabs) sl.maxabs.assign(P, 0.0);
    if (job_.dot) sl.dot.assign(P, 0.0);
    sl.mom.assign(sl.mom_tensor.size() * N_, cpu::Moments{});
    size_t part = 0, q = 0;
    for (const Segment& sg : batch.segs) {
      const uint64_t s0 = std::max(it.lo, sg.x_offset), s1 = std::min(it.hi, sg.x_offset + sg.count);
      if (s0 >= s1) continue;
      const jobs::Tensor& ten = job_.tensors[sg.tensor];
      for (size_t k = 0; k < N_ && !halted(); ++k) {
        cpu::Moments* m = job_.kurtosis ? &sl.mom[q * N_ + k] : nullptr;
        read_stretch(ten, k, sg.elem_begin + (s0 - sg.x_offset), s1 - s0, x.data() + k * stride + (s0 - it.lo), raw,
                     wide, m, pairwise);
        // Copied into x (or reduced): its pages need not stay mapped. A page shared with the
        // neighbouring item, if another thread is reading it now, is simply faulted in again.
        if (pairwise) release_stretch(ten, k, sg.elem_begin + (s0 - sg.x_offset), s1 - s0);
        sl.bytes += stored_range(ten.sources[k].dtype, sg.elem_begin + (s0 - sg.x_offset), s1 - s0);
      }
      if (job_.kurtosis) ++q;
      if (pairwise && job_.per_tensor && !halted()) {
        for (size_t k = 0; k < N_; ++k) ptrs[k] = x.data() + k * stride + (s0 - it.lo);
        cpu::pairwise_f32(ptrs.data(), N_, size_t(s1 - s0), 0, N_, outputs_at(sl, part++));
      }
    }
    if (pairwise && !job_.per_tensor && !halted()) {
      for (size_t k = 0; k < N_; ++k) ptrs[k] = x.data() + k * stride;
      cpu::pairwise_f32(ptrs.data(), N_, size_t(it.hi - it.lo), 0, N_, outputs_at(sl, 0));
    }
  }

  // Reads model k's stretch of a tensor (elements [e0, e0 + count)) as float32 into dst.
  // F64 sources with kurtosis also get exact float64 moments merged into `m`. values = false: only
  // the moments are wanted, and an aligned F32 stretch of a mapped file is reduced where it lies
  // (dst is then left as it was).
  //
  // A mapped file is read under the SIGBUS guard: if the file shrank below the stretch, the access
  // faults, the guard jumps back here and the read fails with E_IO_TRUNCATED like a short pread.
  // The reading code inside the guard (read_plain / read_blocks with FromMap) touches only raw
  // pointers and kernels: nothing there allocates, locks or throws.
  void read_stretch(const jobs::Tensor& t, size_t k, uint64_t e0, uint64_t count, float* dst,
                    std::vector<unsigned char>& raw, std::vector<double>& wide, cpu::Moments* m, bool values = true) {
    const jobs::Source& s = t.sources[k];
    const io::FileReader& f = files_[s.file];
    if (const unsigned char* base = f.data()) {
      const FromMap src{base};
      const guard::Outcome o = guard::run(base, size_t(f.mapped_size()), [&] {
        if (is_quantized(s.dtype) || s.permute_heads) read_blocks(src, t, s, e0, count, dst, raw, m);
        else read_plain(src, s, e0, count, dst, raw, wide, m, values);
      });
      if (o.kind == guard::Outcome::Ok) return;
      if (o.kind == guard::Outcome::Fault) jobs::throw_mapped_fault(f, t.name, o.code, o.addr);
      // NoGuard (every guard slot in use): nothing was read yet; read this stretch with pread.
    }
    const FromFile src{f, t.name};
    if (is_quantized(s.dtype) || s.permute_heads) read_blocks(src, t, s, e0, count, dst, raw, m);
    else read_plain(src, s, e0, count, dst, raw, wide, m, values);
  }

  // A stretch of a plain (F64/F32/F16/BF16) source, in pieces bounded by the staging buffer (the
  // rank pass reads whole tensors through it); the same pieces and kernels whatever the source,
  // so mapped and pread reads give bit-identical results.
  template <class Src>
  void read_plain(const Src& src, const jobs::Source& s, uint64_t e0, uint64_t count, float* dst,
                  std::vector<unsigned char>& raw, std::vector<double>& wide, cpu::Moments* m, bool values) {
    const size_t esz = dtype_size(s.dtype);
    const uint64_t piece_max = std::max<uint64_t>(1, raw.size() / 8);
    for (uint64_t done = 0; done < count;) {
      const uint64_t n = std::min(count - done, piece_max);
      const uint64_t off = s.offset + (e0 + done) * esz;
      if (s.dtype == DType::F32) {
        if constexpr (Src::mapped) {
          const unsigned char* p = src.base + off;
          if (!values && m && reinterpret_cast<uintptr_t>(p) % alignof(float) == 0) {
            // Moments only: reduce the page-cache bytes where they are mapped, no copy.
            *m = cpu::merge(*m, cpu::moments_f32(reinterpret_cast<const float*>(p), size_t(n)));
            bytes_read_ += n * esz;
            done += n;
            continue;
          }
          std::memcpy(dst + done, p, size_t(n * 4));
        } else {
          src.f.read_exact(off, dst + done, size_t(n * 4), src.tensor);
        }
      } else {
        const unsigned char* p = src.at(off, size_t(n * esz), raw.data());
        cpu::to_f32(s.dtype, p, dst + done, size_t(n));
        if (m && s.dtype == DType::F64) {
          cpu::to_f64(DType::F64, p, wide.data(), size_t(n));
          *m = cpu::merge(*m, cpu::moments_f64(wide.data(), size_t(n)));
        }
      }
      if (m && s.dtype != DType::F64) *m = cpu::merge(*m, cpu::moments_f32(dst + done, size_t(n)));
      bytes_read_ += n * esz;
      done += n;
    }
  }

  // A stretch of a GGUF source: rows in stored order (permute_heads) and/or ggml blocks. Logical
  // elements [e0, e0 + count) become pieces contiguous in the file (a whole stretch, or one per
  // row when the rows are permuted); each piece reads the blocks that cover it, dequantises whole
  // blocks straight into dst and the partial first and last blocks through a small buffer.
  template <class Src>
  void read_blocks(const Src& src, const jobs::Tensor& t, const jobs::Source& s, uint64_t e0, uint64_t count,
                   float* dst, std::vector<unsigned char>& raw, cpu::Moments* m) {
    const uint64_t be = block_elems(s.dtype), bb = block_bytes(s.dtype);
    const uint64_t blocks_max = std::max<uint64_t>(1, raw.size() / bb);  // raw holds >= 8 KiB: >= 39 blocks of 210 B
    float part[256];
    for (uint64_t done = 0; done < count;) {
      // The next contiguous piece: logical [e, e + n) stored at element g.
      const uint64_t e = e0 + done;
      uint64_t n = count - done, g = e;
      if (s.permute_heads) {
        const uint64_t r = e / t.cols, c = e % t.cols;
        n = std::min(n, t.cols - c);
        g = jobs::stored_row(r, t.rows, s.permute_heads) * t.cols + c;
      }
      float* out = dst + done;
      const uint64_t end = g + n;
      while (g < end) {
        const uint64_t blk = g / be, last = (end - 1) / be;
        const uint64_t nb = std::min(last - blk + 1, blocks_max);
        const unsigned char* p = src.at(s.offset + blk * bb, size_t(nb * bb), raw.data());
        const uint64_t cover = std::min(end, (blk + nb) * be);
        if (uint64_t skip = g - blk * be) {  // starts inside a block
          cpu::dequantize(s.dtype, p, part, 1);
          const uint64_t take = std::min(be - skip, cover - g);
          std::memcpy(out, part + skip, size_t(take) * 4);
          out += take, g += take, p += bb;
        }
        if (const uint64_t whole = (cover - g) / be) {
          cpu::dequantize(s.dtype, p, out, size_t(whole));
          out += whole * be, g += whole * be, p += whole * bb;
        }
        if (g < cover) {  // ends inside a block
          cpu::dequantize(s.dtype, p, part, 1);
          std::memcpy(out, part, size_t(cover - g) * 4);
          out += cover - g, g = cover;
        }
      }
      done += n;
    }
    if (m) *m = cpu::merge(*m, cpu::moments_f32(dst, size_t(count)));
    bytes_read_ += stored_range(s.dtype, e0, count);
  }

  // Gives back the pages of model k's stretch [e0, e0 + count) of tensor t (MADV_DONTNEED, whole
  // 2 MiB blocks: FileReader::release): read and reduced, they need not stay in our resident set.
  // Pages of a block that another thread still reads are simply faulted in again by it.
  void release_stretch(const jobs::Tensor& t, size_t k, uint64_t e0, uint64_t count) {
    const jobs::Source& s = t.sources[k];
    const io::FileReader& f = files_[s.file];
    if (!f.data()) return;
    const auto span = stored_span(t, s, e0, count);
    f.release(span.first, span.second - span.first);
  }

  // Per model being read by the moments pass: its bytes read but not yet given back.
  struct Pending {
    const io::FileReader* file = nullptr;
    uint64_t lo = 0, hi = 0;
  };
  // Adds model k's span of a stretch just read to p and gives back the whole 2 MiB granules
  // behind it (a huge page-cache folio mapped by one page-table entry is dropped once, not once per
  // item); a span elsewhere (another tensor, another file) first gives back what p held.
  void trail(Pending& p, const jobs::Tensor& t, size_t k, uint64_t e0, uint64_t count) {
    const jobs::Source& s = t.sources[k];
    const io::FileReader& f = files_[s.file];
    if (!f.data() || count == 0) return;
    const auto span = stored_span(t, s, e0, count);
    if (p.file == &f && span.first <= p.hi + 4096 && span.second >= p.hi) {
      p.hi = span.second;
    } else {
      flush(p);
      p.file = &f, p.lo = span.first, p.hi = span.second;
    }
    const uint64_t cut = p.hi / kReleaseGranule * kReleaseGranule;
    if (cut > p.lo) {
      p.file->release(p.lo, cut - p.lo);
      p.lo = cut;
    }
  }
  static void flush(Pending& p) {
    if (p.file && p.hi > p.lo) p.file->release(p.lo, p.hi - p.lo);
    p = Pending{};
  }
  static constexpr uint64_t kReleaseGranule = uint64_t(2) << 20;

  // The chunked pass of a moments-only job (kurtosis, no pairwise sums: the scale path's sketch
  // pass), model-major: each thread takes a whole model and reads its items in order, merging each
  // item's moments into that model's accumulators in item order, exactly as fold() does in the
  // item-major pass (so the results are bit for bit the same, whatever the thread count). Only
  // the model being read is mapped, per thread, trailing by at most two 2 MiB granules: the
  // resident set the mapping adds stays a few MiB whatever the number of models (the item-major
  // pass would hold every model's current granule at once, N x 4 MiB), and each thread needs a
  // buffer of one item, not one per model.
  void moments_pass(unsigned tid, std::vector<unsigned char>& raw, std::vector<double>& wide) {
    std::vector<float> x;
    try {
      x.assign(size_t(std::max<uint64_t>(item_max_, 1)), 0.0f);
    } catch (...) {
      fail();
      return;
    }
    Pending p;
    try {
      for (size_t k; !halted() && (k = next_model_.fetch_add(1)) < N_;) {
        for (size_t i = 0; i < items_.size() && !halted(); ++i) {
          const Item& it = items_[i];
          uint64_t bytes = 0;
          for (const Segment& sg : batches_[it.batch].segs) {
            const uint64_t s0 = std::max(it.lo, sg.x_offset), s1 = std::min(it.hi, sg.x_offset + sg.count);
            if (s0 >= s1) continue;
            const jobs::Tensor& ten = job_.tensors[sg.tensor];
            const uint64_t e0 = sg.elem_begin + (s0 - sg.x_offset);
            cpu::Moments m{};
            read_stretch(ten, k, e0, s1 - s0, x.data(), raw, wide, &m, false);
            cpu::Moments& a = acc_[sg.tensor * N_ + k];
            a = cpu::merge(a, m);
            bytes += stored_range(ten.sources[k].dtype, e0, s1 - s0);
            trail(p, ten, k, e0, s1 - s0);
          }
          streamed_ += bytes;
          if (tid == 0 && i % 64 == 63) report_progress();
        }
        flush(p);
      }
    } catch (...) {
      flush(p);
      fail();
    }
  }

  // Chunked pass with pairwise sums: threads take items (fixed slices of the batches, ~kItemElems
  // elements per model) from a counter, each reading its item for all N models and reducing it at
  // once while it is in cache; finished items are folded into the outputs in item order through a
  // ring of slots. No barrier per chunk: a thread that the OS preempts (a loaded machine) holds up
  // only the fold of its own item, never the others' reading and computing. The items do not depend
  // on the thread count, so neither do the results. Each model's stretch is copied into x and its
  // pages given back at once (run_item), so the mapping adds about one stretch per thread to the
  // resident set, not one per model.
  void items_pass(unsigned tid, std::vector<unsigned char>& raw, std::vector<double>& wide,
                  std::vector<const float*>& ptrs) {
    std::vector<float> x;
    try {
      if (!items_.empty()) x.assign(size_t(item_max_) * N_, 0.0f);
    } catch (...) {
      fail();
    }
    for (;;) {
      if (halted()) break;
      const size_t i = next_item_.fetch_add(1);
      if (i >= items_.size()) break;
      {
        std::unique_lock<std::mutex> lock(fold_mu_);
        while (!(i < folded_ + ring_) && !halted()) fold_cv_.wait_for(lock, std::chrono::milliseconds(20));
      }
      if (halted()) break;
      Slot& sl = slots_[i % ring_];  // ours alone: its previous item (i - ring_) is folded
      try {
        run_item(items_[i], sl, x, size_t(item_max_), raw, wide, ptrs);
      } catch (...) {
        fail();
        fold_cv_.notify_all();
        break;
      }
      {
        std::lock_guard<std::mutex> lock(fold_mu_);
        sl.ready = true;
        while (folded_ < items_.size() && slots_[folded_ % ring_].ready) {
          Slot& f = slots_[folded_ % ring_];
          if (!halted()) fold(f);
          f.ready = false;
          ++folded_;
        }
      }
      fold_cv_.notify_all();
      if (tid == 0) report_progress();
    }
  }

  void work(unsigned tid) {
    std::vector<unsigned char> raw;
    std::vector<double> wide;
    std::vector<const float*> ptrs(N_);
    try {
      raw.resize(size_t(std::max<uint64_t>(chunk_, 1024)) * 8);
      wide.resize(any_f64_ && job_.kurtosis ? raw.size() / 8 : 0);
    } catch (...) {
      fail();
    }
    if (job_.kurtosis && !job_.any_pairwise()) {
      moments_pass(tid, raw, wide);
    } else {
      items_pass(tid, raw, wide, ptrs);
    }
    sync(tid, 0);  // everyone agrees on stop_ before the rank pass (or the end)
    if (tid == 0) next_model_ = 0;  // the moments pass took models from it; the next sync orders this
    if (stop_) return;

    for (size_t t : rank_tensors_) rank_tensor(tid, t, raw);
    for (size_t t : spectrum_tensors_) spectrum_tensor(tid, t, raw);
  }

  // Thread 0 sizes whole_ (zeroed) for a whole-tensor pass; every thread waits for it. false: stop.
  bool allocate_whole(unsigned tid, size_t elems) {
    if (tid == 0) {
      try {
        whole_.assign(elems, 0.0f);
      } catch (...) {
        fail();
      }
    }
    sync(tid, 0);
    return !stop_;
  }

  // The spectrum pass of one tensor: every model's block (sampled rows, read whole, then the
  // sampled columns) into whole_, then N + N(N-1)/2 tasks (each model's own spectrum, then each
  // pair's difference) taken dynamically; the cancel flag is checked between tasks.
  void spectrum_tensor(unsigned tid, size_t t, std::vector<unsigned char>& raw) {
    if (stop_) return;
    const jobs::Tensor& ten = job_.tensors[t];
    const Block& bl = blocks_[t];
    const size_t R = bl.rows.size(), C = bl.cols.size(), E = R * C;
    if (!allocate_whole(tid, E * N_)) return;
    std::vector<double> none;
    try {
      std::vector<float> row(C == ten.cols ? 0 : size_t(ten.cols));
      for (size_t k; !halted() && (k = next_model_.fetch_add(1)) < N_;) {
        float* dst = whole_.data() + k * E;
        if (E == ten.numel()) {
          read_stretch(ten, k, 0, ten.numel(), dst, raw, none, nullptr);
          release_stretch(ten, k, 0, ten.numel());
          continue;
        }
        for (size_t i = 0; i < R && !halted(); ++i) {
          float* into = C == ten.cols ? dst + i * C : row.data();
          read_stretch(ten, k, bl.rows[i] * ten.cols, ten.cols, into, raw, none, nullptr);
          release_stretch(ten, k, bl.rows[i] * ten.cols, ten.cols);
          if (C != ten.cols)
            for (size_t j = 0; j < C; ++j) dst[i * C + j] = row[bl.cols[j]];
        }
      }
    } catch (...) {
      fail();
    }
    sync(tid, 0);
    if (tid == 0) next_model_ = 0;
    if (stop_) return;
    const std::vector<uint32_t>& tasks = spectrum_tasks_;
    const size_t count = tasks.size() / 2;
    if (job_.spectrum_offload) {  // the CUDA pipeline: thread 0 hands the whole tensor over
      if (tid == 0) {
        offloaded_ = false;
        try {
          std::vector<double> out(count);
          offloaded_ = !halted() && job_.spectrum_offload(whole_.data(), N_, R, C, tasks, out.data());
          if (offloaded_)
            for (size_t k = 0; k < count; ++k) store_spectrum(t, tasks[2 * k], tasks[2 * k + 1], out[k]);
        } catch (...) {
          fail();
        }
      }
      sync(tid, 0);
      if (stop_) return;
    }
    try {
      for (size_t k; !offloaded_ && !halted() && (k = next_pair_.fetch_add(1)) < count;) {
        const uint32_t i = tasks[2 * k], j = tasks[2 * k + 1];
        store_spectrum(t, i, j, cpu::spectral_entropy(whole_.data() + i * E, j == kOwn ? nullptr : whole_.data() + j * E, R, C));
      }
    } catch (...) {
      fail();
    }
    sync(tid, spectrum_bytes(ten, bl));
    if (tid == 0) {
      next_pair_ = 0;
      if (t == spectrum_tensors_.back()) std::vector<float>().swap(whole_);
    }
  }

  // Task (i, j) of the spectrum pass (see spectrum_tasks_): model i's own entropy, or the pair's.
  void store_spectrum(size_t t, uint32_t i, uint32_t j, double h) {
    if (j == kOwn) out_.weight_spectrum[t * N_ + i] = h;
    else out_.spectrum[t * N_ * N_ + size_t(i) * N_ + j] = h;
  }

  void rank_tensor(unsigned tid, size_t t, std::vector<unsigned char>& raw) {
    if (stop_) return;
    const jobs::Tensor& ten = job_.tensors[t];
    uint64_t numel = ten.numel();
    if (!allocate_whole(tid, size_t(numel) * N_)) return;
    std::vector<double> none;
    try {
      for (size_t k; !halted() && (k = next_model_.fetch_add(1)) < N_;) {
        read_stretch(ten, k, 0, numel, whole_.data() + k * numel, raw, none, nullptr);
        release_stretch(ten, k, 0, numel);
      }
    } catch (...) {
      fail();
    }
    sync(tid, 0);
    if (tid == 0) next_model_ = 0;
    if (stop_) return;

    cpu::RankOptions opt;
    // The rank kernel takes float32: F64 sources were rounded to it, so their noise is float32's.
    opt.unit_roundoff = 0x1p-24;
    for (const auto& s : ten.sources) opt.unit_roundoff = std::max(opt.unit_roundoff, unit_roundoff(s.dtype));
    if (job_.rank_noise >= 0) opt.noise = job_.rank_noise;
    if (job_.rank_exact_limit) opt.exact_limit = job_.rank_exact_limit;
    if (job_.rank_max_rank) opt.max_rank = job_.rank_max_rank;
    size_t pairs = N_ * (N_ - 1) / 2;
    double* out = out_.rank.data() + t * N_ * N_;
    try {
      // Pairs taken dynamically (their cost is equal but threads may be preempted); the cancel flag
      // is checked between pairs since one SVD can take a while.
      for (size_t p; !halted() && (p = next_pair_.fetch_add(1)) < pairs;) {
        // Map p to (i, j), i < j, row-major over the upper triangle.
        size_t i = 0, left = p;
        while (left >= N_ - 1 - i) left -= N_ - 1 - i, ++i;
        size_t j = i + 1 + left;
        const int r = cpu::diff_rank(whole_.data() + i * numel, whole_.data() + j * numel, size_t(ten.rows),
                                     size_t(ten.cols), opt);
        // -1: NaN/Inf in a matrix, no rank; NaN as kernels.rank (the graph skips non-finite ranks).
        out[i * N_ + j] = r < 0 ? std::numeric_limits<double>::quiet_NaN() : double(r);
      }
    } catch (...) {
      fail();
    }
    sync(tid, tensor_bytes(ten));
    if (tid == 0) {
      next_pair_ = 0;
      if (t == rank_tensors_.back()) std::vector<float>().swap(whole_);
    }
    // The next tensor's first sync orders this reset before anyone reads the counter again.
  }

  void finish() {
    size_t NN = N_ * N_;
    auto mirror = [&](std::vector<double>& v, bool diag_zero) {
      for (size_t base = 0; base < v.size(); base += NN)
        for (size_t i = 0; i < N_; ++i) {
          if (diag_zero) v[base + i * N_ + i] = 0;
          for (size_t j = i + 1; j < N_; ++j) v[base + j * N_ + i] = v[base + i * N_ + j];
        }
    };
    if (job_.sumsq) mirror(out_.sumsq, true);
    if (job_.sumabs) mirror(out_.sumabs, true);
    if (job_.maxabs) mirror(out_.maxabs, true);
    if (job_.dot) mirror(out_.dot, false);
    if (job_.rank) {
      // Only tensors the rank kernel took get a matrix; the others stay NaN (not computed).
      std::vector<double> all = std::move(out_.rank);
      out_.rank.assign(all.size(), std::numeric_limits<double>::quiet_NaN());
      for (size_t t : rank_tensors_) std::copy(all.begin() + t * NN, all.begin() + (t + 1) * NN, out_.rank.begin() + t * NN);
      mirror(out_.rank, false);
      for (size_t t : rank_tensors_)
        for (size_t i = 0; i < N_; ++i) out_.rank[t * NN + i * N_ + i] = 0;
    }
    if (job_.spectrum)
      for (size_t t : spectrum_tensors_) {
        for (size_t i = 0; i < N_; ++i)
          for (size_t j = i + 1; j < N_; ++j) out_.spectrum[t * NN + j * N_ + i] = out_.spectrum[t * NN + i * N_ + j];
        out_.spectrum_noise[t] = noise_entropy(blocks_[t], job_.tensors[t]);
      }
    if (job_.kurtosis) {
      size_t M = T_ * N_;
      out_.n.resize(M), out_.nonfinite.resize(M), out_.mean.resize(M), out_.m2.resize(M), out_.kurtosis.resize(M);
      for (size_t i = 0; i < M; ++i) {
        const cpu::Moments& m = acc_[i];
        out_.n[i] = double(m.n);
        out_.nonfinite[i] = double(m.nonfinite);
        out_.mean[i] = m.n ? m.mean : std::numeric_limits<double>::quiet_NaN();
        out_.m2[i] = m.m2;
        out_.kurtosis[i] = cpu::excess_kurtosis(m);
      }
    }
  }

  const jobs::StatsJob& job_;
  std::shared_ptr<std::atomic<bool>> cancel_;
  const std::function<void(uint64_t, uint64_t)>& progress_;
  size_t N_, T_;
  uint64_t chunk_ = 1;
  bool any_f64_ = false;
  std::vector<io::FileReader> files_;
  std::vector<Batch> batches_;
  std::vector<size_t> rank_tensors_, spectrum_tensors_;
  // The spectrum pass's tasks, flattened (i, j): j == kOwn for model i's own spectrum, else the
  // pair's difference (every pair, or job_.spectrum_pairs). Also what job_.spectrum_offload gets.
  static constexpr uint32_t kOwn = UINT32_MAX;
  std::vector<uint32_t> spectrum_tasks_;
  std::vector<Block> blocks_;
  std::vector<float> whole_;
  std::vector<Item> items_;
  uint64_t item_max_ = 0;
  std::vector<Slot> slots_;
  size_t ring_ = 1, folded_ = 0;  // folded_: items folded so far (under fold_mu_)
  std::mutex fold_mu_;
  std::condition_variable fold_cv_;
  std::atomic<size_t> next_item_{0};
  std::atomic<uint64_t> streamed_{0};
  std::vector<cpu::Moments> acc_;
  jobs::StatsOutput out_;

  unsigned nthreads_ = 1;
  std::unique_ptr<Barrier> barrier_;
  std::atomic<size_t> next_model_{0}, next_pair_{0};
  std::atomic<uint64_t> bytes_read_{0};
  FirstError error_;
  std::atomic<bool> halt_{false};
  // Written only in barrier completions (under the barrier's mutex), read after the barrier.
  bool stop_ = false, aborted_ = false;
  bool offloaded_ = false;  // the current tensor's spectra came from job_.spectrum_offload
  uint64_t done_ = 0, total_ = 0;
  std::chrono::steady_clock::time_point last_progress_{};
};

}  // namespace

uint64_t planned_bytes(const jobs::StatsJob& job) {
  uint64_t total = 0;
  if (job.kurtosis || job.any_pairwise()) total += job.total_bytes();
  if (job.rank)
    for (const auto& t : job.tensors)
      if (rank_eligible(t)) total += tensor_bytes(t);
  if (job.spectrum)
    for (const auto& t : job.tensors)
      if (rank_eligible(t)) total += spectrum_bytes(t, spectrum_block(t, job.spectrum_short, job.spectrum_long));
  return total;
}

jobs::StatsOutput run_stats(const jobs::StatsJob& job, const std::shared_ptr<std::atomic<bool>>& cancel,
                            const std::function<void(uint64_t, uint64_t)>& progress) {
  Runner r(job, cancel, progress);
  return r.run();
}

}  // namespace mother::stats
