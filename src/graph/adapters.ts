/**
 * Adapter pairs and adapter groups: the per-edge evidence of families that mix LoRA and full
 * fine-tunes.
 *
 * A (merged) adapter shares its base's frozen tensors bit for bit and differs from it by a low-rank
 * update in the tensors it adapts. A full fine-tune moves every tensor at full rank. So a pair of
 * models is an *adapter pair* when it shares a frozen tensor and the 2-D tensors it differs in are
 * low-rank (isAdapterPair: by numerical rank or by effective rank). Chains of adapter pairs make
 * *adapter groups*: a base, its adapters, their adapters. Inside a group the rank distance places
 * edges (a parent and its adapter differ by rank r, two siblings by up to 2r); between groups and
 * the full fine-tunes the spectral tree does, as in any full fine-tuning family (recover.ts,
 * evidence 'per-edge'). One distance per
 * family cannot do both: the rank of every full fine-tune pair is full, so the rank distance ties
 * them, and the spectrum of an adapter's difference is peaked whatever it is compared with.
 */
import { frozenBetween } from './cluster.js';
import { median } from './distance.js';
import type { TensorStats } from './types.js';

/** A moved 2-D tensor of an adapter (merged LoRA) has rank <= this share of min(rows, cols). */
export const ADAPTER_MAX_RANK_SHARE = 0.5;

/** Tensors frozen between models i and j, and the 2-D tensors that differ between them. */
export function frozenCount(stats: TensorStats, i: number, j: number): { frozen: number; moved2d: number[] } {
  const N = stats.ids.length;
  let frozen = 0;
  const moved2d: number[] = [];
  stats.tensors.forEach((tt, t) => {
    if (frozenBetween(stats, t, i, j)) frozen++;
    else if (stats.sumsq[(t * N + i) * N + j] !== 0 && tt.rows > 1 && tt.cols > 1) moved2d.push(t);
  });
  return { frozen, moved2d };
}

/** Moved 2-D tensors of low rank where the rank is known; true where it is not computed. */
export function lowRank(stats: TensorStats, i: number, j: number, moved2d: number[], rank = stats.rank): boolean {
  if (!rank) return true;
  const N = stats.ids.length;
  for (const t of moved2d) {
    const r = rank[(t * N + i) * N + j]!;
    if (Number.isNaN(r)) continue;
    const { rows, cols } = stats.tensors[t]!;
    if (r > ADAPTER_MAX_RANK_SHARE * Math.min(rows, cols)) return false;
  }
  return true;
}

/**
 * Models i and j are an adapter pair: a frozen tensor in common, at least one moved 2-D tensor, and
 * the update low-rank, by either measure that was computed for the pair: the numerical rank of
 * every moved 2-D tensor at most ADAPTER_MAX_RANK_SHARE of full rank, or the effective rank (the
 * exponential of the spectral entropy) at most that share of a Gaussian matrix's, in the median
 * over the moved 2-D tensors (entropy contrast >= -ln 0.5, as copies.ts adapterBases). The two
 * disagree on a rank-32 adapter of a 32-wide projection: full numerical rank, but its spectrum
 * decays like any trained update's.
 */
export function isAdapterPair(stats: TensorStats, i: number, j: number): boolean {
  const R = stats.rank, S = stats.spectrum, noise = stats.spectrumNoise, N = stats.ids.length;
  if (!R && !(S && noise)) return false;
  const { frozen, moved2d } = frozenCount(stats, i, j);
  if (frozen === 0 || moved2d.length === 0) return false;
  const at = (t: number) => (t * N + i) * N + j;
  if (R && moved2d.every((t) => !Number.isNaN(R[at(t)]!)) && lowRank(stats, i, j, moved2d, R)) return true;
  if (!S || !noise) return false;
  const contrast = moved2d.map((t) => noise[t]! - S[at(t)]!).filter(Number.isFinite);
  return contrast.length === moved2d.length && median(contrast) >= -Math.log(ADAPTER_MAX_RANK_SHARE);
}

/**
 * The family `idx` (global indices) split into adapter groups: connected components of the
 * adapter-pair relation, as sorted lists of local indices, ordered by their first member. A model
 * in no adapter pair is a group of its own.
 */
export function adapterGroups(stats: TensorStats, idx: number[]): number[][] {
  const n = idx.length;
  const root = Int32Array.from({ length: n }, (_, a) => a);
  const find = (a: number): number => { while (root[a] !== a) { root[a] = root[root[a]!]!; a = root[a]!; } return a; };
  for (let a = 0; a < n; a++)
    for (let b = a + 1; b < n; b++)
      if (find(a) !== find(b) && isAdapterPair(stats, idx[a]!, idx[b]!)) root[find(a)] = find(b);
  const groups = new Map<number, number[]>();
  for (let a = 0; a < n; a++) {
    const r = find(a);
    if (!groups.has(r)) groups.set(r, []);
    groups.get(r)!.push(a);
  }
  return [...groups.values()].sort((x, y) => x[0]! - y[0]!);
}
