/**
 * The statistics as a library: kurtosis per tensor and model, and pairwise distance matrices, for
 * callers who want the numbers rather than a tree. Both run one native pass over the weights.
 */
import { cpuAddon, type Capabilities } from '../native.js';
import { paperFtDistance, paperLoraDistance } from '../graph/distance.js';
import type { TensorStats } from '../graph/types.js';
import { catalogueGroup, openModel, type ArchitectureGroup, type Model, type SelectOptions } from '../io/index.js';
import { InputError } from '../errors.js';
import type { Backend } from '../types.js';
import { addRankStatistics, groupStatistics, pooledKurtosis, runJob } from './compute.js';
import { jobTensors } from '../io/catalogue.js';

export interface StatsCallOptions extends SelectOptions {
  backend?: Backend;
  device?: number;
  threads?: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

export type Metric = 'l2' | 'sqeuclidean' | 'l1' | 'linf' | 'cosine' | 'ft' | 'lora';
const METRICS: Metric[] = ['l2', 'sqeuclidean', 'l1', 'linf', 'cosine', 'ft', 'lora'];

/** The CPU addon's instruction set and features. */
export function capabilities(): Capabilities {
  return cpuAddon().capabilities();
}

async function withGroup<T>(models: (Model | string)[], options: SelectOptions, run: (g: ArchitectureGroup) => Promise<T>): Promise<T> {
  if (!Array.isArray(models) || models.length === 0)
    throw new InputError('E_INPUT_NO_MODELS', 'Expected a non-empty array of models or paths');
  const opened: Model[] = [];
  try {
    const list: Model[] = [];
    for (const m of models) {
      if (typeof m === 'string') { const o = await openModel(m); opened.push(o); list.push(o); }
      else list.push(m);
    }
    const group = catalogueGroup(list, options);
    if (group.tensors.length === 0)
      throw new InputError('E_INPUT_NO_TENSORS', `no tensor is shared (same name, shape and a float dtype) by all ${list.length} models`);
    return await run(group);
  } finally {
    for (const m of opened) m.dispose();
  }
}

export interface KurtosisResult {
  ids: string[];
  tensors: string[];
  /** T x N, index t * N + k: excess kurtosis (Fisher, biased) of tensor t in model k; NaN if constant. */
  values: Float64Array;
  /** Per model: the mean over its 2-D tensors. */
  pooled: Float64Array;
  /** T x N: NaN/Inf values seen (skipped by the moments). */
  nonFinite: Float64Array;
  backend: 'cpu' | 'cuda';
  device: string;
}

/** Excess kurtosis of every shared tensor of every model. */
export async function kurtosis(models: (Model | string)[], options: StatsCallOptions = {}): Promise<KurtosisResult> {
  return withGroup(models, options, async (group) => {
    const N = group.models.length;
    const r = await runJob(
      { tensors: jobTensors(group), models: N, kurtosis: true, sumsq: false, sumabs: false, maxabs: false, dot: false, rank: false, perTensor: true },
      options,
    );
    const pooled = Float64Array.from({ length: N }, (_, k) => pooledKurtosis(r.moments!.kurtosis, group.tensors, k));
    return {
      ids: group.models.map((m) => m.id), tensors: group.tensors.map((t) => t.name),
      values: r.moments!.kurtosis, pooled, nonFinite: r.moments!.nonfinite, backend: r.backend, device: r.isa,
    };
  });
}

export interface DistanceOptions extends StatsCallOptions {
  /** Default ['l2']. */
  metrics?: Metric[];
  /** Also return T x N x N matrices per tensor for l2/sqeuclidean/l1/linf/cosine/lora. */
  perTensor?: boolean;
}

export interface DistanceResult {
  ids: string[];
  tensors: string[];
  /** N x N, row-major, per metric asked for. */
  matrices: Partial<Record<Metric, Float64Array>>;
  /** T x N x N, index (t * N + i) * N + j, when perTensor. */
  perTensor?: Partial<Record<Metric, Float64Array>>;
  backend: 'cpu' | 'cuda';
  device: string;
}

/**
 * Pairwise distance matrices over the models' shared tensors:
 *   l2          sqrt(sum over tensors of sum (w_i - w_j)^2)
 *   sqeuclidean the same, squared
 *   l1          mean |w_i - w_j| over all compared elements
 *   linf        max |w_i - w_j|
 *   cosine      1 - <w_i, w_j> / (|w_i| |w_j|) over the concatenated tensors
 *   ft          the paper's full fine-tuning distance: per-tensor L2, min-max normalised over the
 *               pairs, averaged over tensors
 *   lora        the paper's LoRA distance: rank of W_i - W_j summed over square 2-D tensors
 */
export async function distanceMatrices(models: (Model | string)[], options: DistanceOptions = {}): Promise<DistanceResult> {
  const metrics = options.metrics ?? ['l2'];
  for (const m of metrics)
    if (!METRICS.includes(m)) throw new InputError('E_INPUT_OPTION', `Expected one of ${METRICS.join('|')} for metrics but received '${String(m)}'`);
  return withGroup(models, options, async (group) => {
    const gs = await groupStatistics(group, { ...options, absMetrics: metrics.includes('l1') || metrics.includes('linf') });
    const s: TensorStats = gs.stats;
    const N = s.ids.length, T = s.tensors.length;
    if (metrics.includes('lora')) await addRankStatistics(group, s, [[...Array(N).keys()]], options);
    const all = [...Array(N).keys()];
    const ones = new Float64Array(T).fill(1);
    const numel = s.tensors.reduce((a, t) => a + t.numel, 0);
    const matrices: DistanceResult['matrices'] = {};
    const perTensor: DistanceResult['perTensor'] = {};
    const perPair = (f: (t: number, i: number, j: number) => number, agg: 'sum' | 'max', scale = 1) => {
      const out = new Float64Array(N * N);
      for (let i = 0; i < N; i++)
        for (let j = 0; j < N; j++) {
          let v = 0;
          for (let t = 0; t < T; t++) v = agg === 'sum' ? v + f(t, i, j) : Math.max(v, f(t, i, j));
          out[i * N + j] = i === j ? 0 : v * scale;
        }
      return out;
    };
    const at = (X: Float64Array) => (t: number, i: number, j: number) => X[(t * N + i) * N + j]!;
    for (const m of metrics) {
      if (m === 'sqeuclidean') { matrices[m] = perPair(at(s.sumsq), 'sum'); if (options.perTensor) perTensor[m] = s.sumsq; }
      else if (m === 'l2') { matrices[m] = perPair(at(s.sumsq), 'sum').map(Math.sqrt); if (options.perTensor) perTensor[m] = s.sumsq.map(Math.sqrt); }
      else if (m === 'l1') {
        matrices[m] = perPair(at(s.sumabs!), 'sum', 1 / numel);
        if (options.perTensor) perTensor[m] = s.sumabs!.map((v, k) => v / s.tensors[Math.floor(k / (N * N))]!.numel);
      } else if (m === 'linf') { matrices[m] = perPair(at(s.maxabs!), 'max'); if (options.perTensor) perTensor[m] = s.maxabs!; }
      else if (m === 'cosine') {
        const dot = perPair(at(s.dot), 'sum');
        const diag = (i: number) => { let v = 0; for (let t = 0; t < T; t++) v += s.dot[(t * N + i) * N + i]!; return v; };
        const norms = all.map(diag);
        matrices[m] = dot.map((v, k) => { const i = Math.floor(k / N), j = k % N; return i === j ? 0 : 1 - v / Math.sqrt(norms[i]! * norms[j]!); });
        if (options.perTensor)
          perTensor[m] = s.dot.map((v, k) => {
            const t = Math.floor(k / (N * N)), i = Math.floor(k / N) % N, j = k % N;
            return i === j ? 0 : 1 - v / Math.sqrt(s.dot[(t * N + i) * N + i]! * s.dot[(t * N + j) * N + j]!);
          });
      } else if (m === 'ft') matrices[m] = paperFtDistance(s, all, ones);
      else if (m === 'lora') { matrices[m] = paperLoraDistance(s, all, ones); if (options.perTensor) perTensor[m] = s.rank!; }
    }
    return {
      ids: s.ids, tensors: s.tensors.map((t) => t.name), matrices,
      ...(options.perTensor ? { perTensor } : {}), backend: gs.backend, device: gs.device,
    };
  });
}
