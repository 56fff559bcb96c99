/**
 * A family's tree over candidate edges only (the scale path for families too large for the dense
 * n x n matrices of recover.ts): per candidate edge, per tensor, the exact sum (w_a - w_b)^2;
 * per member, per tensor, mean, m2 and kurtosis. The L2 evidence of recover.ts's non-spectral
 * 'mother' branch, on a sparse graph:
 *   - L2 distance sqrt(sum_t w_t sumsq) per edge; Kruskal's minimum spanning forest (ties by the
 *     lower index pair, as Prim's lowest-index rule);
 *   - rooted where the summed norm-growth score plus kurtosis vote of the edges oriented away from
 *     the root is largest (direction.ts, by rerooting in O(n));
 *   - bootstrap: the same tensor resampling as confidence.ts, re-running the forest over the
 *     candidate edges per replicate. Memory O(E * T), time O(B * E * T).
 */
import { mulberry32, resampleWeights, tally, type Tally } from './confidence.js';

export interface SparseFamily {
  n: number;
  /** Edges a < b, local indices. */
  a: Int32Array;
  b: Int32Array;
  /** E * T, index e * T + t. */
  sumsq: Float64Array;
  /** T * n (index t * n + a) for the members. */
  mean: Float64Array;
  m2: Float64Array;
  kurtosis: Float64Array;
  tensors: { rows: number; cols: number; numel: number }[];
}

class DSU {
  p: Int32Array;
  constructor(n: number) { this.p = Int32Array.from({ length: n }, (_, i) => i); }
  find(x: number): number { const p = this.p; while (p[x] !== x) { p[x] = p[p[x]!]!; x = p[x]!; } return x; }
  union(a: number, b: number): boolean { const x = this.find(a), y = this.find(b); if (x === y) return false; this.p[x] = y; return true; }
}

/** Directed score of edge e oriented lo -> hi (a[e] -> b[e]); the reverse is its negation. */
function edgeScore(f: SparseFamily, e: number, w: ArrayLike<number>): number {
  const T = f.tensors.length, n = f.n, a = f.a[e]!, b = f.b[e]!;
  let spreadA = 0, spreadB = 0, csq = 0, up = 0, all = 0;
  for (let t = 0; t < T; t++) {
    const wt = w[t]!;
    if (!wt) continue;
    const s = f.sumsq[e * T + t]!, dm = f.mean[t * n + a]! - f.mean[t * n + b]!;
    spreadA += wt * f.m2[t * n + a]!;
    spreadB += wt * f.m2[t * n + b]!;
    csq += wt * (s - f.tensors[t]!.numel * dm * dm);
    const tt = f.tensors[t]!;
    if (tt.rows < 2 || tt.cols < 2 || !(s > 0)) continue;
    const ka = f.kurtosis[t * n + a]!, kb = f.kurtosis[t * n + b]!;
    if (!Number.isFinite(ka) || !Number.isFinite(kb)) continue;
    all += wt;
    if (ka > kb) up += wt; else if (ka === kb) up += wt / 2;
  }
  const g = (spreadB - spreadA) / csq;
  const growth = Number.isNaN(g) ? 0 : Math.max(-1, Math.min(1, g));
  return growth + (all > 0 ? (2 * up) / all - 1 : 0);
}

/** Minimum spanning forest over the candidate edges, rooted per component; local parents (-1: root). */
export function sparseTree(f: SparseFamily, w: ArrayLike<number>): { parent: Int32Array; length: Float64Array } {
  const E = f.a.length, T = f.tensors.length, n = f.n;
  const d = new Float64Array(E);
  for (let e = 0; e < E; e++) { let s = 0; for (let t = 0; t < T; t++) s += w[t]! * f.sumsq[e * T + t]!; d[e] = s; }
  const order = Int32Array.from({ length: E }, (_, e) => e).sort((x, y) => d[x]! - d[y]! || f.a[x]! - f.a[y]! || f.b[x]! - f.b[y]!);
  const dsu = new DSU(n);
  const adj: { to: number; s: number }[][] = Array.from({ length: n }, () => []);
  for (const e of order) {
    if (!dsu.union(f.a[e]!, f.b[e]!)) continue;
    const s = edgeScore(f, e, w);
    adj[f.a[e]!]!.push({ to: f.b[e]!, s });
    adj[f.b[e]!]!.push({ to: f.a[e]!, s: -s });
  }
  // Per component: totals for its first member, rerooting along edges, best root, BFS parents.
  const parent = new Int32Array(n).fill(-1), length = new Float64Array(n);
  const seen = new Uint8Array(n), total = new Float64Array(n), par0 = new Int32Array(n).fill(-1), sIn = new Float64Array(n);
  for (let r0 = 0; r0 < n; r0++) {
    if (seen[r0]) continue;
    const comp: number[] = [];
    const stack = [r0];
    seen[r0] = 1;
    let t0 = 0;
    while (stack.length) {
      const u = stack.pop()!;
      comp.push(u);
      for (const { to, s } of adj[u]!) if (!seen[to]) { seen[to] = 1; par0[to] = u; sIn[to] = s; t0 += s; stack.push(to); }
    }
    total[r0] = t0;
    for (const u of comp) if (u !== r0) total[u] = total[par0[u]!]! - 2 * sIn[u]!;
    let root = r0;
    for (const u of comp) if (total[u]! > total[root]! || (total[u] === total[root] && u < root)) root = u;
    const st = [root];
    const mark = new Set([root]);
    while (st.length) {
      const u = st.pop()!;
      for (const { to } of adj[u]!) if (!mark.has(to)) { mark.add(to); parent[to] = u; st.push(to); }
    }
  }
  for (let e = 0; e < E; e++) {
    const a = f.a[e]!, b = f.b[e]!;
    if (parent[b] === a) length[b] = Math.sqrt(d[e]!);
    else if (parent[a] === b) length[a] = Math.sqrt(d[e]!);
  }
  return { parent, length };
}

/**
 * Parents and confidences: `bootstrap` replicates (seeded as recover.ts), or, with none, the
 * margin of the parent edge over the nearest other candidate.
 */
export function sparseRecover(f: SparseFamily, bootstrap: number, seed: number): { parent: Int32Array } & Tally {
  const T = f.tensors.length, n = f.n;
  const ones = new Float64Array(T).fill(1);
  const { parent } = sparseTree(f, ones);
  const asNull = (p: Int32Array) => Array.from(p, (q) => (q < 0 ? null : q));
  if (bootstrap > 0) {
    const rand = mulberry32(seed);
    const reps: (number | null)[][] = [];
    for (let b = 0; b < bootstrap; b++) reps.push(asNull(sparseTree(f, resampleWeights(T, rand)).parent));
    return { parent, ...tally(asNull(parent), reps) };
  }
  // Margin: 1 - d(parent) / d(nearest other candidate) per child.
  const E = f.a.length;
  const dp = new Float64Array(n).fill(Infinity), dq = new Float64Array(n).fill(Infinity), alt = new Int32Array(n).fill(-1);
  for (let e = 0; e < E; e++) {
    let s = 0;
    for (let t = 0; t < T; t++) s += f.sumsq[e * T + t]!;
    const d = Math.sqrt(s);
    for (const [c, o] of [[f.b[e]!, f.a[e]!], [f.a[e]!, f.b[e]!]] as const) {
      if (parent[c] === o) dp[c] = d;
      else if (d < dq[c]!) { dq[c] = d; alt[c] = o; }
    }
  }
  const confidence: number[] = [], runnerUp: Tally['runnerUp'] = [];
  for (let c = 0; c < n; c++) {
    if (parent[c]! < 0) { confidence.push(1); runnerUp.push(null); continue; }
    const v = dq[c] === Infinity ? 1 : dq[c]! > 0 ? Math.max(0, Math.min(1, 1 - dp[c]! / dq[c]!)) : 0;
    confidence.push(v);
    runnerUp.push(alt[c]! < 0 ? null : { parent: alt[c]!, confidence: 1 - v });
  }
  return { parent, confidence, runnerUp };
}
