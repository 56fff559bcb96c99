/**
 * Distances between the models of one family, built from the per-tensor statistics only.
 * Matrices are dense n x n Float64Array (row-major) over a family's members `idx` (indices into
 * the N models). `w` weights tensors (all 1, or bootstrap resampling counts).
 */
import { GraphError, type TensorStats } from './types.js';

/** Checks the shapes and values of a TensorStats; returns N and T. */
export function checkStats(stats: TensorStats): { N: number; T: number } {
  if (!stats || !Array.isArray(stats.ids) || !Array.isArray(stats.tensors))
    throw new GraphError('E_GRAPH_INPUT', 'Expected TensorStats with ids and tensors arrays');
  const N = stats.ids.length, T = stats.tensors.length;
  if (N === 0) throw new GraphError('E_GRAPH_INPUT', 'Expected at least one model but received none');
  if (T === 0) throw new GraphError('E_GRAPH_INPUT', 'Expected at least one tensor shared by all models but received none');
  const want = (k: 'kurtosis' | 'mean' | 'm2' | 'sumsq' | 'sumabs' | 'maxabs' | 'dot' | 'rank' | 'spectrum' | 'weightSpectrum', len: number) => {
    const a = stats[k];
    if ((k === 'rank' || k === 'sumabs' || k === 'maxabs' || k === 'spectrum' || k === 'weightSpectrum') && a === undefined) return; // optional
    if (!(a instanceof Float64Array) || a.length !== len)
      throw new GraphError('E_GRAPH_INPUT', `Expected a Float64Array of ${len} values for ${k} but received ${a instanceof Float64Array ? a.length + ' values' : typeof a}`);
  };
  for (const k of ['kurtosis', 'mean', 'm2', 'weightSpectrum'] as const) want(k, T * N);
  for (const k of ['sumsq', 'sumabs', 'maxabs', 'dot', 'rank', 'spectrum'] as const) want(k, T * N * N);
  if ((stats.spectrum === undefined) !== (stats.weightSpectrum === undefined) || (stats.spectrum === undefined) !== (stats.spectrumNoise === undefined))
    throw new GraphError('E_GRAPH_INPUT', 'Expected spectrum, weightSpectrum and spectrumNoise together but received only some of them');
  if (stats.storageBits !== undefined && !(stats.storageBits instanceof Float64Array && stats.storageBits.length === N))
    throw new GraphError('E_GRAPH_INPUT', `Expected a Float64Array of ${N} values for storageBits`);
  if (stats.spectrumNoise !== undefined && !(stats.spectrumNoise instanceof Float64Array && stats.spectrumNoise.length === T))
    throw new GraphError('E_GRAPH_INPUT', `Expected a Float64Array of ${T} values for spectrumNoise`);
  stats.tensors.forEach((t, i) => {
    if (!t || typeof t.name !== 'string' || !(t.rows >= 1) || !(t.cols >= 1) || t.rows * t.cols !== t.numel)
      throw new GraphError('E_GRAPH_INPUT', `Tensor ${i} (${t?.name ?? '?'}): expected rows * cols = numel >= 1`);
  });
  const seen = new Set<string>();
  for (const id of stats.ids) {
    if (seen.has(id)) throw new GraphError('E_GRAPH_INPUT', `Model id ${id} appears twice`);
    seen.add(id);
  }
  return { N, T };
}

export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const v = values.slice().sort((a, b) => a - b), h = v.length >> 1;
  return v.length % 2 ? v[h] : (v[h - 1] + v[h]) / 2;
}

/**
 * Relatedness of every pair: the median over tensors of the Pearson correlation of their weights.
 * Independent random inits give near-orthogonal weights (~0); a model and its fine-tune ~1.
 * Tensors where either model is constant are skipped; NaN where no tensor counts.
 */
export function relatedness(stats: TensorStats): Float64Array {
  const N = stats.ids.length, T = stats.tensors.length;
  const out = new Float64Array(N * N);
  const vals: number[] = [];
  for (let i = 0; i < N; i++) {
    out[i * N + i] = 1;
    for (let j = i + 1; j < N; j++) {
      vals.length = 0;
      for (let t = 0; t < T; t++) {
        const n = stats.tensors[t].numel;
        const cdot = stats.dot[(t * N + i) * N + j] - n * stats.mean[t * N + i] * stats.mean[t * N + j];
        const r = cdot / Math.sqrt(stats.m2[t * N + i] * stats.m2[t * N + j]);
        if (Number.isFinite(r)) vals.push(r);
      }
      out[i * N + j] = out[j * N + i] = median(vals);
    }
  }
  return out;
}

/** Tensors usable for a family: finite pairwise sums and norms for every member pair. */
export function usableTensors(stats: TensorStats, idx: number[]): boolean[] {
  const N = stats.ids.length;
  return stats.tensors.map((_, t) => {
    for (const i of idx) for (const j of idx) {
      const k = (t * N + i) * N + j;
      if (!Number.isFinite(stats.sumsq[k]) || !Number.isFinite(stats.dot[k])) return false;
    }
    return true;
  });
}

/** sum_t w[t] * X[t][idx[a]][idx[b]] as an n x n matrix. */
export function weightedSum(X: Float64Array, N: number, idx: number[], w: ArrayLike<number>): Float64Array {
  const n = idx.length, out = new Float64Array(n * n);
  for (let t = 0; t < w.length; t++) {
    const wt = w[t];
    if (!wt) continue;
    for (let a = 0; a < n; a++) {
      const base = (t * N + idx[a]) * N;
      for (let b = 0; b < n; b++) out[a * n + b] += wt * X[base + idx[b]];
    }
  }
  return out;
}

/** Full fine-tuning distance: the L2 distance over all used tensors, sqrt(sum_t w_t * sumsq_t). */
export function ftDistance(stats: TensorStats, idx: number[], w: ArrayLike<number>): { D: Float64Array; sumsq: Float64Array } {
  const sumsq = weightedSum(stats.sumsq, stats.ids.length, idx, w);
  return { D: sumsq.map(Math.sqrt), sumsq };
}

/** Full rank of a tensor's matrix view; 0 for 1-D tensors (no rank statistic). */
export const fullRank = (t: { rows: number; cols: number }) => (t.rows > 1 ? Math.min(t.rows, t.cols) : 0);

/**
 * LoRA distance: the rank of W_i - W_j summed over the tensors whose rank was computed for every
 * pair, as a fraction of their summed full ranks; ranks add up along a path of low-rank updates,
 * so this is a tree metric. Ties (integer ranks) break by a vanishing share of the ft distance.
 */
export function loraDistance(stats: TensorStats, idx: number[], w: ArrayLike<number>, dft: Float64Array): Float64Array {
  const N = stats.ids.length, n = idx.length, R = stats.rank;
  if (!R) throw new GraphError('E_GRAPH_OPTION', 'The LoRA distance needs rank statistics (TensorStats.rank) but none were given');
  const wr = new Float64Array(w.length);
  let fullSum = 0;
  stats.tensors.forEach((t, k) => {
    if (!w[k] || fullRank(t) < 2) return;
    for (const i of idx) for (const j of idx) if (!Number.isFinite(R[(k * N + i) * N + j])) return;
    wr[k] = w[k];
    fullSum += w[k] * fullRank(t);
  });
  if (fullSum === 0) throw new GraphError('E_GRAPH_OPTION', 'The LoRA distance needs rank statistics of 2-D tensors for every pair of a family, but none were computed');
  const D = weightedSum(R, N, idx, wr);
  let maxFt = 0;
  for (let i = 0; i < n * n; i++) maxFt = Math.max(maxFt, dft[i]);
  for (let i = 0; i < n * n; i++) D[i] = D[i] / fullSum + (maxFt > 0 ? 1e-9 * (dft[i] / maxFt) : 0);
  return D;
}

/** The paper's full fine-tuning distance: per-tensor L2, min-max normalised over the pairs, averaged. */
export function paperFtDistance(stats: TensorStats, idx: number[], w: ArrayLike<number>): Float64Array {
  const N = stats.ids.length, n = idx.length, D = new Float64Array(n * n);
  let wsum = 0;
  const L = new Float64Array(n * n);
  for (let t = 0; t < stats.tensors.length; t++) {
    if (!w[t]) continue;
    let lo = Infinity, hi = -Infinity;
    for (let a = 0; a < n; a++)
      for (let b = 0; b < n; b++) {
        const v = Math.sqrt(stats.sumsq[(t * N + idx[a]) * N + idx[b]]);
        L[a * n + b] = v;
        if (a !== b) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
      }
    if (!(hi > lo)) continue;
    for (let k = 0; k < n * n; k++) D[k] += w[t] * ((L[k] - lo) / (hi - lo));
    wsum += w[t];
  }
  for (let k = 0; k < n * n; k++) D[k] = Math.floor(k / n) === k % n || wsum === 0 ? 0 : D[k] / wsum;
  return D;
}

/** The paper's LoRA distance: rank of W_i - W_j summed over square 2-D tensors. */
export function paperLoraDistance(stats: TensorStats, idx: number[], w: ArrayLike<number>): Float64Array {
  const N = stats.ids.length, R = stats.rank;
  if (!R) throw new GraphError('E_GRAPH_OPTION', 'The LoRA distance needs rank statistics (TensorStats.rank) but none were given');
  const wr = stats.tensors.map((t, k) => (t.rows === t.cols && t.rows > 1 ? w[k] : 0));
  const R0 = R.map((x) => (Number.isFinite(x) ? x : 0));
  return weightedSum(R0, N, idx, wr);
}
