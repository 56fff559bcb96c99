#include "cuda/rank_host.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <thread>

#include "common/error.h"
#include "cpu/kernels.h"
#include "workers/errors.h"

namespace mother::cuda {

bool rank_eligible(const jobs::Tensor& t) { return t.rows > 1 && t.cols > 1; }

bool rank_pass(const jobs::StatsJob& job, const std::vector<io::FileReader>& files, unsigned threads,
               const std::shared_ptr<std::atomic<bool>>& cancel, std::vector<double>& out,
               std::atomic<uint64_t>* bytes_read) {
  const size_t N = job.models, T = job.tensors.size(), NN = N * N;
  out.assign(T * NN, std::numeric_limits<double>::quiet_NaN());
  unsigned want = threads ? threads : std::max(1u, std::thread::hardware_concurrency());
  want = std::min(want, 256u);
  auto cancelled = [&] { return cancel && cancel->load(std::memory_order_relaxed); };
  std::vector<float> whole;
  std::vector<unsigned char> raw;
  for (size_t t = 0; t < T; ++t) {
    const jobs::Tensor& ten = job.tensors[t];
    if (!rank_eligible(ten)) continue;
    if (cancelled()) return false;
    const size_t numel = size_t(ten.numel());
    whole.assign(numel * N, 0.0f);  // one whole tensor for all N models, as the CPU runner
    for (size_t k = 0; k < N; ++k) {
      const jobs::Source& s = ten.sources[k];
      const size_t es = dtype_size(s.dtype);
      raw.resize(numel * es);
      files[s.file].read_exact(s.offset, raw.data(), raw.size(), ten.name);
      cpu::to_f32(s.dtype, raw.data(), whole.data() + k * numel, numel);
      *bytes_read += raw.size();
    }
    cpu::RankOptions opt;
    opt.unit_roundoff = 0;
    for (const auto& s : ten.sources) opt.unit_roundoff = std::max(opt.unit_roundoff, unit_roundoff(s.dtype));
    // Unset options (< 0 / 0) keep the kernel's defaults, exactly as the CPU runner.
    if (job.rank_noise >= 0) opt.noise = job.rank_noise;
    if (job.rank_exact_limit) opt.exact_limit = job.rank_exact_limit;
    if (job.rank_max_rank) opt.max_rank = job.rank_max_rank;
    double* o = out.data() + t * NN;
    const size_t pairs = N * (N - 1) / 2;
    std::atomic<size_t> next{0};
    FirstError err;
    auto work = [&] {
      try {
        for (size_t p; !cancelled() && !err.has() && (p = next.fetch_add(1)) < pairs;) {
          size_t i = 0, left = p;
          while (left >= N - 1 - i) left -= N - 1 - i, ++i;
          const size_t j = i + 1 + left;
          o[i * N + j] = double(cpu::diff_rank(whole.data() + i * numel, whole.data() + j * numel,
                                               size_t(ten.rows), size_t(ten.cols), opt));
        }
      } catch (...) {
        err.capture_current();
      }
    };
    std::vector<std::thread> pool;
    const unsigned helpers = unsigned(std::min<size_t>(want, std::max<size_t>(pairs, 1))) - 1;
    for (unsigned h = 0; h < helpers; ++h) {
      try {
        pool.emplace_back(work);
      } catch (...) {
        break;  // fewer threads is fine
      }
    }
    work();
    for (auto& th : pool) th.join();
    if (auto e = err.get()) throw *e;
    if (cancelled()) return false;
    for (size_t i = 0; i < N; ++i) {
      o[i * N + i] = 0;
      for (size_t j = i + 1; j < N; ++j) o[j * N + i] = o[i * N + j];
    }
  }
  return true;
}

}  // namespace mother::cuda
