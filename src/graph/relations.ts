/**
 * Typed relations, decided after the tree is built (recoverGraph), from the same statistics.
 *
 *   duplicate  every compared tensor is identical (sumsq 0), whatever the dtypes and sharding;
 *   cast       the difference is at the rounding level of the lower-precision dtype: per tensor,
 *              sum (w_i - w_j)^2 <= u^2 * |w_j|^2 (+ the subnormal floor), u the unit roundoff of
 *              the copy's dtype (BF16 2^-8, F16 2^-11, F32 2^-24), and tensors of the same
 *              precision identical; the source is the higher-precision model;
 *   quantized  the copy is quantized (GGUF, or a quantized dtype) and its distance to the nearest
 *              unquantized model is at the quantiser's noise level;
 *   merge      the model is (close to) an affine combination, with non-negative weights, of 2-4
 *              other models of its family: min c'Gc, sum c = 1, c >= 0, with
 *              G_kl = <w_i - w_k, w_i - w_l> = (D_ik + D_il - D_kl) / 2 from the pairwise sumsq,
 *              and a residual small against the distance to the nearest single model. A parent
 *              that is an ancestor of two other parents (the base TIES / task arithmetic subtract
 *              and add back) is dropped, its weight shared out;
 *   merge      (sparse: TIES) no affine fit, but on a sample of entries (read by the caller) the
 *              model is base + a trimmed, sign-elected mean of its parents' task vectors: a share
 *              of its entries equal the base bit for bit (every parent trimmed there), and some
 *              equal one parent bit for bit (the only one kept); every other entry lies between
 *              the base and its parents (a mean of some of their task values, or 0). The base
 *              is not a parent (it is what TIES subtracts and adds back); see sparseMerge;
 *   adapter    a merged LoRA: some tensors frozen bit for bit against the parent, the moved 2-D
 *              tensors of low rank (the rank statistic, where computed). Unmerged PEFT adapters
 *              are placed by the caller (src/io/peft.ts), not here;
 *   finetune   everything else.
 * Copies are found from the pairwise sums the statistics pass computes anyway: no extra pass.
 *
 * The primary tree: where copies, merges or merged LoRA models of a full fine-tuning family were
 * found, recoverGraph is run again per family on the other models (the "core"), whose tree the
 * removed models would otherwise distort (a copy is at distance ~0 of its source, a merge sits
 * between its parents, a merged LoRA is a hub for the spectral distance); the removed models are
 * then attached to what the relation names, and a core model whose nearest model (sumsq) is a
 * merge or a merged LoRA, closer than its core parent, becomes its child (a fine-tune of a merge).
 * Nothing is found in a zoo of plain fine-tunes or of LoRA chains: the tree is then exactly
 * recoverGraph's.
 */
import { frozenCount, lowRank } from './adapters.js';
import { recoverGraph } from './recover.js';
import type { GraphOptions, GraphResult, TensorStats } from './types.js';

export type Relation = 'finetune' | 'adapter' | 'merge' | 'quantized' | 'cast' | 'duplicate';
export const RELATIONS: readonly Relation[] = ['finetune', 'adapter', 'merge', 'quantized', 'cast', 'duplicate'];

export interface TypedEdge {
  parent: number;
  relation: Relation;
  /** Merge coefficient (merges only). */
  weight?: number;
  confidence: number;
}

/** What the weights alone do not say: how each model is stored. Arrays are per model, in stats order. */
export interface ModelFacts {
  /** 'safetensors', 'gguf', ...: a 'gguf' model is a quantized copy candidate. */
  format?: string[];
  /** dtypes[k][t]: the stored dtype of tensor t in model k ('F32', 'BF16', 'Q8_0', ...). */
  dtypes?: string[][];
  /** Number of files each model is stored in (the original of two duplicates has fewer, as a rule). */
  files?: number[];
  /** Models (indices) each model's card names as its base: a duplicate claiming the other is the copy. */
  claimedBases?: (number[] | null)[];
  /** T*N*N rank of W_i - W_j where computed for the relations (else stats.rank is used). */
  rank?: Float64Array;
  /**
   * Per model, the same sampled entries of its tensors (float models; null where not read), for
   * the sparse (TIES) merge test; see sampleEntries in src/typed.ts.
   */
  sample?: (Float64Array | null)[];
}

export interface TypedResult {
  /** Primary parent (the largest-weight parent for merges), null for a root. */
  parent: (number | null)[];
  confidence: number[];
  /** Every parent with its relation; [] for a root. */
  parents: TypedEdge[][];
  warnings: string[];
}

/** Unit roundoff (relative half ulp) and the absolute error floor of a float dtype. */
const FLOAT: Record<string, { bits: number; u: number; floor: number }> = {
  F64: { bits: 64, u: 2 ** -53, floor: 0 },
  F32: { bits: 32, u: 2 ** -24, floor: 2 ** -150 },
  F16: { bits: 16.5, u: 2 ** -11, floor: 2 ** -25 },
  BF16: { bits: 16, u: 2 ** -8, floor: 2 ** -134 },
};

/**
 * Ceiling of the relative squared error (sum err^2 / sum w^2) of a quantiser, generous (about 4x
 * the reference formulas' error on Gaussian-like weights). Unknown types: the loosest.
 */
export function quantNoiseCeiling(dtype: string): number {
  const d = dtype.toUpperCase();
  if (FLOAT[d]) return Math.max(FLOAT[d]!.u ** 2, 1e-12);
  if (d.startsWith('Q8')) return 2e-3;
  if (d.startsWith('Q6')) return 5e-3;
  if (d.startsWith('Q5')) return 1.5e-2;
  if (d.startsWith('Q4') || d.startsWith('IQ4')) return 4e-2;
  return 0.15;
}

export function isQuantizedDtype(dtype: string): boolean {
  return !FLOAT[dtype.toUpperCase()];
}

/** Merge thresholds: residual / distance to the nearest model, and the least meaningful weight. */
export const MERGE_MAX_RESIDUAL = 0.15;
export const MERGE_MIN_WEIGHT = 0.05;
/** Most parents of a merge, affine or sparse (the file comment's 2-4). */
export const MERGE_MAX_PARENTS = 4;
/** A fine-tune x of a merge m: |cos(x - m, parent - m)| below this for every parent of m. */
export const HUB_CHILD_MAX_COS = 0.5;

interface Pairwise {
  N: number;
  T: number;
  /** N*N total sumsq. */
  D: Float64Array;
  /** N total squared norm. */
  norm: Float64Array;
}

function pairwise(stats: TensorStats): Pairwise {
  const N = stats.ids.length, T = stats.tensors.length;
  const D = new Float64Array(N * N), norm = new Float64Array(N);
  for (let t = 0; t < T; t++)
    for (let i = 0; i < N; i++) {
      norm[i] += stats.dot[(t * N + i) * N + i]!;
      for (let j = 0; j < N; j++) D[i * N + j] += stats.sumsq[(t * N + i) * N + j]!;
    }
  return { N, T, D, norm };
}

const sq = (stats: TensorStats, t: number, i: number, j: number) => stats.sumsq[(t * stats.ids.length + i) * stats.ids.length + j]!;

/** Every compared tensor identical. */
export function isDuplicate(stats: TensorStats, i: number, j: number): boolean {
  for (let t = 0; t < stats.tensors.length; t++) if (sq(stats, t, i, j) !== 0) return false;
  return stats.tensors.length > 0;
}

/**
 * i is a cast of j: some tensor of i has a lower-precision float dtype than j's and differs by at
 * most its rounding, every other tensor is identical. Returns the worst ratio to the bound
 * (<= 1), or null when not a cast.
 */
export function castRatio(stats: TensorStats, dtypes: string[][], i: number, j: number): number | null {
  const N = stats.ids.length;
  let lowered = 0, worst = 0;
  for (let t = 0; t < stats.tensors.length; t++) {
    const di = FLOAT[dtypes[i]![t]!], dj = FLOAT[dtypes[j]![t]!];
    if (!di || !dj) return null;
    const s = sq(stats, t, i, j);
    if (di.bits >= dj.bits) {
      if (s !== 0) return null;
      continue;
    }
    const wj = stats.dot[(t * N + j) * N + j]!;
    const bound = (di.u ** 2 * wj + stats.tensors[t]!.numel * di.floor ** 2) * (1 + 1e-6);
    if (!(s <= bound)) return null;
    lowered++;
    worst = Math.max(worst, bound > 0 ? s / bound : 0);
  }
  return lowered > 0 ? worst : null;
}

function quantized(facts: ModelFacts, k: number): boolean {
  if (facts.format?.[k] === 'gguf') return true;
  return facts.dtypes?.[k]?.some(isQuantizedDtype) ?? false;
}

/** Relative squared noise ceiling of model k as a quantized copy (tensor-size weighted by the source norms). */
function quantCeiling(stats: TensorStats, facts: ModelFacts, k: number, src: number): number {
  const N = stats.ids.length;
  let allowed = 0, norm = 0;
  for (let t = 0; t < stats.tensors.length; t++) {
    const w = stats.dot[(t * N + src) * N + src]!;
    const dt = facts.dtypes?.[k]?.[t] ?? 'Q4_0';
    allowed += quantNoiseCeiling(facts.format?.[k] === 'gguf' && !isQuantizedDtype(dt) ? 'F16' : dt) * w;
    norm += w;
  }
  return norm > 0 ? allowed / norm : 0;
}

/** Solves the small symmetric system A x = b (Gaussian elimination with pivoting); null if singular. */
function solve(A: number[][], b: number[]): number[] | null {
  const n = b.length;
  const M = A.map((row, i) => [...row, b[i]!]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(M[r]![c]!) > Math.abs(M[p]![c]!)) p = r;
    if (Math.abs(M[p]![c]!) < 1e-300) return null;
    [M[c], M[p]] = [M[p]!, M[c]!];
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = M[r]![c]! / M[c]![c]!;
      for (let k = c; k <= n; k++) M[r]![k]! -= f * M[c]![k]!;
    }
  }
  return M.map((row, i) => row[n]! / row[i]!);
}

export interface MergeFit {
  parents: number[];
  weights: number[];
  /** Residual sumsq of the best affine fit over its distance to the nearest candidate. */
  ratio: number;
  /** A sparse (TIES) merge: the base its task vectors are taken from, and the share of moved sampled entries between base and parents. */
  sparse?: { base: number; explained: number };
}

/** Least share of the sampled entries that must equal (bit for bit) the base, or a parent where the base does not. */
export const SPARSE_MIN_EQUAL = 0.01;
/** Least share of the entries that differ from the base lying between the base and the parents (rounding aside). */
export const SPARSE_MIN_BETWEEN = 0.99;

/**
 * Sparse (TIES-style) merge of model m on sampled entries (see the file comment), or null. For each
 * candidate base b: z = share of entries with m = b exactly, which trimming leaves; trained float
 * weights are equal by chance at ~no entry. Where m != b, a parent k kept alone gives m = k
 * exactly; parents are added in order of that share while they have some, until (nearly) every
 * entry where m != b lies in [min, max] of {b, parents} (a mean of some parents' task values, with
 * sign election, stays in that range), widened by the rounding of m's dtype (`u`, unit roundoff).
 * Which model is the base: trimming drops each task vector's smallest entries, so where m = b the
 * parents are near b (their |k - b| there below their mean |k - b|), while a parent taken for the
 * base is matched where it alone was kept, i.e. where it is far from the others. The base is the
 * candidate with the smallest such ratio, and it must be below 1.
 * The weights are the least-squares coefficients of m - b on the parents' task vectors over the
 * entries that moved, clipped at 0 and normalised: an estimate (TIES means only the kept entries).
 */
export function sparseMerge(sample: readonly (Float64Array | null)[], m: number, candidates: readonly number[], u = 2 ** -24): MergeFit | null {
  const x = sample[m];
  if (!x || x.length === 0) return null;
  const S = x.length;
  const cand = candidates.filter((k) => k !== m && sample[k] && sample[k]!.length === S);
  let best: { fit: MergeFit; trimmed: number } | null = null;
  for (const b of cand) {
    const wb = sample[b]!;
    const moved: number[] = [], kept: number[] = [];
    for (let e = 0; e < S; e++) (x[e] !== wb[e] ? moved : kept).push(e);
    if (kept.length < SPARSE_MIN_EQUAL * S || moved.length === 0) continue;
    // Models equal to m where m moved away from b: parents kept alone there.
    const equal = cand.filter((k) => k !== b).map((k) => {
      const wk = sample[k]!;
      let n = 0;
      for (const e of moved) if (x[e] === wk[e]) n++;
      return { k, share: n / moved.length };
    }).filter((q) => q.share >= SPARSE_MIN_EQUAL).sort((p, q) => q.share - p.share || p.k - q.k);
    // At most MERGE_MAX_PARENTS: with many relatives, bfloat16's rounding (the range widened by
    // 4u = 1.6 %) and chance equalities would put nearly every entry "between" some of them.
    const parents: number[] = [];
    let between = 0;
    for (const { k } of equal.slice(0, MERGE_MAX_PARENTS)) {
      parents.push(k);
      let inside = 0;
      for (const e of moved) {
        let lo = wb[e]!, hi = wb[e]!;
        for (const p of parents) { const v = sample[p]![e]!; if (v < lo) lo = v; if (v > hi) hi = v; }
        const tol = 4 * u * Math.max(Math.abs(lo), Math.abs(hi));
        if (x[e]! >= lo - tol && x[e]! <= hi + tol) inside++;
      }
      between = inside / moved.length;
      if (between >= SPARSE_MIN_BETWEEN) break;
    }
    if (parents.length < 2 || between < SPARSE_MIN_BETWEEN) continue;
    const absMean = (k: number, es: Iterable<number>) => {
      let s = 0, n = 0;
      for (const e of es) { s += Math.abs(sample[k]![e]! - wb[e]!); n++; }
      return n ? s / n : 0;
    };
    const all = Array.from({ length: S }, (_, e) => e);
    const trimmed = parents.reduce((a, k) => a + absMean(k, kept) / (absMean(k, all) || 1), 0) / parents.length;
    if (!(trimmed < 1)) continue;
    // As for an affine merge, every parent must carry a meaningful weight.
    const weights = taskWeights(sample, x, b, parents, moved);
    if (weights.some((w) => !(w >= MERGE_MIN_WEIGHT))) continue;
    if (!best || trimmed < best.trimmed)
      best = { fit: { parents, weights, ratio: 0, sparse: { base: b, explained: round4(between) } }, trimmed };
  }
  return best?.fit ?? null;
}

/** Least-squares coefficients of x - b on (k - b), k in parents, over `entries`; clipped at 0, summing to 1. */
function taskWeights(sample: readonly (Float64Array | null)[], x: Float64Array, b: number, parents: number[], entries: number[]): number[] {
  const wb = sample[b]!, n = parents.length;
  const G = parents.map(() => new Array<number>(n).fill(0)), g = new Array<number>(n).fill(0);
  for (const e of entries) {
    const d = x[e]! - wb[e]!;
    const t = parents.map((p) => sample[p]![e]! - wb[e]!);
    for (let a = 0; a < n; a++) {
      g[a] += t[a]! * d;
      for (let c = 0; c < n; c++) G[a]![c] += t[a]! * t[c]!;
    }
  }
  const c = solve(G, g)?.map((v) => (Number.isFinite(v) && v > 0 ? v : 0)) ?? parents.map(() => 1);
  const sum = c.reduce((a, v) => a + v, 0);
  return sum > 0 ? c.map((v) => v / sum) : parents.map(() => 1 / n);
}

/**
 * Best non-negative affine fit of model i by 2..maxParents of `candidates` (the nearest 10 by
 * distance are tried), or null. G_kl = (D_ik + D_il - D_kl) / 2; min c'Gc with sum c = 1 is
 * c = G^-1 1 / (1' G^-1 1), residual 1 / (1' G^-1 1).
 */
export function fitMerge(pw: Pairwise, i: number, candidates: number[], maxParents = MERGE_MAX_PARENTS): MergeFit | null {
  const { N, D } = pw;
  const near = candidates.filter((k) => k !== i).sort((a, b) => D[i * N + a]! - D[i * N + b]!).slice(0, 10);
  if (near.length < 2) return null;
  const nearest = D[i * N + near[0]!]!;
  if (!(nearest > 0)) return null;
  let best: MergeFit | null = null;
  const consider = (set: number[]) => {
    const G = set.map((k) => set.map((l) => (D[i * N + k]! + D[i * N + l]! - D[k * N + l]!) / 2));
    // KKT system of min c'Gc s.t. 1'c = 1: [[G, 1], [1', 0]] [c; mu] = [0; 1]. Non-singular even
    // for an exact merge (G singular, its null vector summing to 1).
    const n = set.length;
    const K = [...G.map((row) => [...row, 1]), [...set.map(() => 1), 0]];
    const x = solve(K, [...set.map(() => 0), 1]);
    if (!x) return;
    const c = x.slice(0, n);
    if (c.some((v) => !(v >= MERGE_MIN_WEIGHT))) return;
    let resid = 0;
    for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) resid += c[a]! * c[b]! * G[a]![b]!;
    resid = Math.max(0, resid);
    const ratio = resid / nearest;
    // A larger set must earn its place: at least halve the residual of the best smaller fit.
    if (!best || (set.length > best.parents.length ? ratio < best.ratio * 0.5 : ratio < best.ratio))
      best = { parents: set, weights: c, ratio };
  };
  const n = near.length;
  for (let a = 0; a < n; a++)
    for (let b = a + 1; b < n; b++) consider([near[a]!, near[b]!]);
  if (maxParents >= 3)
    for (let a = 0; a < n; a++) for (let b = a + 1; b < n; b++) for (let c = b + 1; c < n; c++) consider([near[a]!, near[b]!, near[c]!]);
  if (maxParents >= 4)
    for (let a = 0; a < n; a++)
      for (let b = a + 1; b < n; b++)
        for (let c = b + 1; c < n; c++) for (let d = c + 1; d < n; d++) consider([near[a]!, near[b]!, near[c]!, near[d]!]);
  return best;
}

/**
 * Pairs (child, parent) that look like merged LoRA (frozen tensors + moved 2-D tensors), for the
 * caller to compute the rank statistic on before typedRelations (addRankStatistics with 2-model
 * families). Each model's candidate parent is the one sharing the most frozen tensors.
 */
export function adapterCandidates(stats: TensorStats): [number, number][] {
  const N = stats.ids.length;
  const out: [number, number][] = [];
  for (let i = 0; i < N; i++) {
    const j = frozenParent(stats, i, () => false);
    if (j !== null) out.push([i, j]);
  }
  return out;
}

function frozenParent(stats: TensorStats, i: number, excluded: (j: number) => boolean): number | null {
  const N = stats.ids.length;
  let best: number | null = null, bestFrozen = 0, bestD = Infinity;
  for (let j = 0; j < N; j++) {
    if (j === i || excluded(j)) continue;
    const { frozen, moved2d } = frozenCount(stats, i, j);
    if (frozen === 0 || moved2d.length === 0) continue;
    let d = 0;
    for (let t = 0; t < stats.tensors.length; t++) d += sq(stats, t, i, j);
    if (frozen > bestFrozen || (frozen === bestFrozen && d < bestD)) {
      best = j;
      bestFrozen = frozen;
      bestD = d;
    }
  }
  return best;
}

/** The statistics of a subset of the models (every per-model and per-pair array re-indexed). */
export function subsetStats(stats: TensorStats, keep: number[]): TensorStats {
  const N = stats.ids.length, T = stats.tensors.length, n = keep.length;
  const per = (a: Float64Array) => {
    const out = new Float64Array(T * n);
    for (let t = 0; t < T; t++) keep.forEach((k, a2) => (out[t * n + a2] = a[t * N + k]!));
    return out;
  };
  const pair = (a: Float64Array) => {
    const out = new Float64Array(T * n * n);
    for (let t = 0; t < T; t++)
      keep.forEach((i, a2) => keep.forEach((j, b2) => (out[(t * n + a2) * n + b2] = a[(t * N + i) * N + j]!)));
    return out;
  };
  return {
    ids: keep.map((k) => stats.ids[k]!),
    tensors: stats.tensors,
    kurtosis: per(stats.kurtosis),
    mean: per(stats.mean),
    m2: per(stats.m2),
    sumsq: pair(stats.sumsq),
    dot: pair(stats.dot),
    ...(stats.sumabs ? { sumabs: pair(stats.sumabs) } : {}),
    ...(stats.maxabs ? { maxabs: pair(stats.maxabs) } : {}),
    ...(stats.rank ? { rank: pair(stats.rank) } : {}),
    ...(stats.spectrum ? { spectrum: pair(stats.spectrum) } : {}),
    ...(stats.weightSpectrum ? { weightSpectrum: per(stats.weightSpectrum) } : {}),
    ...(stats.spectrumNoise ? { spectrumNoise: stats.spectrumNoise } : {}),
    ...(stats.constant ? { constant: stats.constant } : {}),
    ...(stats.storageBits ? { storageBits: Float64Array.from(keep, (k) => stats.storageBits![k]!) } : {}),
  };
}

/**
 * Typed relations of one architecture group: `graph` is recoverGraph(stats, options) (see the file
 * comment). Pure and deterministic.
 */
export function typedRelations(stats: TensorStats, graph: GraphResult, facts: ModelFacts = {}, options: GraphOptions = {}): TypedResult {
  const pw = pairwise(stats);
  const { N, D } = pw;
  const ids = stats.ids;
  const dtypes = facts.dtypes ?? ids.map(() => stats.tensors.map(() => 'F32'));
  const warnings: string[] = [];
  const copyOf: (TypedEdge | null)[] = new Array(N).fill(null);
  const parents: TypedEdge[][] = ids.map(() => []);
  const precision = (k: number) => Math.min(...dtypes[k]!.map((d) => FLOAT[d]?.bits ?? 0));
  const isQ = ids.map((_, k) => quantized(facts, k));

  // 1. Duplicates: classes of identical models, each with an original.
  const up = ids.map((_, i) => i);
  const find = (x: number): number => (up[x] === x ? x : (up[x] = find(up[x]!)));
  for (let i = 0; i < N; i++) for (let j = i + 1; j < N; j++) if (isDuplicate(stats, i, j)) up[find(j)] = find(i);
  const classes = new Map<number, number[]>();
  ids.forEach((_, i) => { const r = find(i); classes.set(r, [...(classes.get(r) ?? []), i]); });
  const canonical = ids.map((_, i) => i);
  for (const members of classes.values()) {
    if (members.length < 2) continue;
    const claimsOther = (k: number) => (facts.claimedBases?.[k] ?? []).some((b) => b !== k && members.includes(b));
    const order = [...members].sort((a, b) =>
      Number(isQ[a]) - Number(isQ[b]) || Number(claimsOther(a)) - Number(claimsOther(b)) ||
      precision(b) - precision(a) || (facts.files?.[a] ?? 1) - (facts.files?.[b] ?? 1) || a - b);
    const orig = order[0]!;
    for (const k of members) {
      canonical[k] = orig;
      if (k !== orig) copyOf[k] = { parent: orig, relation: 'duplicate', confidence: 1 };
    }
  }
  const originals = ids.map((_, i) => i).filter((i) => canonical[i] === i);

  // 2. Casts (of unquantized models): the source is the highest-precision, then nearest, original.
  for (const i of originals) {
    if (isQ[i]) continue;
    let best: { j: number; ratio: number } | null = null;
    for (const j of originals) {
      if (j === i || isQ[j]) continue;
      const r = castRatio(stats, dtypes, i, j);
      if (r === null) continue;
      if (!best || precision(j) > precision(best.j) || (precision(j) === precision(best.j) && D[i * N + j]! < D[i * N + best.j]!)) best = { j, ratio: r };
    }
    if (best) copyOf[i] = { parent: best.j, relation: 'cast', confidence: round4(1 - 0.1 * best.ratio) };
  }
  // A cast's duplicates stay duplicates of it; a cast of a cast points to the first source.
  const source = (k: number): number => {
    let x = k, steps = 0;
    while (copyOf[x] && steps++ < N) x = copyOf[x]!.parent;
    return x;
  };
  for (const i of originals) if (copyOf[i]?.relation === 'cast') copyOf[i]!.parent = source(copyOf[i]!.parent);

  // 3. Quantized copies: the nearest unquantized original, confirmed at the quantiser's noise level.
  for (const i of originals) {
    if (!isQ[i]) continue;
    const cands = originals.filter((j) => j !== i && !isQ[j]);
    if (!cands.length) continue;
    const dmin = Math.min(...cands.map((j) => D[i * N + j]!));
    // Near-ties (the source and its cast): the one that is not a copy, then the higher precision.
    const near = cands.filter((j) => D[i * N + j]! <= dmin * 1.05 + 1e-30)
      .sort((a, b) => Number(copyOf[a] !== null) - Number(copyOf[b] !== null) || precision(b) - precision(a) || D[i * N + a]! - D[i * N + b]!);
    const j = near[0]!;
    const rel = pw.norm[j]! > 0 ? D[i * N + j]! / pw.norm[j]! : Infinity;
    const ceiling = quantCeiling(stats, facts, i, j);
    if (rel <= ceiling) copyOf[i] = { parent: source(j), relation: 'quantized', confidence: round4(Math.max(0.5, 1 - 0.5 * (rel / ceiling))) };
    else warnings.push(`${ids[i]} is quantized but no model here is within its quantiser's noise (nearest ${ids[j]}, relative error ${rel.toExponential(2)} > ${ceiling.toExponential(2)}): placed as a fine-tune`);
  }
  const isCopy = (k: number) => copyOf[k] !== null;

  // 4. Merges and merged LoRA, family by family, among the models that are not copies.
  const famOf = graph.family;
  const famIds = [...new Set(famOf)].sort((a, b) => a - b);
  const mergeOf: (MergeFit | null)[] = new Array(N).fill(null);
  const loraOf: (number | null)[] = new Array(N).fill(null);
  // Families whose tree already placed their adapters (the rank distance; per-edge adapter groups):
  // their merged LoRA are typed here, not taken out and re-placed by the frozen-tensor rule (which
  // can take a base for an adapter of its own child).
  const rankFamily = new Set(graph.families.map((f, k) => (f.distance === 'lora' || f.evidence === 'per-edge' ? k : -1)).filter((k) => k >= 0));
  for (const f of famIds) {
    const core = ids.map((_, k) => k).filter((k) => famOf[k] === f && !isCopy(k));
    if (core.length >= 3)
      for (const i of core) {
        const fit = fitMerge(pw, i, core);
        if (fit && fit.ratio <= MERGE_MAX_RESIDUAL) mergeOf[i] = fit;
        else if (facts.sample) mergeOf[i] = sparseMerge(facts.sample, i, core, Math.max(...dtypes[i]!.map((d) => FLOAT[d]?.u ?? 2 ** -8)));
      }
    const skip = (k: number) => isCopy(k) || famOf[k] !== f || mergeOf[k] !== null;
    // Spread of the moved tensors (sum of m2, centred per tensor): a merged LoRA x = p + BA has the
    // larger one (norm growth: on 36 of 36 ViT and 30 of 31 lm-lora LoRA edges, docs/method.md).
    const spreadOver = (k: number, tensors: number[]) => tensors.reduce((a, t) => a + stats.m2[t * N + k]!, 0);
    for (const i of core) {
      if (mergeOf[i]) continue;
      const j = frozenParent(stats, i, skip);
      if (j === null) continue;
      const { moved2d } = frozenCount(stats, i, j);
      // Frozen tensors are symmetric, so which of the two is the adapter: the one whose moved
      // tensors grew. (Before, only a mutual pair was tested, by the distance to the third models:
      // a root whose LoRA child's nearest frozen relative is its own adapter was never tested, and
      // the distance test took a root for the adapter of its child where the family's fine-tunes
      // moved the way the adapter did.)
      if (!(spreadOver(i, moved2d) > spreadOver(j, moved2d))) continue;
      if (lowRank(stats, i, j, moved2d, facts.rank)) loraOf[i] = j;
    }
  }
  // A merge found among merges (m2 = combination involving m1's own parents) keeps only what survives.
  // Parents that are merges of the same model's parents are fine; drop self-referential cycles.
  for (let i = 0; i < N; i++) {
    const m = mergeOf[i];
    if (!m) continue;
    if (m.parents.some((p) => mergeOf[p]?.parents.includes(i))) mergeOf[i] = null;
  }

  // 5. The primary tree over the core (see the file comment). A model whose nearest model is a
  // merge or a merged LoRA (and not one of its parents) is that model's fine-tune: out of the core too.
  const hubs = ids.map((_, k) => k).filter((k) => !isCopy(k) && (mergeOf[k] !== null || (loraOf[k] !== null && !rankFamily.has(famOf[k]!))));
  const hubChild: (number | null)[] = new Array(N).fill(null);
  for (let x = 0; x < N; x++) {
    if (isCopy(x) || hubs.includes(x)) continue;
    let near: number | null = null, nearD = Infinity;
    for (let k = 0; k < N; k++)
      if (k !== x && famOf[k] === famOf[x] && !isCopy(k) && D[x * N + k]! < nearD) { near = k; nearD = D[x * N + k]!; }
    if (near === null || !hubs.includes(near)) continue;
    const mp = mergeOf[near] ? mergeOf[near]!.parents : [loraOf[near]!];
    if (mp.includes(x)) continue;
    // x = m + delta: delta is about orthogonal to (k - m) for every other model k. A model the
    // merge sits near for another reason (the base its parents share, with its other children) is not.
    const m = near;
    const cos = (p: number) => (D[x * N + m]! + D[p * N + m]! - D[x * N + p]!) / (2 * Math.sqrt(D[x * N + m]! * D[p * N + m]!) || 1);
    const third = ids.map((_, k) => k).filter((k) => k !== x && k !== m && famOf[k] === famOf[x] && !isCopy(k));
    if (third.some((k) => !(Math.abs(cos(k)) < HUB_CHILD_MAX_COS))) continue;
    hubChild[x] = near;
  }
  const removed = (k: number) => isCopy(k) || mergeOf[k] !== null || (loraOf[k] !== null && !rankFamily.has(famOf[k]!)) || hubChild[k] !== null;
  let parent: (number | null)[] = [...graph.parent];
  let confidence = [...graph.confidence];
  if (ids.some((_, k) => removed(k))) {
    for (const f of famIds) {
      const members = ids.map((_, k) => k).filter((k) => famOf[k] === f);
      const core = members.filter((k) => !removed(k));
      if (core.length === members.length) continue;
      for (const k of members) { parent[k] = null; confidence[k] = graph.confidence[k]!; }
      if (core.length >= 2) {
        const sub = recoverGraph(subsetStats(stats, core), { ...options, families: 1, ...(graph.entropySign ? { entropySign: graph.entropySign } : {}) });
        core.forEach((k, a) => {
          const p = sub.parent[a];
          parent[k] = p === null || p === undefined ? null : core[p]!;
          confidence[k] = sub.confidence[a]!;
        });
        if (sub.families[0]?.evidence === 'spectrum') settleSpectralTies(stats, D, N, core, parent, confidence);
      } else if (core.length === 1) {
        confidence[core[0]!] = 1;
      }
    }
  }

  // Merges: every parent with its coefficient; drop a parent that is an ancestor of two others.
  const ancestors = (k: number, par: (number | null)[]): Set<number> => {
    const out = new Set<number>();
    let x = par[k] ?? null;
    while (x !== null && !out.has(x)) { out.add(x); x = par[x] ?? null; }
    return out;
  };
  for (let i = 0; i < N; i++) {
    const m = mergeOf[i];
    if (!m) continue;
    let ps = m.parents.map((p, a) => ({ p, w: m.weights[a]! }));
    if (ps.length >= 3) {
      const base = ps.find(({ p }) => ps.filter(({ p: q }) => q !== p && ancestors(q, parent).has(p)).length >= 2);
      if (base) {
        ps = ps.filter((x) => x !== base);
        const s = ps.reduce((a, x) => a + x.w, 0);
        ps = ps.map((x) => ({ p: x.p, w: x.w / s }));
      }
    }
    ps.sort((a, b) => b.w - a.w || a.p - b.p);
    const conf = m.sparse ? round4(0.95 * m.sparse.explained) : round4(Math.max(0.5, 1 - m.ratio / MERGE_MAX_RESIDUAL / 2));
    parents[i] = ps.map(({ p, w }) => ({ parent: p, relation: 'merge', weight: round4(w), confidence: conf }));
    parent[i] = ps[0]!.p;
    confidence[i] = conf;
  }
  // Merged LoRA removed from a full fine-tuning family: their frozen parent.
  for (let i = 0; i < N; i++) {
    if (loraOf[i] === null || mergeOf[i] || isCopy(i)) continue;
    if (!rankFamily.has(famOf[i]!)) { parent[i] = loraOf[i]!; confidence[i] = 0.95; }
  }
  // Fine-tunes of merges and merged LoRA.
  for (let x = 0; x < N; x++) {
    const m = hubChild[x];
    if (m === null || m === undefined) continue;
    parent[x] = m;
    confidence[x] = round4(Math.min(0.95, graph.confidence[x]!));
  }
  // Copies: their source.
  for (let i = 0; i < N; i++) {
    const c = copyOf[i];
    if (!c) continue;
    parent[i] = c.parent;
    confidence[i] = c.confidence;
    parents[i] = [c];
  }
  // A core model whose tree parent is a copy hangs from the copy's source.
  for (let i = 0; i < N; i++) {
    if (isCopy(i)) continue;
    const p = parent[i];
    if (p !== null && p !== undefined && isCopy(p)) parent[i] = source(p) === i ? null : source(p);
  }
  // The rest: fine-tunes, or merged LoRA where frozen tensors say so.
  for (let i = 0; i < N; i++) {
    if (parents[i]!.length) continue;
    const p = parent[i];
    if (p === null || p === undefined) continue;
    const { frozen, moved2d } = frozenCount(stats, i, p);
    const adapter = frozen > 0 && moved2d.length > 0 && lowRank(stats, i, p, moved2d, facts.rank);
    parents[i] = [{ parent: p, relation: adapter ? 'adapter' : 'finetune', confidence: round4(confidence[i]!) }];
  }
  return { parent, confidence, parents, warnings };
}

/** |t| of a spectral preference below this is no preference (the usual two-sided 5% level). */
export const SPECTRAL_TIE_T = 2;

/**
 * t statistic, over the 2-D tensors, of H(W_x - W_a) - H(W_x - W_c): negative when the spectra
 * place x nearer a. NaN with fewer than 2 tensors where both are computed.
 */
export function spectralPreference(stats: TensorStats, x: number, a: number, c: number): number {
  const S = stats.spectrum, N = stats.ids.length;
  if (!S) return NaN;
  const v: number[] = [];
  for (let t = 0; t < stats.tensors.length; t++) {
    const ha = S[(t * N + x) * N + a]!, hc = S[(t * N + x) * N + c]!;
    if (Number.isFinite(ha) && Number.isFinite(hc)) v.push(ha - hc);
  }
  if (v.length < 2) return NaN;
  const m = v.reduce((s, y) => s + y, 0) / v.length;
  const sd = Math.sqrt(v.reduce((s, y) => s + (y - m) ** 2, 0) / (v.length - 1));
  return sd > 0 ? m / (sd / Math.sqrt(v.length)) : m === 0 ? 0 : Math.sign(m) * Infinity;
}

/**
 * The core tree of a hub family (parent, in place): a model's parent a is replaced by a's parent,
 * or by a sibling farther from a than it, when the spectra cannot tell the two apart (|t| <
 * SPECTRAL_TIE_T) and L2 places the model nearer the other. Where a candidate is nearly a copy of
 * a (a short fine-tune), W_x - W_a and W_x - W_c differ by a little and so do their spectra, while
 * the geometry still says whether x holds the short update: |x - c|^2 < |x - a|^2 exactly when
 * x's difference from a leans more than half-way along c - a. Where the spectra do prefer one,
 * they decide (siblings that drift together are nearer each other than their parent by L2).
 */
export function settleSpectralTies(stats: TensorStats, D: Float64Array, N: number, core: number[], parent: (number | null)[], confidence: number[]): void {
  const inCore = new Set(core);
  for (let round = 0; round < core.length; round++) {
    let moved = false;
    for (const x of core) {
      const a = parent[x];
      if (a === null || a === undefined) continue;
      const up = parent[a];
      const cands = [
        ...(up !== null && up !== undefined ? [up] : []),
        ...core.filter((s) => s !== x && parent[s] === a && D[s * N + a]! < D[x * N + a]!),
      ].filter((c) => inCore.has(c) && D[x * N + c]! < D[x * N + a]! && Math.abs(spectralPreference(stats, x, a, c)) < SPECTRAL_TIE_T);
      if (!cands.length) continue;
      const c = cands.reduce((b, k) => (D[x * N + k]! < D[x * N + b]! ? k : b));
      parent[x] = c;
      // An L2 margin: how much nearer the new parent is.
      confidence[x] = round4(0.5 + 0.5 * (D[x * N + a]! - D[x * N + c]!) / (D[x * N + a]! + D[x * N + c]!));
      moved = true;
    }
    if (!moved) break;
  }
}

function round4(x: number): number {
  return Number(x.toFixed(4));
}

/**
 * An unmerged adapter's base (src/io/peft.ts scores the candidates): the weights pick the family
 * (the best-aligned candidate's), with a confidence from the gap to the next family; inside it a
 * base and its fine-tunes are not told apart by the factors, so the declared base is taken when it
 * is a member of that family, else the family's root.
 */
export function placeAdapter(
  scores: { id: string; family: number; score: number }[],
  declared: readonly string[],
  roots: ReadonlyMap<number, string>,
): { parent: string; family: number; confidence: number; note: string } | null {
  const byFamily = new Map<number, { best: number; members: string[] }>();
  for (const s of scores) {
    if (!Number.isFinite(s.score)) continue;
    const e = byFamily.get(s.family) ?? { best: -Infinity, members: [] };
    e.best = Math.max(e.best, s.score);
    e.members.push(s.id);
    byFamily.set(s.family, e);
  }
  const ranked = [...byFamily.entries()].sort((a, b) => b[1].best - a[1].best || a[0] - b[0]);
  if (!ranked.length) return null;
  const [family, top] = ranked[0]!;
  const second = ranked[1]?.[1].best;
  const confidence = second === undefined || !(top.best > 0) ? 0.6 : Math.min(0.99, Math.max(0.5, 0.5 + 5 * ((top.best - second) / top.best)));
  const named = declared.find((d) => top.members.includes(d));
  const root = roots.get(family);
  const parent = named ?? (root !== undefined && top.members.includes(root) ? root : top.members[0]!);
  const note = named
    ? `family chosen by the weights; base ${named} as declared (a base and its fine-tunes are alike for the factors)`
    : `family chosen by the weights; no declared base in it, so its root`;
  return { parent, family, confidence: round4(named ? confidence : confidence * 0.8), note };
}

/** The Hugging Face base_model_relation of a relation (cast and duplicate have none). */
export function hubRelation(r: Relation): string | null {
  return r === 'cast' || r === 'duplicate' ? null : r;
}

/**
 * Judges a card's claim against the recovered parents, as the hub means it: right when the claimed
 * bases are exactly the parents and the claimed relation (if any) is theirs. `resolved` holds the
 * claimed bases as model ids (null: not among the models, which cannot be judged).
 */
export function judgeClaim(
  resolved: (string | null)[], relation: string | null, parents: { id: string; relation: Relation }[],
): { agrees: boolean | null; note: string } {
  const got = parents.map((p) => p.id).sort();
  const rel = parents.length ? hubRelation(parents[0]!.relation) : null;
  const unknown = resolved.filter((r) => r === null).length;
  if (unknown === resolved.length)
    return { agrees: null, note: 'the claimed base is not among the models read: cannot be checked' };
  const claimed = resolved.filter((r): r is string => r !== null).sort();
  const sameBase = unknown === 0 && claimed.length === got.length && claimed.every((c, i) => c === got[i]);
  const sameRel = relation === null || relation === rel;
  if (sameBase && sameRel) return { agrees: true, note: 'the weights agree' };
  const parts: string[] = [];
  if (!sameBase) parts.push(got.length ? `the weights give ${parents.map((p) => p.id).join(' + ')}` : 'the weights make it a root');
  if (!sameRel) parts.push(`the relation is ${parents[0]?.relation ?? 'none'}, not ${relation}`);
  return { agrees: false, note: `claim contradicted: ${parts.join('; ')}` };
}
