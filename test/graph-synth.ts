/** Synthetic model trees with known ancestry, and their exact per-tensor statistics (float64). */
import { mulberry32 } from '../src/graph/confidence.js';
import type { TensorStats } from '../src/graph/types.js';

export interface SynthOptions {
  /** parent index per model (null: root); parents before children. */
  parents: (number | null)[];
  /** LoRA: children differ from their parent by a rank-`rank` update of the 2-D tensors only. */
  lora?: boolean;
  rank?: number;
  seed?: number;
  /** Relative size of a fine-tuning step (default 0.15). */
  step?: number;
}

export const SHAPES: [number, number][] = [[16, 16], [16, 16], [8, 24], [24, 8], [1, 16], [1, 32]];

export function gaussian(rand: () => number): number {
  const u = Math.max(rand(), 1e-300), v = rand();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** Numerical rank by Gaussian elimination with full pivoting (relative tolerance). */
export function numericalRank(a: Float64Array, rows: number, cols: number): number {
  const m = Float64Array.from(a);
  let max = 0;
  for (const x of m) max = Math.max(max, Math.abs(x));
  if (max === 0) return 0;
  const tol = 1e-9 * max * Math.max(rows, cols);
  let r = 0;
  const usedR = new Uint8Array(rows), usedC = new Uint8Array(cols);
  for (;;) {
    let bi = -1, bj = -1, bv = tol;
    for (let i = 0; i < rows; i++) if (!usedR[i]) for (let j = 0; j < cols; j++) if (!usedC[j] && Math.abs(m[i * cols + j]) > bv) { bv = Math.abs(m[i * cols + j]); bi = i; bj = j; }
    if (bi < 0) return r;
    usedR[bi] = 1; usedC[bj] = 1; r++;
    for (let i = 0; i < rows; i++) {
      if (usedR[i]) continue;
      const f = m[i * cols + bj] / m[bi * cols + bj];
      for (let j = 0; j < cols; j++) m[i * cols + j] -= f * m[bi * cols + j];
    }
  }
}

export function synthWeights(o: SynthOptions): Float64Array[][] {
  const rand = mulberry32(o.seed ?? 1), step = o.step ?? 0.15, rank = o.rank ?? 2;
  const models: Float64Array[][] = [];
  o.parents.forEach((p, k) => {
    models.push(SHAPES.map(([r, c], t) => {
      const n = r * c, w = new Float64Array(n);
      if (p === null) {
        // heavy-ish tails so kurtosis is defined and varied; 1-D tensors centred at 1 like norms
        for (let i = 0; i < n; i++) w[i] = (r === 1 ? 1 : 0) + gaussian(rand) * (1 + 0.5 * gaussian(rand) ** 2) * 0.1;
        return w;
      }
      const base = models[p][t];
      w.set(base);
      let norm = 0;
      for (const x of base) norm += x * x;
      const scale = step * Math.sqrt(norm / n);
      if (o.lora) {
        if (r === 1) return w;
        const A = Array.from({ length: rank * c }, () => gaussian(rand));
        const B = Array.from({ length: r * rank }, () => gaussian(rand));
        for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) {
          let s = 0;
          for (let q = 0; q < rank; q++) s += B[i * rank + q] * A[q * c + j];
          w[i * c + j] += (scale * s) / Math.sqrt(rank);
        }
      } else {
        for (let i = 0; i < n; i++) w[i] += scale * gaussian(rand);
      }
      void k;
      return w;
    }));
  });
  return models;
}

export function statsOf(models: Float64Array[][], withRank = true): TensorStats {
  const N = models.length, T = SHAPES.length;
  const s: TensorStats = {
    ids: models.map((_, i) => `m${i}`),
    tensors: SHAPES.map(([rows, cols], t) => ({ name: `t${t}`, rows, cols, numel: rows * cols })),
    kurtosis: new Float64Array(T * N), mean: new Float64Array(T * N), m2: new Float64Array(T * N),
    sumsq: new Float64Array(T * N * N), sumabs: new Float64Array(T * N * N), maxabs: new Float64Array(T * N * N),
    dot: new Float64Array(T * N * N), rank: withRank ? new Float64Array(T * N * N).fill(NaN) : undefined,
  };
  for (let t = 0; t < T; t++) {
    const [rows, cols] = SHAPES[t], n = rows * cols;
    for (let k = 0; k < N; k++) {
      const w = models[k][t];
      let mu = 0;
      for (const x of w) mu += x;
      mu /= n;
      let m2 = 0, m4 = 0;
      for (const x of w) { m2 += (x - mu) ** 2; m4 += (x - mu) ** 4; }
      s.mean[t * N + k] = mu; s.m2[t * N + k] = m2;
      s.kurtosis[t * N + k] = m2 > 0 ? (n * m4) / (m2 * m2) - 3 : NaN;
    }
    for (let i = 0; i < N; i++)
      for (let j = 0; j < N; j++) {
        const a = models[i][t], b = models[j][t];
        let sq = 0, ab = 0, mx = 0, dot = 0;
        const d = new Float64Array(n);
        for (let e = 0; e < n; e++) { d[e] = a[e] - b[e]; sq += d[e] ** 2; ab += Math.abs(d[e]); mx = Math.max(mx, Math.abs(d[e])); dot += a[e] * b[e]; }
        const key = (t * N + i) * N + j;
        s.sumsq[key] = sq; s.sumabs![key] = ab; s.maxabs![key] = mx; s.dot[key] = dot;
        if (s.rank && rows > 1) s.rank[key] = i === j ? 0 : numericalRank(d, rows, cols);
      }
  }
  return s;
}

/** Random tree shapes: `families` roots, each with `size` models attached to random earlier ones. */
export function randomForest(families: number, size: number, seed: number): (number | null)[] {
  const rand = mulberry32(seed), parents: (number | null)[] = [];
  for (let f = 0; f < families; f++) {
    const first = parents.length;
    parents.push(null);
    for (let k = 1; k < size; k++) parents.push(first + Math.floor(rand() * k));
  }
  return parents;
}
