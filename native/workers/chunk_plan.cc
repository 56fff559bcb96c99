#include "workers/chunk_plan.h"

#include <algorithm>

#include <string>

#include "common/dtype.h"
#include "common/error.h"

namespace mother::jobs {

std::vector<io::FileReader> open_job_files(const StatsJob& job) {
  std::vector<io::FileReader> files;
  files.reserve(job.files.size());
  for (const auto& f : job.files) files.emplace_back(f);
  for (const auto& t : job.tensors)
    for (const auto& s : t.sources) {
      const io::FileReader& r = files[s.file];
      const uint64_t len = stored_bytes(s.dtype, t.numel());
      if (s.offset > r.size() || len > r.size() - s.offset)
        throw Error("E_IO_TRUNCATED",
                    r.path() + " has " + std::to_string(r.size()) + " bytes but tensor \"" + t.name +
                        "\" needs bytes [" + std::to_string(s.offset) + ", " + std::to_string(s.offset + len) +
                        "): the file was truncated or replaced after its header was read",
                    r.path(), t.name);
    }
  return files;
}

std::vector<Batch> plan_batches(const StatsJob& job, uint64_t chunk, size_t max_segments) {
  std::vector<Batch> batches;
  Batch cur;
  for (size_t t = 0; t < job.tensors.size(); ++t) {
    const Tensor& ten = job.tensors[t];
    for (uint64_t pos = 0, n = ten.numel(); pos < n;) {
      const uint64_t take = std::min(n - pos, chunk - cur.elems);
      cur.segs.push_back({t, pos, take, cur.elems});
      cur.elems += take;
      for (const auto& s : ten.sources) cur.bytes += stored_range(s.dtype, pos, take);
      pos += take;
      if (cur.elems == chunk || cur.segs.size() >= max_segments) batches.push_back(std::move(cur)), cur = Batch{};
    }
  }
  if (!cur.segs.empty()) batches.push_back(std::move(cur));
  return batches;
}

}  // namespace mother::jobs
