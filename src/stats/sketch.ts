/**
 * Sketches for the scale path (src/scale/recover.ts): one streaming pass gives every model its
 * per-tensor moments (the native kurtosis job, in batches of models so memory stays O(N * T)) and a
 * fixed-position sample of each tensor (the same positions in every model, read once from the
 * file). From the samples:
 *   - an unbiased estimate of every squared L2 distance (sum over tensors of numel/S times the
 *     sampled squared differences);
 *   - an estimate of the relatedness (median over tensors of the sampled weight correlation, with
 *     the exact means and spreads from the moments).
 * Candidate relatives per model: k nearest by a 64-dimensional random projection of the sample
 * (a coarse pass over all pairs, O(N^2 * 64) flops, O(N * M) memory), re-ranked by the whole
 * sample, then widened where the margin between the k-th and the next candidates is within the
 * sketch's own error.
 */
import { closeSync, openSync, readSync, fstatSync } from 'node:fs';
import { AbortError } from '../errors.js';
import type { ArchitectureGroup } from '../io/catalogue.js';
import { jobTensors } from '../io/catalogue.js';
import { runJob, type StatsOptions } from './compute.js';
import { mulberry32 } from '../graph/confidence.js';
import type { StatsCache } from '../store/cache.js';

/** Elements sampled per tensor (windows of WINDOW contiguous elements at seeded offsets). */
export const SAMPLE = 32;
const WINDOW = 8;
/** Models per native moments job (bounds open files and the chunk buffer). */
const MOMENT_BATCH = 256;
/** Files at most this large are read whole for the sample (one read instead of one per window). */
const WHOLE_FILE = 8 << 20;

const SKETCHABLE = new Set(['F32', 'F16', 'BF16', 'F64']);

export interface Sketch {
  N: number;
  T: number;
  /** T * N (index t * N + k), from the native moments job. */
  mean: Float64Array;
  m2: Float64Array;
  kurtosis: Float64Array;
  /** Sample offsets: tensor t's samples are columns off[t] .. off[t+1]-1 of each model's row. */
  off: Int32Array;
  /** N * S values, scaled by sqrt(numel / samples) so that the squared distance of rows estimates sum (w_i - w_j)^2. */
  x: Float32Array;
  /** N * S standardised values ((w - mean) / sd), for the relatedness estimate. */
  z: Float32Array;
  S: number;
  bytesRead: number;
}

/** Whether the group can be sketched: plain float dtypes, no permuted GGUF rows. */
export function sketchable(group: ArchitectureGroup): boolean {
  return group.tensors.every((t) => t.dtypes.every((d) => SKETCHABLE.has(d))) &&
    group.models.every((m) => group.tensors.every((t) => !m.tensors.get(t.name)!.permuteHeads));
}

const BYTES: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2 };

function half(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

function decode(buf: Buffer, at: number, dtype: string): number {
  switch (dtype) {
    case 'F32': return buf.readFloatLE(at);
    case 'F64': return buf.readDoubleLE(at);
    case 'F16': return half(buf.readUInt16LE(at));
    default: { const b = Buffer.alloc(4); b.writeUInt16LE(buf.readUInt16LE(at), 2); return b.readFloatLE(0); }
  }
}

/** Sample positions per tensor (element indices), shared by every model: seeded by the tensor's position. */
export function samplePositions(numel: number, t: number, S = SAMPLE): number[] {
  if (numel <= S) return Array.from({ length: numel }, (_, i) => i);
  const rand = mulberry32(0x5eed + t * 7919);
  const out: number[] = [];
  const windows = Math.ceil(S / WINDOW), len = Math.min(WINDOW, S);
  for (let w = 0; w < windows; w++) {
    const start = Math.floor(rand() * (numel - len + 1));
    for (let i = 0; i < len && out.length < S; i++) out.push(start + i);
  }
  return out;
}

/** Sample positions of every tensor of the group and their column offsets in a model's row. */
function sampleLayout(group: ArchitectureGroup): { positions: number[][]; off: Int32Array; S: number } {
  const T = group.tensors.length;
  const positions = group.tensors.map((t, i) => samplePositions(t.numel, i));
  const off = new Int32Array(T + 1);
  for (let t = 0; t < T; t++) off[t + 1] = off[t]! + positions[t]!.length;
  return { positions, off, S: off[T]! };
}

/** One batch's moments (per model: mean, m2, kurtosis of each tensor, 3 * T) and raw samples (S per model). */
export interface SketchBatch {
  moments: Float64Array;
  samples: Float32Array;
  bytesRead: number;
}

/**
 * The sketch of a batch of models (indices into the group): one native moments job over the
 * batch and the sampled values. A cluster worker (src/cluster) runs this on a subgroup of the
 * batch; the native chunking depends on the number of models in the job, so the batches must be
 * the same as here for bit-identical moments.
 */
export async function sketchBatch(group: ArchitectureGroup, batch: number[], options: StatsOptions = {}): Promise<SketchBatch> {
  const T = group.tensors.length, n = batch.length;
  const { positions, off, S } = sampleLayout(group);
  const r = await runJob({
    tensors: jobTensors(group, batch), models: n,
    kurtosis: true, sumsq: false, sumabs: false, maxabs: false, dot: false, rank: false, perTensor: true,
  }, { ...options, onProgress: undefined });
  const m = r.moments!;
  const moments = new Float64Array(3 * T * n), samples = new Float32Array(S * n);
  batch.forEach((k, q) => {
    for (let t = 0; t < T; t++) {
      moments[q * 3 * T + 3 * t] = m.mean[t * n + q]!;
      moments[q * 3 * T + 3 * t + 1] = m.m2[t * n + q]!;
      moments[q * 3 * T + 3 * t + 2] = m.kurtosis[t * n + q]!;
    }
    readSamples(group, k, positions, off, samples.subarray(q * S, (q + 1) * S));
  });
  return { moments, samples, bytesRead: r.bytesRead };
}

/** The sketch of every model of the group: one pass (moments natively, samples in JS). */
export async function sketchGroup(group: ArchitectureGroup, options: StatsOptions & {
  onModels?: (done: number, total: number) => void; cache?: { store: StatsCache; keys: string[] };
  /** Computes a batch elsewhere (a cluster): then every batch is asked for at once. */
  computeBatch?: (batch: number[]) => Promise<SketchBatch>;
} = {}): Promise<Sketch> {
  const N = group.models.length, T = group.tensors.length;
  const mean = new Float64Array(T * N), m2 = new Float64Array(T * N), kurtosis = new Float64Array(T * N);
  let bytesRead = 0;
  const { off, S } = sampleLayout(group);
  const x = new Float32Array(N * S), z = new Float32Array(N * S);
  const cache = options.cache;
  const fill = (k: number) => {
    for (let t = 0; t < T; t++) {
      const numel = group.tensors[t]!.numel, cnt = off[t + 1]! - off[t]!;
      const mu = mean[t * N + k]!, sd = Math.sqrt(m2[t * N + k]! / numel), scale = Math.sqrt(numel / cnt);
      for (let c = off[t]!; c < off[t + 1]!; c++) {
        const v = x[k * S + c]!;
        z[k * S + c] = sd > 0 ? (v - mu) / sd : 0;
        x[k * S + c] = v * scale;
      }
    }
  };
  // Cached sketches first; the rest in batches through the native moments job.
  const missing: number[] = [];
  for (let k = 0; k < N; k++) {
    const hit = cache?.store.sketch(cache.keys[k]!);
    if (hit && hit.moments.length === 3 * T && hit.sample.length === S) {
      for (let t = 0; t < T; t++) { mean[t * N + k] = hit.moments[3 * t]!; m2[t * N + k] = hit.moments[3 * t + 1]!; kurtosis[t * N + k] = hit.moments[3 * t + 2]!; }
      x.set(hit.sample, k * S);
      fill(k);
    } else missing.push(k);
  }
  let doneModels = N - missing.length;
  const take = (batch: number[], r: SketchBatch) => {
    bytesRead += r.bytesRead;
    const entries: { key: string; moments: Float64Array; sample: Float32Array }[] = [];
    batch.forEach((k, q) => {
      const moments = r.moments.subarray(q * 3 * T, (q + 1) * 3 * T);
      for (let t = 0; t < T; t++) {
        mean[t * N + k] = moments[3 * t]!;
        m2[t * N + k] = moments[3 * t + 1]!;
        kurtosis[t * N + k] = moments[3 * t + 2]!;
      }
      const row = r.samples.subarray(q * S, (q + 1) * S);
      x.set(row, k * S);
      if (cache) entries.push({ key: cache.keys[k]!, moments: moments.slice(), sample: row.slice() });
      fill(k);
    });
    cache?.store.putSketches(entries);
    doneModels += batch.length;
    options.onModels?.(doneModels, N);
  };
  const batches: number[][] = [];
  for (let b0 = 0; b0 < missing.length; b0 += MOMENT_BATCH) batches.push(missing.slice(b0, b0 + MOMENT_BATCH));
  const remote = options.computeBatch;
  if (remote) await Promise.all(batches.map(async (b) => take(b, await remote(b))));
  else for (const batch of batches) {
    if (options.signal?.aborted) throw new AbortError();
    take(batch, await sketchBatch(group, batch, options));
  }
  return { N, T, mean, m2, kurtosis, off, x, z, S, bytesRead };
}

/** Raw sampled values of model k into out (length S). */
function readSamples(group: ArchitectureGroup, k: number, positions: number[][], off: Int32Array, out: Float32Array): void {
  const model = group.models[k]!;
  const byFile = new Map<string, number[]>();
  group.tensors.forEach((t, i) => {
    const f = model.tensors.get(t.name)!.file;
    if (!byFile.has(f)) byFile.set(f, []);
    byFile.get(f)!.push(i);
  });
  for (const [file, ts] of byFile) {
    const fd = openSync(file, 'r');
    try {
      const size = fstatSync(fd).size;
      const whole = size <= WHOLE_FILE ? Buffer.allocUnsafe(size) : null;
      if (whole) { let got = 0; while (got < size) { const r = readSync(fd, whole, got, size - got, got); if (r === 0) break; got += r; } }
      const small = Buffer.allocUnsafe(8 * WINDOW);
      for (const t of ts) {
        const info = model.tensors.get(group.tensors[t]!.name)!;
        const dtype = group.tensors[t]!.dtypes[k]!, w = BYTES[dtype]!;
        const pos = positions[t]!;
        for (let s = 0; s < pos.length;) {
          // A contiguous run of positions: one read.
          let e = s + 1;
          while (e < pos.length && pos[e] === pos[e - 1]! + 1 && e - s < WINDOW) e++;
          const at = info.offset + pos[s]! * w, len = (e - s) * w;
          let buf: Buffer, base: number;
          if (whole) { buf = whole; base = at; if (at + len > size) throw new Error(`${file}: truncated (tensor ${info.name})`); }
          else { buf = small; base = 0; if (readSync(fd, small, 0, len, at) !== len) throw new Error(`${file}: truncated (tensor ${info.name})`); }
          for (let i = s; i < e; i++) out[off[t]! + i] = decode(buf, base + (i - s) * w, dtype);
          s = e;
        }
      }
    } finally {
      closeSync(fd);
    }
  }
}

/** Estimated sum (w_i - w_j)^2 over all tensors. */
export function sketchDistance(sk: Sketch, i: number, j: number): number {
  const { x, S } = sk;
  let d = 0;
  for (let c = 0, a = i * S, b = j * S; c < S; c++) { const v = x[a + c]! - x[b + c]!; d += v * v; }
  return d;
}

/** Estimated relatedness: median over tensors of the sampled correlation. */
export function sketchRelatedness(sk: Sketch, i: number, j: number): number {
  const { z, S, off, T } = sk;
  const r: number[] = [];
  for (let t = 0; t < T; t++) {
    const n = off[t + 1]! - off[t]!;
    if (!n) continue;
    let s = 0;
    for (let c = off[t]!; c < off[t + 1]!; c++) s += z[i * S + c]! * z[j * S + c]!;
    r.push(s / n);
  }
  r.sort((a, b) => a - b);
  const h = r.length >> 1;
  return r.length === 0 ? NaN : r.length % 2 ? r[h]! : (r[h - 1]! + r[h]!) / 2;
}

export interface Candidates {
  /** Per model, candidate relatives (model indices), nearest first by the sketch. */
  lists: Int32Array[];
  /** Models whose candidate list was widened (thin margin at the k-th candidate). */
  widened: number;
  /** Models whose widening hit the cap (a margin still thin at kMax). */
  thin: number[];
  /** Models whose rows were searched against every other model (all of them without `previous`). */
  searched: number;
  /** What a later call needs to update these candidates after models come and go (`previous`). */
  state: CandidateState;
}

/**
 * The candidate search of one group, kept so that a later run over the group with some models
 * added or removed can update it instead of redoing all N^2 comparisons (`--cache`,
 * src/store/cache.ts). Per model (by content key): its projection, its coarse list (the `coarse`
 * nearest by the projection, with their distances) and the final list with its flags.
 */
export interface CandidateState {
  keys: string[];
  /** k, kMax, margin, coarse, P, S: a state made with other parameters is not reused. */
  params: string;
  /** N * P projection; N norms. */
  y: Float32Array;
  norm: Float64Array;
  /** Coarse lists: N * coarse (distance, index), the first csize[i] of row i used. */
  cd: Float64Array;
  cj: Int32Array;
  csize: Int32Array;
  lists: Int32Array[];
  /** Per model: 1 widened, 2 thin. */
  flags: Uint8Array;
}

const P = 64;

function projection(sk: Sketch, rows: Iterable<number>, y: Float32Array, norm: Float64Array): void {
  const { S, x } = sk;
  // Random +-1 projection of the scaled sample (the same signs every run).
  const rand = mulberry32(12345);
  const signs = new Int8Array(S * P).map(() => (rand() < 0.5 ? -1 : 1));
  for (const i of rows) {
    for (let c = 0; c < S; c++) {
      const v = x[i * S + c]!;
      if (v === 0) continue;
      const row = c * P, out = i * P;
      for (let p = 0; p < P; p++) y[out + p] += v * signs[row + p]!;
    }
    let s = 0;
    for (let p = 0; p < P; p++) s += y[i * P + p]! ** 2;
    norm[i] = s;
  }
}

/** Projection distance of models i and j (the same number either way round). */
function coarseDistance(y: Float32Array, norm: Float64Array, i: number, j: number): number {
  let dot = 0;
  const yi = i * P, yj = j * P;
  for (let p = 0; p < P; p++) dot += y[yi + p]! * y[yj + p]!;
  const d = norm[i]! + norm[j]! - 2 * dot;
  return d === d ? d : Infinity;  // NaN (a sample holding NaN) sorts last, so the order is total
}

/**
 * Inserts (d, j) into row i's coarse list, kept sorted by (distance, index) and cut at `coarse`:
 * the same list as the all-pairs scan in index order builds (an equal distance goes after the
 * lower indices already there, and a full list refuses a distance equal to its last).
 */
function insertCoarse(cd: Float64Array, cj: Int32Array, csize: Int32Array, coarse: number, i: number, d: number, j: number): boolean {
  const base = i * coarse;
  let size = csize[i]!;
  const before = (q: number) => cd[base + q]! < d || (cd[base + q]! === d && cj[base + q]! < j);
  if (size === coarse && before(size - 1)) return false;
  let q = size < coarse ? size++ : coarse - 1;
  while (q > 0 && before(q - 1) === false) { cd[base + q] = cd[base + q - 1]!; cj[base + q] = cj[base + q - 1]!; q--; }
  cd[base + q] = d; cj[base + q] = j;
  csize[i] = size;
  return true;
}

/**
 * k nearest per model by the sketch distance, widened while the next candidate is within
 * `margin` (relative) of the k-th, up to kMax. Coarse pass by a random projection to 64 dims,
 * keeping `coarse` per model, re-ranked by the whole sample.
 *
 * With `previous` (the state of an earlier call on the group, and `keys`, the models' content
 * keys now): a model whose coarse list is still whole (none of its members left) only compares
 * itself with the models added since: O(N * added) comparisons instead of O(N^2), and only the
 * models whose coarse list changed are re-ranked. Rows of added models, and of models that lost a
 * coarse member, are searched against all. The result is the one the full search gives, bit for
 * bit: the coarse list is the `coarse` smallest (distance, index) pairs either way, the distances
 * are computed by the same code from the same projections, and the re-ranking depends on nothing
 * else (test/scale-sketch.test.ts checks it).
 */
export function sketchCandidates(sk: Sketch, options: { k?: number; kMax?: number; margin?: number; coarse?: number; signal?: AbortSignal; onProgress?: (done: number, total: number) => void; keys?: string[]; previous?: CandidateState } = {}): Candidates {
  const { N, S } = sk;
  const k = Math.min(options.k ?? 8, N - 1), kMax = Math.min(options.kMax ?? 2 * k, N - 1);
  const margin = options.margin ?? 3 * Math.sqrt(2 / Math.max(1, S));
  const coarse = Math.max(0, Math.min(N - 1, options.coarse ?? Math.max(4 * kMax, 48)));
  const params = JSON.stringify([k, kMax, margin, coarse, P, S]);
  const keys = options.keys ?? [];
  const y = new Float32Array(N * P), norm = new Float64Array(N);
  const cd = new Float64Array(N * coarse), cj = new Int32Array(N * coarse), csize = new Int32Array(N);
  const lists: Int32Array[] = new Array(N);
  const flags = new Uint8Array(N);
  // Which rows need the whole scan (`full`), which only the added models (`update`), and which
  // are kept as they were (`kept`, their old index for each new one).
  const oldOf = reuseMap(keys, N, params, options.previous);
  const prev = options.previous;
  const added: number[] = [];
  for (let i = 0; i < N; i++) if (oldOf[i]! < 0) added.push(i);
  const newOf = new Int32Array(prev?.keys.length ?? 0).fill(-1);
  if (prev && added.length < N) {
    oldOf.forEach((o, i) => { if (o >= 0) newOf[o] = i; });
    for (let i = 0; i < N; i++) {
      const o = oldOf[i]!;
      if (o < 0) continue;
      y.set(prev.y.subarray(o * P, (o + 1) * P), i * P);
      norm[i] = prev.norm[o]!;
    }
    projection(sk, added, y, norm);
    for (let i = 0; i < N; i++) {
      const o = oldOf[i]!;
      if (o < 0) continue;
      const n = prev.csize[o]!;
      let whole = n === coarse;
      for (let q = 0; q < n && whole; q++) whole = newOf[prev.cj[o * coarse + q]!]! >= 0;
      if (!whole) { oldOf[i] = -1; continue; }  // lost a coarse member: searched again below
      for (let q = 0; q < n; q++) { cd[i * coarse + q] = prev.cd[o * coarse + q]!; cj[i * coarse + q] = newOf[prev.cj[o * coarse + q]!]!; }
      csize[i] = n;
    }
  } else {
    projection(sk, added, y, norm);  // every model is new
  }
  const full: number[] = [];
  for (let i = 0; i < N; i++) if (oldOf[i]! < 0) full.push(i);
  const isFull = new Uint8Array(N);
  for (const i of full) isFull[i] = 1;
  const changed = new Uint8Array(N);
  // Whole rows, in index order (each scans every other model in index order).
  let done = 0;
  for (const i of full) {
    if (options.signal?.aborted && done % 256 === 0) throw new AbortError();
    for (let j = 0; j < N; j++) if (j !== i) insertCoarse(cd, cj, csize, coarse, i, coarseDistance(y, norm, i, j), j);
    changed[i] = 1;
    if (++done % 512 === 0) options.onProgress?.(done, N);
  }
  // Kept rows: only the added models can enter them (every other model was already compared
  // with them, at the same distance).
  if (added.length)
    for (let i = 0; i < N; i++) {
      if (isFull[i]) continue;
      for (const j of added) if (insertCoarse(cd, cj, csize, coarse, i, coarseDistance(y, norm, i, j), j)) changed[i] = 1;
    }
  let widened = 0;
  const thin: number[] = [];
  for (let i = 0; i < N; i++) {
    if (!changed[i] && prev) {
      const o = oldOf[i]!;
      lists[i] = Int32Array.from(prev.lists[o]!, (j) => newOf[j]!);
      flags[i] = prev.flags[o]!;
    } else {
      const re = Array.from(cj.subarray(i * coarse, i * coarse + csize[i]!), (j) => ({ j, d: sketchDistance(sk, i, j) })).sort((a, b) => a.d - b.d || a.j - b.j);
      let take = Math.min(k, re.length);
      while (take < Math.min(kMax, re.length) && re[take]!.d <= (1 + margin) ** 2 * re[k - 1]!.d) take++;
      flags[i] = (take > k ? 1 : 0) | (take === kMax && take < re.length && re[take]!.d <= (1 + margin) ** 2 * re[k - 1]!.d ? 2 : 0);
      lists[i] = Int32Array.from(re.slice(0, take), (e) => e.j);
    }
    if (flags[i]! & 1) widened++;
    if (flags[i]! & 2) thin.push(i);
  }
  options.onProgress?.(N, N);
  return { lists, widened, thin, searched: full.length, state: { keys: keys.slice(), params, y, norm, cd, cj, csize, lists, flags } };
}

/**
 * Per model now, its index in `previous` (-1: not there), or all -1 when the state cannot be
 * reused: other parameters, keys missing or not unique, or the models kept not in the same
 * relative order (ties between equal distances go to the lower index, so that order must hold).
 */
function reuseMap(keys: string[], N: number, params: string, previous?: CandidateState): Int32Array {
  const oldOf = new Int32Array(N).fill(-1);
  if (!previous || previous.params !== params || keys.length !== N) return oldOf;
  const at = new Map<string, number>();
  previous.keys.forEach((key, o) => at.set(key, o));
  if (at.size !== previous.keys.length || new Set(keys).size !== N) return oldOf;
  let last = -1;
  for (let i = 0; i < N; i++) {
    const o = at.get(keys[i]!);
    if (o === undefined) continue;
    if (o < last) return oldOf.fill(-1);
    oldOf[i] = last = o;
  }
  return oldOf;
}
