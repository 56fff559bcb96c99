#include "workers/stats_runner.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <limits>
#include <mutex>
#include <thread>
#include <vector>

#include "common/error.h"
#include "cpu/kernels.h"
#include "io/file_reader.h"
#include "workers/errors.h"

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

// One stretch of one tensor inside a chunk: elements [elem_begin, elem_begin + count) of tensor
// `tensor`, stored at x_offset in every model's chunk buffer.
struct Segment {
  size_t tensor;
  uint64_t elem_begin, count, x_offset;
};

// A chunk: one big tensor's stretch, or many small tensors packed together so hundreds of biases
// cost one barrier, not hundreds.
struct Batch {
  std::vector<Segment> segs;
  uint64_t elems = 0, bytes = 0;
};

bool rank_eligible(const jobs::Tensor& t) { return t.rows > 1 && t.cols > 1; }

uint64_t tensor_bytes(const jobs::Tensor& t) {
  uint64_t b = 0;
  for (const auto& s : t.sources) b += t.numel() * dtype_size(s.dtype);
  return b;
}

// Splits rows [0, N) into `parts` contiguous ranges of about equal pair count: row i pairs with
// the N-1-i rows after it (plus itself for dot), so equal row counts would be unbalanced.
std::vector<std::pair<size_t, size_t>> split_rows(size_t N, size_t parts, bool diag) {
  std::vector<double> w(N);
  double total = 0;
  for (size_t i = 0; i < N; ++i) total += (w[i] = double(N - 1 - i) + (diag ? 1 : 0));
  std::vector<std::pair<size_t, size_t>> ranges;
  size_t row = 0;
  double acc = 0;
  for (size_t p = 0; p < parts; ++p) {
    size_t begin = row;
    double target = total * double(p + 1) / double(parts);
    while (row < N && (p + 1 == parts || acc + w[row] / 2 <= target)) acc += w[row++];
    ranges.emplace_back(begin, row);
  }
  return ranges;
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
    rows_ = split_rows(N_, nthreads_, job_.dot);
    {
      std::lock_guard<std::mutex> lock(gate_mu);
      go = true;
    }
    gate_cv.notify_all();
    work(0);
    for (auto& h : helpers) h.join();
    files_.clear();  // close every file before reporting anything

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
  void open_files() {
    files_.reserve(job_.files.size());
    for (const auto& f : job_.files) files_.emplace_back(f);
    // Every source's byte range must lie inside its file as it is now: a file shorter than its
    // header promised was truncated after the header was read.
    for (const auto& t : job_.tensors)
      for (const auto& s : t.sources) {
        const io::FileReader& r = files_[s.file];
        uint64_t len = t.numel() * dtype_size(s.dtype);
        if (s.offset > r.size() || len > r.size() - s.offset)
          throw Error("E_IO_TRUNCATED",
                      r.path() + " has " + std::to_string(r.size()) + " bytes but tensor \"" + t.name +
                          "\" needs bytes [" + std::to_string(s.offset) + ", " + std::to_string(s.offset + len) +
                          "): the file was truncated or replaced after its header was read",
                      r.path(), t.name);
      }
  }

  void plan() {
    // Chunk elements so that N models x chunk x 4 bytes ~ chunk_bytes; at most 16 Mi elements.
    chunk_ = std::max<uint64_t>(1, job_.chunk_bytes / (uint64_t(N_) * 4));
    chunk_ = std::min<uint64_t>(chunk_, 1ull << 24);
    if (job_.kurtosis || job_.any_pairwise()) {
      Batch cur;
      for (size_t t = 0; t < T_; ++t) {
        const auto& ten = job_.tensors[t];
        uint64_t n = ten.numel(), pos = 0;
        uint64_t esz = 0;
        for (const auto& s : ten.sources) esz += dtype_size(s.dtype);
        while (pos < n) {
          uint64_t take = std::min(n - pos, chunk_ - cur.elems);
          cur.segs.push_back({t, pos, take, cur.elems});
          cur.elems += take;
          cur.bytes += take * esz;
          pos += take;
          if (cur.elems == chunk_) batches_.push_back(std::move(cur)), cur = Batch{};
        }
      }
      if (!cur.segs.empty()) batches_.push_back(std::move(cur));
      if (!batches_.empty()) {
        uint64_t largest = 0;
        for (const auto& b : batches_) largest = std::max(largest, b.elems);
        chunk_ = largest;  // no bigger buffers than the data needs
      }
    }
    if (job_.rank)
      for (size_t t = 0; t < T_; ++t)
        if (rank_eligible(job_.tensors[t])) rank_tensors_.push_back(t);
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
    if (!batches_.empty()) x_.assign(size_t(chunk_) * N_, 0.0f);
  }

  cpu::PairOutputs outputs_at(size_t offset) {
    cpu::PairOutputs o;
    if (job_.sumsq) o.sumsq = out_.sumsq.data() + offset;
    if (job_.sumabs) o.sumabs = out_.sumabs.data() + offset;
    if (job_.maxabs) o.maxabs = out_.maxabs.data() + offset;
    if (job_.dot) o.dot = out_.dot.data() + offset;
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
    if (tid == 0 && !stop_ && progress_) {
      auto now = std::chrono::steady_clock::now();
      if (now - last_progress_ >= std::chrono::milliseconds(50)) {
        last_progress_ = now;
        progress_(done_, total_);
      }
    }
  }

  // Reads model k's stretch of a tensor (elements [e0, e0 + count)) as float32 into dst.
  // F64 sources with kurtosis also get exact float64 moments merged into `m`.
  void read_stretch(const jobs::Tensor& t, size_t k, uint64_t e0, uint64_t count, float* dst,
                    std::vector<unsigned char>& raw, std::vector<double>& wide, cpu::Moments* m) {
    const jobs::Source& s = t.sources[k];
    size_t esz = dtype_size(s.dtype);
    const io::FileReader& f = files_[s.file];
    // Pieces bounded by the staging buffer (the rank pass reads whole tensors through it).
    uint64_t piece_max = std::max<uint64_t>(1, raw.size() / 8);
    for (uint64_t done = 0; done < count;) {
      uint64_t n = std::min(count - done, piece_max);
      uint64_t off = s.offset + (e0 + done) * esz;
      if (s.dtype == DType::F32) {
        f.read_exact(off, dst + done, size_t(n * 4), t.name);
      } else {
        f.read_exact(off, raw.data(), size_t(n * esz), t.name);
        cpu::to_f32(s.dtype, raw.data(), dst + done, size_t(n));
        if (m && s.dtype == DType::F64) {
          cpu::to_f64(DType::F64, raw.data(), wide.data(), size_t(n));
          *m = cpu::merge(*m, cpu::moments_f64(wide.data(), size_t(n)));
        }
      }
      if (m && s.dtype != DType::F64) *m = cpu::merge(*m, cpu::moments_f32(dst + done, size_t(n)));
      bytes_read_ += n * esz;
      done += n;
    }
  }

  void work(unsigned tid) {
    std::vector<unsigned char> raw(size_t(std::max<uint64_t>(chunk_, 1024)) * 8);
    std::vector<double> wide(any_f64_ && job_.kurtosis ? raw.size() / 8 : 0);
    std::vector<const float*> ptrs(N_);
    const auto rows = rows_[tid];
    bool pairwise = job_.any_pairwise();

    for (size_t b = 0; b < batches_.size(); ++b) {
      const Batch& batch = batches_[b];
      // Read: threads take models dynamically; model k's moments are touched by one thread per batch.
      try {
        for (size_t k; !halted() && (k = next_model_.fetch_add(1)) < N_;) {
          float* xk = x_.data() + k * chunk_;
          for (const Segment& sg : batch.segs) {
            cpu::Moments* m = job_.kurtosis ? &acc_[sg.tensor * N_ + k] : nullptr;
            read_stretch(job_.tensors[sg.tensor], k, sg.elem_begin, sg.count, xk + sg.x_offset, raw, wide, m);
          }
        }
      } catch (...) {
        fail();
      }
      sync(tid, 0);
      if (tid == 0) next_model_ = 0;  // safe: nobody touches it until the next barrier
      if (stop_) return;
      // Pairwise: each thread owns a row range of the upper triangle.
      try {
        if (pairwise && rows.first < rows.second) {
          if (!job_.per_tensor) {
            for (size_t k = 0; k < N_; ++k) ptrs[k] = x_.data() + k * chunk_;
            cpu::pairwise_f32(ptrs.data(), N_, size_t(batch.elems), rows.first, rows.second, outputs_at(0));
          } else {
            for (const Segment& sg : batch.segs) {
              for (size_t k = 0; k < N_; ++k) ptrs[k] = x_.data() + k * chunk_ + sg.x_offset;
              cpu::pairwise_f32(ptrs.data(), N_, size_t(sg.count), rows.first, rows.second,
                                outputs_at(sg.tensor * N_ * N_));
            }
          }
        }
      } catch (...) {
        fail();
      }
      sync(tid, batch.bytes);
      if (stop_) return;
    }

    for (size_t t : rank_tensors_) rank_tensor(tid, t, raw);
  }

  void rank_tensor(unsigned tid, size_t t, std::vector<unsigned char>& raw) {
    if (stop_) return;
    const jobs::Tensor& ten = job_.tensors[t];
    uint64_t numel = ten.numel();
    if (tid == 0) {
      try {
        whole_.assign(size_t(numel) * N_, 0.0f);
      } catch (...) {
        fail();
      }
    }
    sync(tid, 0);
    if (stop_) return;
    std::vector<double> none;
    try {
      for (size_t k; !halted() && (k = next_model_.fetch_add(1)) < N_;)
        read_stretch(ten, k, 0, numel, whole_.data() + k * numel, raw, none, nullptr);
    } catch (...) {
      fail();
    }
    sync(tid, 0);
    if (tid == 0) next_model_ = 0;
    if (stop_) return;

    cpu::RankOptions opt;
    opt.unit_roundoff = 0;
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
        out[i * N_ + j] = double(cpu::diff_rank(whole_.data() + i * numel, whole_.data() + j * numel,
                                                size_t(ten.rows), size_t(ten.cols), opt));
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
  std::vector<size_t> rank_tensors_;
  std::vector<float> x_, whole_;
  std::vector<cpu::Moments> acc_;
  jobs::StatsOutput out_;

  unsigned nthreads_ = 1;
  std::unique_ptr<Barrier> barrier_;
  std::vector<std::pair<size_t, size_t>> rows_;
  std::atomic<size_t> next_model_{0}, next_pair_{0};
  std::atomic<uint64_t> bytes_read_{0};
  FirstError error_;
  std::atomic<bool> halt_{false};
  // Written only in barrier completions (under the barrier's mutex), read after the barrier.
  bool stop_ = false, aborted_ = false;
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
  return total;
}

jobs::StatsOutput run_stats(const jobs::StatsJob& job, const std::shared_ptr<std::atomic<bool>>& cancel,
                            const std::function<void(uint64_t, uint64_t)>& progress) {
  Runner r(job, cancel, progress);
  return r.run();
}

}  // namespace mother::stats
