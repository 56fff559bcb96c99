/**
 * Direction without the training stage. A child is its parent plus an update that is roughly
 * independent of it, so its squared norm grows by about the update's own squared size:
 *   score(p -> c) = (|c|^2 - |p|^2) / |c - p|^2 = 1 + 2<p, c-p>/|c-p|^2,
 * antisymmetric, scale-free, ~ +1 for a child, ~ -1 for a parent (clipped to [-1, 1]). Weights are
 * centred per tensor first (sqNorm = sum of m2, sumsq less numel * mean difference^2), so a
 * LayerNorm gain sitting at 1 counts as an offset, not as spread. On the zoo it is positive on
 * every true edge of ft, lora and chain; kurtosis is not (see docs/method.md).
 * Evidence is pooled over the whole family: the undirected tree is rooted where the summed score
 * of all edges, oriented away from the root, is largest. The kurtosis vote (kurtosisVotes) is added
 * to the score edge by edge in full fine-tuning families: the two cues fail on different edges
 * (norm growth on a first fine-tune of a long pre-trained root, kurtosis on continued
 * pre-training), and their sum was positive on every true edge of every zoo we measured
 * (docs/method.md). LoRA families use norm growth alone (see recover.ts).
 */
export function normGrowthScore(sqNorm: Float64Array, sumsq: Float64Array, n: number): Float64Array {
  const s = new Float64Array(n * n);
  for (let a = 0; a < n; a++)
    for (let b = 0; b < n; b++) {
      if (a === b) continue;
      const v = (sqNorm[b] - sqNorm[a]) / sumsq[a * n + b];
      s[a * n + b] = Number.isNaN(v) ? 0 : Math.max(-1, Math.min(1, v));
    }
  return s;
}

/**
 * The paper's cue as a vote, per ordered pair (a -> b): 2 * (weighted share of the 2-D tensors that
 * differ between a and b in which a has the higher excess kurtosis) - 1, in [-1, 1], antisymmetric.
 * Fine-tuning lowers kurtosis (the paper), so a positive vote says "a is the parent". It is noisy
 * edge by edge (LoRA, continued pre-training), so it is only ever summed with the norm-growth score
 * and pooled over a whole tree, never trusted alone.
 */
export function kurtosisVotes(kurtosis: Float64Array, sumsq: Float64Array, N: number,
  tensors: { rows: number; cols: number }[], idx: number[], w: ArrayLike<number>): Float64Array {
  const n = idx.length, up = new Float64Array(n * n), all = new Float64Array(n * n);
  tensors.forEach((t, k) => {
    const wt = w[k];
    if (!wt || t.rows < 2 || t.cols < 2) return;
    for (let a = 0; a < n; a++) {
      const ka = kurtosis[k * N + idx[a]];
      if (!Number.isFinite(ka)) continue;
      for (let b = 0; b < n; b++) {
        const kb = kurtosis[k * N + idx[b]];
        if (a === b || !Number.isFinite(kb) || !(sumsq[(k * N + idx[a]) * N + idx[b]] > 0)) continue;
        all[a * n + b] += wt;
        if (ka > kb) up[a * n + b] += wt;
        else if (ka === kb) up[a * n + b] += wt / 2;
      }
    }
  });
  return up.map((u, i) => (all[i] > 0 ? (2 * u) / all[i] - 1 : 0));
}

/**
 * Roots an undirected tree where sum of score[parent*n+child] over its edges is largest (O(n) by
 * rerooting). Returns local parents (-1 at the root) and the total per candidate root.
 */
export function orientTree(n: number, edges: [number, number][], score: Float64Array): { parent: Int32Array; total: Float64Array; root: number } {
  const adj: number[][] = Array.from({ length: n }, () => []);
  for (const [a, b] of edges) { adj[a].push(b); adj[b].push(a); }
  const total = new Float64Array(n);
  // Totals for root 0 by DFS, then along each edge p -> c: total(c) = total(p) - s(p,c) + s(c,p).
  const order: number[] = [], par0 = new Int32Array(n).fill(-1), seen = new Uint8Array(n);
  const stack = [0];
  seen[0] = 1;
  let t0 = 0;
  while (stack.length) {
    const u = stack.pop()!;
    order.push(u);
    for (const v of adj[u]) if (!seen[v]) { seen[v] = 1; par0[v] = u; t0 += score[u * n + v]; stack.push(v); }
  }
  total[0] = t0;
  for (const u of order) if (u !== 0) { const p = par0[u]; total[u] = total[p] - score[p * n + u] + score[u * n + p]; }
  let root = 0;
  for (let r = 1; r < n; r++) if (total[r] > total[root]) root = r;
  const parent = new Int32Array(n).fill(-1);
  const st = [root], mark = new Uint8Array(n);
  mark[root] = 1;
  while (st.length) {
    const u = st.pop()!;
    for (const v of adj[u]) if (!mark[v]) { mark[v] = 1; parent[v] = u; st.push(v); }
  }
  return { parent, total, root };
}

/**
 * How kurtosis behaves along a family's edges: per edge, does the parent have the higher kurtosis
 * in most 2-D tensors that differ? 'kurtosis-falls' / 'kurtosis-rises' when at least two thirds of
 * the edges agree, else 'mixed' (e.g. continued pre-training spines with fine-tuned leaves).
 */
export function kurtosisDirection(kurtosis: Float64Array, sumsq: Float64Array, N: number,
  tensors: { rows: number; cols: number }[], parent: (number | null)[], members: number[]): 'kurtosis-falls' | 'kurtosis-rises' | 'mixed' {
  let falls = 0, edges = 0;
  for (const c of members) {
    const p = parent[c];
    if (p === null) continue;
    let down = 0, votes = 0;
    tensors.forEach((t, k) => {
      if (t.rows < 2 || t.cols < 2 || !(sumsq[(k * N + p) * N + c] > 0)) return;
      const kp = kurtosis[k * N + p], kc = kurtosis[k * N + c];
      if (!Number.isFinite(kp) || !Number.isFinite(kc)) return;
      votes++;
      if (kp > kc) down++;
    });
    if (!votes) continue;
    edges++;
    if (down * 2 > votes) falls++;
  }
  if (!edges) return 'mixed';
  if (falls * 3 >= edges * 2) return 'kurtosis-falls';
  if (falls * 3 <= edges) return 'kurtosis-rises';
  return 'mixed';
}
