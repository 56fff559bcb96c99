/**
 * LoRA detection, per family, without a flag: a LoRA child differs from its parent by a low-rank
 * update (and in no other tensor), a full fine-tune by full-rank ones. For each member and its
 * nearest neighbour (ft distance), take the median over the 2-D tensors that differ of
 * rank(W_i - W_j) / full rank; the family is LoRA when the median of those is below 1/2 (a
 * parent-child pair differs by rank r, siblings by up to 2r, both far below full rank).
 */
import { fullRank } from './distance.js';
import { median } from './distance.js';
import type { TensorStats } from './types.js';

export interface LoraVerdict { lora: boolean; rankFraction: number; pairs: number }

export function detectLora(stats: TensorStats, idx: number[], dft: Float64Array): LoraVerdict {
  const N = stats.ids.length, n = idx.length, R = stats.rank;
  if (!R || n < 2) return { lora: false, rankFraction: NaN, pairs: 0 };
  const fracs: number[] = [];
  for (let a = 0; a < n; a++) {
    let b = -1;
    for (let c = 0; c < n; c++) if (c !== a && (b < 0 || dft[a * n + c] < dft[a * n + b])) b = c;
    const per: number[] = [];
    stats.tensors.forEach((t, k) => {
      const full = fullRank(t);
      const key = (k * N + idx[a]) * N + idx[b];
      if (full > 1 && stats.sumsq[key] > 0 && Number.isFinite(R[key])) per.push(R[key] / full);
    });
    if (per.length) fracs.push(median(per));
  }
  const rankFraction = median(fracs);
  return { lora: fracs.length > 0 && rankFraction < 0.5, rankFraction, pairs: fracs.length };
}
