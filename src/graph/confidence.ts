/**
 * Edge confidence by resampling tensors. The statistics are per tensor, so a replicate is just a
 * tensor weighting (how often each of T tensors was drawn, T draws with replacement); the tree is
 * rebuilt per replicate and an edge's confidence is how often it comes back. The most frequent
 * other choice is the runner-up. Families (and each family's distance kind) stay fixed.
 */

/** mulberry32: small, fast and well known (Tommy Ettinger's generator), so replicates are reproducible anywhere. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function resampleWeights(T: number, rand: () => number): Float64Array {
  const w = new Float64Array(T);
  for (let i = 0; i < T; i++) w[Math.floor(rand() * T)] += 1;
  return w;
}

export interface Tally { confidence: number[]; runnerUp: ({ parent: number | null; confidence: number } | null)[] }

/**
 * base: parents (global indices, null for roots); replicates: parents per replicate.
 * Ties among runner-ups go to the one seen first.
 */
export function tally(base: (number | null)[], replicates: (number | null)[][]): Tally {
  const B = replicates.length;
  const confidence: number[] = [], runnerUp: Tally['runnerUp'] = [];
  for (let i = 0; i < base.length; i++) {
    const counts = new Map<number | null, number>();
    let same = 0;
    for (const r of replicates) {
      if (r[i] === base[i]) same++;
      else counts.set(r[i], (counts.get(r[i]) ?? 0) + 1);
    }
    confidence.push(B ? same / B : 0);
    let best: number | null = null, bc = 0;
    for (const [p, c] of counts) if (c > bc) { best = p; bc = c; }
    runnerUp.push(bc > 0 ? { parent: best, confidence: bc / B } : null);
  }
  return { confidence, runnerUp };
}

/**
 * Without resampling: the margin of the chosen parent over the closest other candidate,
 * 1 - d(parent, child) / d(best other, child), in [0, 1]; for a root, the margin of its rooting
 * score over the next best root's, relative to their magnitudes.
 */
export function marginConfidence(n: number, D: Float64Array, parent: Int32Array, rootTotals?: Float64Array):
  { confidence: number[]; alt: (number | null)[] } {
  const confidence: number[] = [], alt: (number | null)[] = [];
  for (let c = 0; c < n; c++) {
    const p = parent[c];
    if (p < 0) {
      if (!rootTotals || n < 2) { confidence.push(1); alt.push(null); continue; }
      let second = -1;
      for (let r = 0; r < n; r++) if (r !== c && (second < 0 || rootTotals[r] > rootTotals[second])) second = r;
      const a = rootTotals[c], b = rootTotals[second];
      const den = Math.abs(a) + Math.abs(b);
      confidence.push(den > 0 ? Math.max(0, Math.min(1, (a - b) / den)) : 0);
      alt.push(second);
      continue;
    }
    let q = -1;
    for (let r = 0; r < n; r++) if (r !== c && r !== p && (q < 0 || D[r * n + c] < D[q * n + c])) q = r;
    const dp = D[p * n + c], dq = q < 0 ? Infinity : D[q * n + c];
    confidence.push(dq === Infinity ? 1 : dq > 0 ? Math.max(0, Math.min(1, 1 - dp / dq)) : 0);
    alt.push(q < 0 ? null : q);
  }
  return { confidence, alt };
}
