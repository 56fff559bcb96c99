/**
 * Spectral evidence (TensorLock's effective rank, adapted): one fine-tuning update is dominated by
 * a few directions, so W_child - W_parent has a peaked singular spectrum. Two siblings differ by
 * the difference of two independent updates, a grandparent and grandchild by their sum: wider
 * spectra. The shared part of siblings' updates (siblings that "drift together", closer to each
 * other than to their parent by L2) is exactly what cancels in their difference, leaving the
 * idiosyncratic, high-entropy parts; so entropy separates what L2 cannot.
 *
 * Placement distance of a pair: exp(mean over 2-D tensors of H(W_a - W_b)) * L2(a, b)^beta, the
 * geometric-mean effective rank with a small share of length. Entropy saturates when updates are
 * large and broad (continued pre-training: every difference is near full rank and H is flat), and
 * the length term (beta, chosen leave-one-split-out, docs/method.md) then orders what entropy
 * cannot. Scale-free per tensor, so no tensor dominates by size.
 *
 * Direction: training changes the spectral entropy of the weights themselves, and their kurtosis,
 * monotonically along a lineage, but the signs depend on the architecture and regime (measured:
 * entropy falls on 35 of 36 ViT fine-tuning edges of the zoo and rises on 31 of 36 LM ones and on
 * every continued pre-training edge; kurtosis falls on every ViT edge, as the paper says, but
 * rises on 26 of 36 LM edges; the paper's stage flag is this sign, given by hand). So each family
 * picks the signs that make its tree most consistent: the vote of an edge, per cue, is the
 * weighted share of 2-D tensors in which the parent has the higher value (a score in [-1, 1]).
 *
 * The tree: the minimum directed spanning tree (Edmonds) of cost(a -> b) = d(a, b) - lambda *
 * sum_cues sign * vote(a -> b), d the placement distance scaled to [0, 1] over the family's pairs,
 * for every choice of signs; the cheapest tree wins. Placement and direction decide together: an edge that only fits the
 * distances but runs against the family's direction can lose to a slightly longer one that agrees.
 *
 * Free signs cannot orient a path: a chain (continued pre-training stages with one fine-tune each)
 * read backwards with both signs flipped costs the same, so such a family can come out reversed.
 * The entropy cue's sign belongs to the architecture and regime, not to one family: measured on the
 * true trees, every family of every LM split has entropy rising on its edges and every ViT family
 * but one (weak votes) falling, while kurtosis flips between families of one split (lm-ft t3). So
 * recoverGraph chooses the entropy sign once for all spectral families of the input (the one whose
 * trees cost least in total) and passes it in `fixed`; a family whose own tree cannot tell borrows
 * it from its relatives. Kurtosis stays free per family.
 */
import { minDirectedSpanningTree } from './arborescence.js';
import { orientTree } from './direction.js';
import { median } from './distance.js';
import type { TensorStats } from './types.js';

/** Share of length in the placement distance (leave-one-split-out, docs/method.md). */
export const LENGTH_WEIGHT = 0.02;
/** Weight of the direction vote against the placement distance (range-normalised) in the directed tree. */
export const DIRECTION_WEIGHT = 0.1;

/**
 * Least contrast (nats) between structureless and observed entropy for spectra to count as
 * evidence: iid-noise differences sit within ~0.01 of their Gaussian reference (the reference's own
 * spread is 0.001-0.02 per tensor, less for a median), while every real family measured has a
 * median nearest-neighbour contrast of 0.096 or more (lm-ft; ViTs and LoRA 1.2-2.8). Not tuned to
 * accuracy: it only keeps spectra out where they are noise.
 */
export const MIN_SPECTRAL_CONTRAST = 0.05;

/**
 * Median, over each member's nearest relative by L2 and the 2-D tensors they differ in, of
 * spectrumNoise[t] - H(W_a - W_b): how much more structured than noise the family's differences are.
 * NaN without spectrum statistics.
 */
export function spectralContrast(stats: TensorStats, idx: number[]): number {
  const S = stats.spectrum, noise = stats.spectrumNoise, N = stats.ids.length, T = stats.tensors.length;
  if (!S || !noise || idx.length < 2) return NaN;
  const c: number[] = [];
  for (const a of idx) {
    let b = -1, bd = Infinity;
    for (const x of idx) {
      if (x === a) continue;
      let d = 0;
      for (let t = 0; t < T; t++) d += stats.sumsq[(t * N + a) * N + x];
      if (d < bd) { bd = d; b = x; }
    }
    for (let t = 0; t < T; t++) {
      const v = noise[t] - S[(t * N + a) * N + b];
      if (Number.isFinite(v)) c.push(v);
    }
  }
  return median(c);
}

/** Whether spectra are evidence for this family: computed, and clearly more structured than noise. */
export function hasSpectrum(stats: TensorStats, idx: number[]): boolean {
  return stats.weightSpectrum !== undefined && spectralContrast(stats, idx) > MIN_SPECTRAL_CONTRAST;
}

/**
 * n x n placement distance over the family `idx` with tensor weights w (see the file comment).
 * Identical models (L2 = 0) are at distance 0; a pair that differs in 1-D tensors only has
 * effective rank 1 there (it is as close as a spectrum can say); a pair whose differing 2-D
 * tensors have no spectrum (not a candidate pair of a large family) is at Infinity (no edge).
 */
export function spectralDistance(stats: TensorStats, idx: number[], w: ArrayLike<number>, lengthWeight = LENGTH_WEIGHT): Float64Array {
  const N = stats.ids.length, n = idx.length, T = stats.tensors.length, S = stats.spectrum!;
  const D = new Float64Array(n * n);
  for (let a = 0; a < n; a++)
    for (let b = a + 1; b < n; b++) {
      let h = 0, hw = 0, sq = 0, moved2d = false;
      for (let t = 0; t < T; t++) {
        const wt = w[t];
        if (!wt) continue;
        const k = (t * N + idx[a]) * N + idx[b];
        sq += wt * stats.sumsq[k];
        const v = S[k];
        if (Number.isFinite(v)) { h += wt * v; hw += wt; }
        else if (stats.tensors[t].rows > 1 && stats.sumsq[k] > 0) moved2d = true;
      }
      // A pair whose 2-D tensors differ but have no spectrum was not a candidate: no edge.
      const d = sq > 0 ? (hw > 0 ? Math.exp(h / hw) * Math.pow(sq, lengthWeight / 2) : moved2d ? Infinity : Math.pow(sq, lengthWeight / 2)) : 0;
      D[a * n + b] = D[b * n + a] = d;
    }
  return D;
}

/**
 * Per ordered pair (a -> b): 2 * (weighted share of 2-D tensors in which a's own spectral entropy
 * is higher than b's) - 1, antisymmetric; ties count half.
 */
export function spectrumVotes(stats: TensorStats, idx: number[], w: ArrayLike<number>): Float64Array {
  const N = stats.ids.length, n = idx.length, H = stats.weightSpectrum!, S = stats.spectrum!;
  const up = new Float64Array(n * n), all = new Float64Array(n * n);
  for (let t = 0; t < stats.tensors.length; t++) {
    const wt = w[t];
    if (!wt) continue;
    for (let a = 0; a < n; a++) {
      const ha = H[t * N + idx[a]];
      if (!Number.isFinite(ha)) continue;
      for (let b = 0; b < n; b++) {
        const hb = H[t * N + idx[b]];
        if (a === b || !Number.isFinite(hb) || !Number.isFinite(S[(t * N + idx[a]) * N + idx[b]])) continue;
        all[a * n + b] += wt;
        up[a * n + b] += ha > hb ? wt : ha === hb ? wt / 2 : 0;
      }
    }
  }
  return up.map((u, i) => (all[i] > 0 ? (2 * u) / all[i] - 1 : 0));
}

/**
 * The family's directed tree from placement distance D (n x n) and direction cues (votes in
 * [-1, 1] per ordered pair, see the file comment): the minimum directed spanning tree of
 * d(a, b) - lambda * sum_c sign_c * vote_c(a -> b) over every choice of the cues' signs; the cheapest
 * wins. `forbidden` holds directed pairs a * n + b that may not be edges (see inheritance.ts).
 * `total` is, per candidate root, the signed votes summed over the chosen tree's edges oriented
 * away from it (for the margin confidences).
 */
export function spectralTree(n: number, D: Float64Array, cues: Float64Array[], directionWeight = DIRECTION_WEIGHT, fixed: number[] = [],
  forbidden: ReadonlySet<number> = new Set()):
  { parent: Int32Array; total: Float64Array; signs: number[]; cost: number } {
  let lo = Infinity, hi = -Infinity;
  for (let a = 0; a < n; a++)
    for (let b = 0; b < n; b++) if (a !== b && D[a * n + b] < Infinity) { lo = Math.min(lo, D[a * n + b]); hi = Math.max(hi, D[a * n + b]); }
  const span = hi > lo ? hi - lo : 1;
  let best: { parent: Int32Array; cost: number; vote: Float64Array; signs: number[] } | undefined;
  for (let mask = 0; mask < 1 << cues.length; mask++) {
    const signs = cues.map((_, c) => ((mask >> c) & 1 ? -1 : 1));
    // A cue whose sign is given (fixed[c] = +1 or -1) is not chosen here.
    if (signs.some((sg, c) => fixed[c] && sg !== fixed[c])) continue;
    const vote = new Float64Array(n * n);
    cues.forEach((v, c) => { for (let i = 0; i < n * n; i++) vote[i] += signs[c] * v[i]; });
    const M = new Float64Array(n * n);
    for (let a = 0; a < n; a++)
      for (let b = 0; b < n; b++)
        M[a * n + b] = a === b || forbidden.has(a * n + b) ? Infinity : (D[a * n + b] - lo) / span - directionWeight * vote[a * n + b];
    const t = minDirectedSpanningTree(n, M);
    if (!best || t.cost < best.cost - 1e-12) best = { parent: t.parent, cost: t.cost, vote, signs };
  }
  const edges: [number, number][] = [];
  best!.parent.forEach((p, c) => { if (p >= 0) edges.push([p, c]); });
  const { total } = orientTree(n, edges, best!.vote);
  return { parent: best!.parent, total, signs: best!.signs, cost: best!.cost };
}
