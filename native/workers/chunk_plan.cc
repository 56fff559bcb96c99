#include "workers/chunk_plan.h"

#include <algorithm>

#include "common/dtype.h"

namespace mother::jobs {

std::vector<Batch> plan_batches(const StatsJob& job, uint64_t chunk, size_t max_segments) {
  std::vector<Batch> batches;
  Batch cur;
  for (size_t t = 0; t < job.tensors.size(); ++t) {
    const Tensor& ten = job.tensors[t];
    uint64_t esz = 0;
    for (const auto& s : ten.sources) esz += dtype_size(s.dtype);
    for (uint64_t pos = 0, n = ten.numel(); pos < n;) {
      const uint64_t take = std::min(n - pos, chunk - cur.elems);
      cur.segs.push_back({t, pos, take, cur.elems});
      cur.elems += take;
      cur.bytes += take * esz;
      pos += take;
      if (cur.elems == chunk || cur.segs.size() >= max_segments) batches.push_back(std::move(cur)), cur = Batch{};
    }
  }
  if (!cur.segs.empty()) batches.push_back(std::move(cur));
  return batches;
}

}  // namespace mother::jobs
