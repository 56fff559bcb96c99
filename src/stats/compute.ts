/**
 * Statistics: batches one architecture group's tensors to the native kernels (CPU or CUDA) and
 * returns them as the graph stage's TensorStats. One pass over the weights gives everything:
 * moments (kurtosis, mean, spread) and the pairwise sums, per tensor.
 */
import { AbortError, withCallerStack } from '../errors.js';
import type { JobTensor, StatsJob, StatsResult } from '../native.js';
import type { TensorStats } from '../graph/types.js';
import { frozenBetween } from '../graph/cluster.js';
import type { ArchitectureGroup } from '../io/catalogue.js';
import { jobTensors } from '../io/catalogue.js';
import type { Backend } from '../types.js';
import { selectBackend } from './backend.js';
import { cpuAddon } from '../native.js';

const PLAIN = new Set(['F64', 'F32', 'F16', 'BF16']);
import { availableParallelism } from 'node:os';

export interface StatsOptions {
  backend?: Backend;
  device?: number;
  threads?: number;
  signal?: AbortSignal;
  /** Called with bytes done / total bytes of this job. */
  onProgress?: (done: number, total: number) => void;
  /** Also compute the numerical rank of every pairwise difference of 2-D tensors (LoRA distance). */
  rank?: boolean;
  /** Also accumulate sum |w_i - w_j| and max |w_i - w_j| (L1, L-inf); the tree needs neither. */
  absMetrics?: boolean;
}

export interface GroupStats {
  stats: TensorStats;
  backend: 'cpu' | 'cuda';
  device: string;
  threads: number;
  bytesRead: number;
  seconds: number;
  fallbackReason?: string;
  /** Set when the native runner read some files with pread because they could not be mapped. */
  ioNote?: string;
}

/** Runs one native statistics job, honouring the AbortSignal and mapping native errors. */
export async function runJob(job: Omit<StatsJob, 'threads' | 'device'>, options: StatsOptions = {}): Promise<StatsResult & { fallbackReason?: string }> {
  const { signal } = options;
  if (signal?.aborted) throw new AbortError();
  let selected = selectBackend(options.backend ?? 'auto', options.device ?? 0);
  // GGUF block types and permuted rows are read by the CPU runner only (cpu/dequant.cc).
  if (selected.name === 'cuda' && job.tensors.some((t) => t.sources.some((s) => s.permuteHeads || !PLAIN.has(s.dtype))))
    selected = { name: 'cpu', addon: cpuAddon(), fallbackReason: 'CUDA not used: GGUF quantized tensors are dequantised by the CPU backend' };
  const threads = options.threads ?? availableParallelism();
  const token = new selected.addon.CancelToken();
  const onAbort = () => token.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const full: StatsJob = { ...job, threads, ...(selected.name === 'cuda' ? { device: selected.device } : {}) };
    const result = await withCallerStack(() => selected.addon.computeStats(full, options.onProgress ?? null, token));
    return selected.name === 'cpu' && selected.fallbackReason ? { ...result, fallbackReason: selected.fallbackReason } : result;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/** Mean excess kurtosis of model k over its 2-D tensors with a defined kurtosis (NaN if none). */
export function pooledKurtosis(kurtosis: Float64Array, tensors: { rows: number }[], k: number): number {
  const N = kurtosis.length / Math.max(1, tensors.length);
  let sum = 0, count = 0;
  tensors.forEach((t, i) => {
    const v = kurtosis[i * N + k]!;
    if (t.rows > 1 && Number.isFinite(v)) { sum += v; count++; }
  });
  return count ? sum / count : NaN;
}

/** Per-tensor statistics of one architecture group, ready for recoverGraph. */
/** Bits per weight of each storage type (GGUF blocks: their scales included). */
const BITS: Record<string, number> = { F64: 64, F32: 32, F16: 16, BF16: 16, Q8_0: 8.5, Q6_K: 6.5625, Q5_1: 6, Q5_0: 5.5, Q5_K: 5.5, Q4_1: 5, Q4_0: 4.5, Q4_K: 4.5 };

/** Per model, the element-weighted mean bits per weight of its compared tensors. */
export function storageBits(group: ArchitectureGroup): Float64Array {
  const bits = new Float64Array(group.models.length);
  let total = 0;
  for (const t of group.tensors) total += t.numel;
  group.models.forEach((_, k) => {
    let b = 0;
    for (const t of group.tensors) b += t.numel * (BITS[t.dtypes[k]!] ?? 32);
    bits[k] = total ? b / total : 32;
  });
  return bits;
}

export async function groupStatistics(group: ArchitectureGroup, options: StatsOptions = {}): Promise<GroupStats> {
  const tensors: JobTensor[] = jobTensors(group);
  const result = await runJob(
    {
      tensors,
      models: group.models.length,
      kurtosis: true,
      sumsq: true,
      sumabs: options.absMetrics ?? false,
      maxabs: options.absMetrics ?? false,
      dot: true,
      rank: options.rank ?? false,
      perTensor: true,
    },
    options,
  );
  const m = result.moments!;
  const stats: TensorStats = {
    ids: group.models.map((x) => x.id),
    tensors: group.tensors.map((t) => ({ name: t.name, rows: t.rows, cols: t.cols, numel: t.numel })),
    kurtosis: m.kurtosis,
    mean: m.mean,
    m2: m.m2,
    sumsq: result.sumsq!,
    ...(result.sumabs ? { sumabs: result.sumabs } : {}),
    ...(result.maxabs ? { maxabs: result.maxabs } : {}),
    dot: result.dot!,
    ...(result.rank ? { rank: result.rank } : {}),
    storageBits: storageBits(group),
  };
  return {
    stats,
    backend: result.backend,
    device: result.isa,
    threads: result.threads,
    bytesRead: result.bytesRead,
    seconds: result.seconds,
    ...(result.fallbackReason ? { fallbackReason: result.fallbackReason } : {}),
    ...(result.ioNotes?.length ? { ioNote: result.ioNotes.join('; ') } : {}),
  };
}

/**
 * Whether a family's models look adapter-tuned (LoRA and the like): a model and its nearest relative
 * share some tensors bit for bit (frozen weights) while some 2-D tensors differ. Full fine-tuning
 * moves every trained tensor, so this gate keeps the costly rank statistics to the families where a
 * rank distance can matter; recoverGraph then decides LoRA or not from the ranks themselves.
 */
export function looksAdapterTuned(stats: TensorStats, members: number[]): boolean {
  const N = stats.ids.length, T = stats.tensors.length;
  if (members.length < 2) return false;
  let votes = 0;
  for (const i of members) {
    let best = -1, bestD = Infinity;
    for (const j of members) {
      if (j === i) continue;
      let d = 0;
      for (let t = 0; t < T; t++) d += stats.sumsq[(t * N + i) * N + j]!;
      if (d < bestD) { bestD = d; best = j; }
    }
    let frozen = false, moved2d = false;
    for (let t = 0; t < T; t++) {
      const s = stats.sumsq[(t * N + i) * N + best]!;
      if (frozenBetween(stats, t, i, best)) frozen = true;
      else if (s > 0 && stats.tensors[t]!.rows > 1 && stats.tensors[t]!.cols > 1) moved2d = true;
    }
    if (frozen && moved2d) votes++;
  }
  return votes * 2 >= members.length;
}

/**
 * One extra pass per family over the 2-D tensors that differ inside it (identical tensors carry no
 * pairwise evidence and cost nothing): the rank or spectrum statistics of recoverGraph.
 * `take(result, chosen, members)` copies the family's results into the stats.
 */
async function perFamilyPass(
  group: ArchitectureGroup, stats: TensorStats, families: number[][], options: StatsOptions,
  job: Partial<Omit<StatsJob, 'tensors' | 'models' | 'threads' | 'device'>> | ((members: number[]) => Partial<Omit<StatsJob, 'tensors' | 'models' | 'threads' | 'device'>>),
  onIdentical: (t: number, members: number[]) => void,
  take: (result: StatsResult, chosen: number[], members: number[]) => void,
): Promise<{ bytesRead: number; seconds: number }> {
  const N = stats.ids.length, T = stats.tensors.length;
  const all = jobTensors(group);
  let bytesRead = 0, seconds = 0;
  for (const members of families) {
    if (members.length < 2) continue;
    const chosen: number[] = [];
    for (let t = 0; t < T; t++) {
      const { rows, cols } = stats.tensors[t]!;
      if (rows < 2 || cols < 2) continue;
      let moved = false;
      for (const i of members) for (const j of members) if (stats.sumsq[(t * N + i) * N + j]! > 0) moved = true;
      if (moved) chosen.push(t);
      else onIdentical(t, members);
    }
    if (chosen.length === 0) continue;
    const result = await runJob(
      {
        tensors: chosen.map((t) => ({ ...all[t]!, sources: members.map((k) => all[t]!.sources[k]!) })),
        models: members.length,
        kurtosis: false, sumsq: false, sumabs: false, maxabs: false, dot: false, rank: false, perTensor: true,
        ...(typeof job === 'function' ? job(members) : job),
      },
      { ...options, onProgress: undefined },
    );
    take(result, chosen, members);
    bytesRead += result.bytesRead;
    seconds += result.seconds;
  }
  return { bytesRead, seconds };
}

/**
 * Adds the numerical rank of W_i - W_j (per 2-D tensor, per pair) for the given families' members
 * to `stats.rank` (NaN elsewhere; 0 for tensors identical inside a family).
 */
export async function addRankStatistics(
  group: ArchitectureGroup, stats: TensorStats, families: number[][], options: StatsOptions = {},
): Promise<{ bytesRead: number; seconds: number }> {
  const N = stats.ids.length, T = stats.tensors.length;
  const rank = stats.rank ?? new Float64Array(T * N * N).fill(NaN);
  const out = await perFamilyPass(group, stats, families, options, { rank: true },
    (t, members) => { for (const i of members) for (const j of members) rank[(t * N + i) * N + j] = 0; },
    (result, chosen, members) => {
      const n = members.length;
      chosen.forEach((t, c) => {
        for (let a = 0; a < n; a++)
          for (let b = 0; b < n; b++) rank[(t * N + members[a]!) * N + members[b]!] = result.rank![(c * n + a) * n + b]!;
      });
    });
  stats.rank = rank;
  return out;
}

/**
 * Adds the spectral entropy of W_i - W_j (per 2-D tensor that differs, per pair of a family) to
 * `stats.spectrum` and of each member's own W to `stats.weightSpectrum` (NaN elsewhere). Blocks of
 * at most `short` x `long` (see StatsJob.spectrum), and candidate pairs in families larger than
 * SPECTRUM_ALL_PAIRS_UP_TO, bound the cost (bench/spectrum-cost.js).
 */
/** Families larger than this get spectra only for candidate pairs (see spectrumCandidates). */
export const SPECTRUM_ALL_PAIRS_UP_TO = 16;
/** Nearest relatives by L2 whose pairs are candidates, per member. */
export const SPECTRUM_NEIGHBOURS = 8;

/**
 * Candidate pairs of a large family (local indices, flattened): each member with its
 * SPECTRUM_NEIGHBOURS nearest by L2, plus the L2 minimum spanning tree's edges so the candidate
 * graph is connected. A parent is among a child's nearest few even when siblings are nearer
 * (lm-ft: always within the 4 nearest). undefined: every pair (small families).
 */
export function spectrumCandidates(stats: TensorStats, members: number[], allPairsUpTo = SPECTRUM_ALL_PAIRS_UP_TO): number[] | undefined {
  const n = members.length, N = stats.ids.length, T = stats.tensors.length;
  if (n <= allPairsUpTo) return undefined;
  const D = new Float64Array(n * n);
  for (let a = 0; a < n; a++)
    for (let b = a + 1; b < n; b++) {
      let d = 0;
      for (let t = 0; t < T; t++) d += stats.sumsq[(t * N + members[a]!) * N + members[b]!]!;
      D[a * n + b] = D[b * n + a] = d;
    }
  const keep = new Set<number>();
  const add = (a: number, b: number) => keep.add(Math.min(a, b) * n + Math.max(a, b));
  for (let a = 0; a < n; a++) {
    const order = Array.from({ length: n }, (_, b) => b).filter((b) => b !== a).sort((x, y) => D[a * n + x]! - D[a * n + y]!);
    for (const b of order.slice(0, SPECTRUM_NEIGHBOURS)) add(a, b);
  }
  // Prim on L2
  const inTree = new Uint8Array(n), best = new Float64Array(n).fill(Infinity), from = new Int32Array(n).fill(0);
  inTree[0] = 1;
  for (let v = 1; v < n; v++) best[v] = D[v]!;
  for (let step = 1; step < n; step++) {
    let j = -1;
    for (let v = 0; v < n; v++) if (!inTree[v] && (j < 0 || best[v]! < best[j]!)) j = v;
    inTree[j] = 1;
    add(from[j]!, j);
    for (let v = 0; v < n; v++) if (!inTree[v] && D[j * n + v]! < best[v]!) { best[v] = D[j * n + v]!; from[v] = j; }
  }
  return [...keep].sort((x, y) => x - y).flatMap((k) => [Math.floor(k / n), k % n]);
}

export async function addSpectrumStatistics(
  group: ArchitectureGroup, stats: TensorStats, families: number[][],
  options: StatsOptions & { short?: number; long?: number; allPairsUpTo?: number } = {},
): Promise<{ bytesRead: number; seconds: number }> {
  const N = stats.ids.length, T = stats.tensors.length;
  const spectrum = stats.spectrum ?? new Float64Array(T * N * N).fill(NaN);
  const own = stats.weightSpectrum ?? new Float64Array(T * N).fill(NaN);
  const noise = stats.spectrumNoise ?? new Float64Array(T).fill(NaN);
  const { short, long, allPairsUpTo, ...rest } = options;
  const out = await perFamilyPass(group, stats, families, rest,
    (members) => {
      const pairs = spectrumCandidates(stats, members, allPairsUpTo);
      return { spectrum: true, ...(short ? { spectrumShort: short } : {}), ...(long ? { spectrumLong: long } : {}), ...(pairs ? { spectrumPairs: pairs } : {}) };
    },
    () => {},
    (result, chosen, members) => {
      const n = members.length;
      chosen.forEach((t, c) => {
        noise[t] = result.spectrumNoise![c]!;
        for (let a = 0; a < n; a++) {
          own[t * N + members[a]!] = result.weightSpectrum![c * n + a]!;
          for (let b = 0; b < n; b++) spectrum[(t * N + members[a]!) * N + members[b]!] = result.spectrum![(c * n + a) * n + b]!;
        }
      });
    });
  stats.spectrum = spectrum;
  stats.weightSpectrum = own;
  stats.spectrumNoise = noise;
  return out;
}
