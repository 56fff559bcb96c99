/**
 * recoverGraph: per-tensor statistics of N models -> families, parents and edge confidences.
 *
 * 'mother' (default), no oracle: families = components of clearly correlated weights (cluster.ts);
 * then per family, by the evidence its statistics carry:
 * - 'spectrum' (full fine-tuning): the directed spanning tree of spectral placement and direction
 *   (spectrum.ts) under the inheritance constraint (inheritance.ts), placement settled (placement.ts);
 * - 'rank' (a LoRA family, lora.ts): the minimum spanning tree of the rank distance, rooted where
 *   norm growth of all edges is largest (direction.ts);
 * - 'per-edge' (adapters and full fine-tunes mixed, adapters.ts): the rank tree inside each group
 *   of adapters, the spectral tree between the groups, direction pooled over the family;
 * - 'l2' (no spectra): the L2 minimum spanning tree rooted by norm growth and kurtosis.
 * Confidences by resampling tensors (confidence.ts).
 * 'paper': the MoTHer paper's recipe on the same families: its distances, kurtosis of the square
 * 2-D tensors, M = D + lambda*mean(D)*K and the minimum directed spanning tree (arborescence.ts).
 */
import { minDirectedSpanningTree } from './arborescence.js';
import { clusterFamilies } from './cluster.js';
import { marginConfidence, mulberry32, resampleWeights, tally } from './confidence.js';
import { checkStats, ftDistance, loraDistance, paperFtDistance, paperLoraDistance, relatedness, usableTensors } from './distance.js';
import { kurtosisDirection, kurtosisVotes, normGrowthScore, orientTree } from './direction.js';
import { adapterGroups } from './adapters.js';
import { adapterBases, copyRepresentatives } from './copies.js';
import { carriedShare, inheritanceViolations, MIN_INHERITED, repairByInheritance } from './inheritance.js';
import { detectLora } from './lora.js';
import { settlePlacement } from './placement.js';
import { DIRECTION_WEIGHT, hasSpectrum, LENGTH_WEIGHT, spectralDistance, spectralTree, spectrumVotes } from './spectrum.js';
import { minSpanningTree } from './mst.js';
import { GraphError, type FamilyResult, type GraphOptions, type GraphResult, type TensorStats } from './types.js';

interface Built { parent: Int32Array; D: Float64Array; rootTotals?: Float64Array; cost?: number }
type Evidence = 'spectrum' | 'l2' | 'rank' | 'per-edge';

/**
 * Revision of the graph method: bumped whenever recoverGraph can give other parents or confidences
 * for the same statistics and options (2: the inheritance constraint and the LOSO constants; 3: placement settled after the tree;
 * 4: constant buffers shared by unrelated models are not frozen tensors; 5: each bootstrap replicate chooses the entropy sign again;
 * 6: families mixing adapters and full fine-tunes get per-edge evidence).
 * Cached family results (src/scale/recover.ts) are keyed by it, so an upgrade never reuses them.
 */
export const GRAPH_REVISION = 6;

/** Below this share of bootstrap replicates agreeing on the entropy sign, recoverGraph warns. */
export const SIGN_SUPPORT_WARNING = 0.75;

/**
 * The options validated, with their defaults filled in: two option sets that decide alike resolve
 * alike (the scale path keys cached family results by it).
 */
export function resolveGraphOptions(o: GraphOptions): Required<Omit<GraphOptions, 'families' | 'entropySign'>> & { families?: number; entropySign?: 1 | -1 } {
  const known = new Set(['method', 'distance', 'lambda', 'bootstrap', 'seed', 'families', 'lengthWeight', 'directionWeight', 'entropySign']);
  for (const key of Object.keys(o ?? {}))
    if (!known.has(key)) throw new GraphError('E_GRAPH_OPTION', `Unknown graph option ${JSON.stringify(key)} (known: ${[...known].join(', ')})`);
  const bad = (what: string, got: unknown) => new GraphError('E_GRAPH_OPTION', `Expected ${what} but received ${JSON.stringify(got)}`);
  const method = o.method ?? 'mother';
  if (method !== 'mother' && method !== 'paper') throw bad("'mother' or 'paper' for method", o.method);
  const distance = o.distance ?? 'auto';
  if (!['auto', 'ft', 'lora'].includes(distance)) throw bad("'auto', 'ft' or 'lora' for distance", o.distance);
  const lambda = o.lambda ?? 0.3;
  if (typeof lambda !== 'number' || !(lambda >= 0) || !Number.isFinite(lambda)) throw bad('a finite number >= 0 for lambda', o.lambda);
  const bootstrap = o.bootstrap ?? 50;
  if (!Number.isInteger(bootstrap) || bootstrap < 0) throw bad('an integer >= 0 for bootstrap', o.bootstrap);
  const seed = o.seed ?? 0;
  if (!Number.isInteger(seed)) throw bad('an integer for seed', o.seed);
  const lengthWeight = o.lengthWeight ?? LENGTH_WEIGHT;
  if (typeof lengthWeight !== 'number' || !(lengthWeight >= 0) || !Number.isFinite(lengthWeight)) throw bad('a finite number >= 0 for lengthWeight', o.lengthWeight);
  if (o.lambda !== undefined && method !== 'paper') throw bad("lambda only with method 'paper' (it is the paper's kurtosis penalty); got method", method);
  const directionWeight = o.directionWeight ?? DIRECTION_WEIGHT;
  if (typeof directionWeight !== 'number' || !(directionWeight >= 0) || !Number.isFinite(directionWeight)) throw bad('a finite number >= 0 for directionWeight', o.directionWeight);
  if (o.entropySign !== undefined && o.entropySign !== 1 && o.entropySign !== -1) throw bad('1 or -1 for entropySign', o.entropySign);
  return { method, distance, lambda, bootstrap, seed, lengthWeight, directionWeight, families: o.families, entropySign: o.entropySign };
}

/** Norm growth (direction.ts) on weights centred per tensor (a LayerNorm gain sitting at 1 is an offset, not spread). */
function centredGrowthScore(stats: TensorStats, idx: number[], w: ArrayLike<number>): Float64Array {
  const n = idx.length, N = stats.ids.length;
  const spread = new Float64Array(n), csq = new Float64Array(n * n);
  for (let t = 0; t < w.length; t++) {
    if (!w[t]) continue;
    const numel = stats.tensors[t].numel;
    for (let a = 0; a < n; a++) {
      spread[a] += w[t] * stats.m2[t * N + idx[a]];
      const ma = stats.mean[t * N + idx[a]];
      for (let b = 0; b < n; b++) {
        const dm = ma - stats.mean[t * N + idx[b]];
        csq[a * n + b] += w[t] * (stats.sumsq[(t * N + idx[a]) * N + idx[b]] - numel * dm * dm);
      }
    }
  }
  return normGrowthScore(spread, csq, n);
}

/** Whether the pairs at a finite distance D (m x m) connect all m nodes. */
function finitelyConnected(D: Float64Array, m: number): boolean {
  const seen = new Uint8Array(m), stack = [0];
  seen[0] = 1;
  let count = 1;
  while (stack.length) {
    const a = stack.pop()!;
    for (let b = 0; b < m; b++) if (!seen[b] && Number.isFinite(D[a * m + b])) { seen[b] = 1; count++; stack.push(b); }
  }
  return count === m;
}

/** Whether the rank distance can be taken over idx: some weighted 2-D tensor has a rank for every pair. */
function hasRanks(stats: TensorStats, idx: number[], w: ArrayLike<number>): boolean {
  const R = stats.rank, N = stats.ids.length;
  if (!R) return false;
  return stats.tensors.some((t, k) => w[k] && t.rows > 1 && t.cols > 1 && idx.every((i) => idx.every((j) => Number.isFinite(R[(k * N + i) * N + j]))));
}

/** One family's tree with tensor weights w. Local indices; parent -1 at the root. */
function buildTree(stats: TensorStats, idx: number[], w: Float64Array, lora: boolean, method: 'mother' | 'paper', lambda: number,
  evidence: Evidence = 'l2', lengthWeight = LENGTH_WEIGHT, directionWeight = DIRECTION_WEIGHT, copies?: Int32Array, entropySign = 0,
  groups?: number[][]): Built {
  const n = idx.length, N = stats.ids.length;
  if (n === 1) return { parent: Int32Array.of(-1), D: new Float64Array(1) };
  if (method === 'mother' && evidence === 'per-edge') return adapterGroupTree(stats, idx, w, lengthWeight, directionWeight, entropySign, groups ?? adapterGroups(stats, idx));
  if (method === 'mother' && evidence === 'spectrum') {
    // The tree over one representative per group of copies (copies.ts); the copies hang below it.
    // Merged adapters hang from their base and are inserted back on its edges after the tree.
    const reps = copies ?? Int32Array.from({ length: n }, (_, a) => a);
    const bases = adapterBases(stats, idx, reps);
    const local = [...reps.keys()].filter((a) => reps[a] === a && bases[a] < 0), sub = local.map((a) => idx[a]), m = sub.length;
    const parent = Int32Array.from(reps, (r, a) => (r !== a ? r : bases[a] >= 0 ? bases[a] : -1));
    let total = new Float64Array(n), cost = 0;
    let subD: Float64Array | undefined; // the placement distance over sub; over idx too when no model was set aside
    if (m > 1) {
      const D = (subD = spectralDistance(stats, sub, w, lengthWeight));
      const cues = [spectrumVotes(stats, sub, w), kurtosisVotes(stats.kurtosis, stats.sumsq, N, stats.tensors, sub, w)];
      // The directed tree whose every child carries at least half of its parent's own update
      // (inheritance.ts): a violating edge is forbidden and the tree rebuilt, at most m times.
      // The entropy sign is chosen on the unconstrained trees' costs: a reversed tree's edges are
      // tested against other grandparents and can come out cheaper under the constraint (on a
      // seed-1 lm-chain zoo the constrained costs picked the reversed sign).
      const S2 = ftDistance(stats, sub, w).sumsq, forbidden = new Set<number>();
      let tree = spectralTree(m, D, cues, directionWeight, [entropySign]);
      cost = tree.cost;
      for (let round = 0; round < m; round++) {
        const bad = inheritanceViolations(S2, m, tree.parent).filter((e) => !forbidden.has(e));
        if (!bad.length) break;
        bad.forEach((e) => forbidden.add(e));
        tree = spectralTree(m, D, cues, directionWeight, [entropySign], forbidden);
      }
      // Then the choice between parent, grandparent and sibling by the placement distance alone
      // (placement.ts: the direction votes favour older parents).
      const repaired = settlePlacement(D, S2, m, repairByInheritance(S2, m, tree.parent).parent);
      repaired.forEach((p, k) => (parent[local[k]] = p < 0 ? -1 : local[p]));
      // A model below a base that is nearer to one of the base's adapters (by L2) was fine-tuned
      // from that adapter: inserting it on the edge shortens the edge.
      const sq = bases.some((b) => b >= 0) ? ftDistance(stats, idx, w).sumsq : undefined;
      if (sq) for (const x of local) {
        const q = parent[x];
        if (q < 0) continue;
        let best = -1;
        for (let a = 0; a < n; a++) if (bases[a] === q && sq[x * n + a] < sq[x * n + (best < 0 ? q : best)]) best = a;
        if (best >= 0) parent[x] = best;
      }
      total = new Float64Array(n).fill(-Infinity);
      local.forEach((a, k) => (total[a] = tree.total[k]));
    }
    return { parent, D: subD && m === n ? subD : spectralDistance(stats, idx, w, lengthWeight), rootTotals: total, cost };
  }
  const { D: dft } = ftDistance(stats, idx, w);
  if (method === 'paper') {
    const D = lora ? paperLoraDistance(stats, idx, w) : paperFtDistance(stats, idx, w);
    // Kurtosis pooled over the square 2-D tensors; K = 1 where the child would have the higher one.
    const k = new Float64Array(n);
    idx.forEach((m, a) => {
      let s = 0, c = 0;
      stats.tensors.forEach((t, tt) => {
        const v = stats.kurtosis[tt * N + m];
        if (t.rows === t.cols && t.rows > 1 && w[tt] && Number.isFinite(v)) { s += w[tt] * v; c += w[tt]; }
      });
      k[a] = c ? s / c : NaN;
    });
    let mean = 0;
    for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) if (a !== b) mean += D[a * n + b];
    mean /= n * (n - 1);
    const M = new Float64Array(n * n);
    for (let a = 0; a < n; a++)
      for (let b = 0; b < n; b++) M[a * n + b] = a === b ? Infinity : D[a * n + b] + lambda * mean * (k[b] > k[a] ? 1 : 0);
    return { parent: minDirectedSpanningTree(n, M).parent, D };
  }
  const D = lora ? loraDistance(stats, idx, w, dft) : dft;
  const score = centredGrowthScore(stats, idx, w);
  // Kurtosis votes for full fine-tuning only: a low-rank update B*A has heavy-tailed entries
  // (a product of factors), so LoRA can raise kurtosis and the paper's cue does not hold there.
  if (!lora) {
    const votes = kurtosisVotes(stats.kurtosis, stats.sumsq, N, stats.tensors, idx, w);
    for (let i = 0; i < n * n; i++) score[i] += votes[i];
  }
  const { parent, total } = orientTree(n, minSpanningTree(n, D), score);
  return { parent, D, rootTotals: total };
}

/**
 * A family that mixes adapters and full fine-tunes (adapters.ts), edge by edge:
 * - placement inside each adapter group: the rank tree (the LoRA distance; L2 where the group's
 *   ranks were not computed), whose root is the group's base;
 * - placement of the bases and the models in no group: the spectral tree over them, as in a full
 *   fine-tuning family. A model that this tree hangs from a base moves to the member of the base's
 *   group that is nearer to it by L2 and whose update it carries (the adoption test of placement.ts):
 *   a full fine-tune of an adapter, x = a + u, is |u| from a and |u + L_a| from the base;
 * - direction for the whole family at once: the tree is rooted where the summed score of its edges
 *   is largest (direction.ts). Adapter edges score norm growth, as in a LoRA family (kurtosis does
 *   not hold for a low-rank update, and the spectra of weights barely move); the other edges add the
 *   cues of a spectral family: the entropy vote with the input's sign and the kurtosis vote with
 *   the sign (of the two) that roots the family best. Pooling over the family matters: the
 *   spectral tree over a few bases has too few edges to orient itself (on lm-lora it rooted every
 *   family at a fine-tune), and a group oriented alone has only its own edges to tell its base from
 *   its adapters by.
 */
function adapterGroupTree(stats: TensorStats, idx: number[], w: Float64Array, lengthWeight: number, directionWeight: number, entropySign: number,
  groups: number[][]): Built {
  const n = idx.length, N = stats.ids.length;
  const placed = new Int32Array(n).fill(-1), groupOf = new Int32Array(n);
  const units: number[] = [];
  const D = spectralDistance(stats, idx, w, lengthWeight);
  // x hanging from q of another group: the member of q's group nearest x (L2) among q and those
  // whose update relative to q x carries (step 6's adoption test).
  const sq = ftDistance(stats, idx, w).sumsq;
  const insertInGroup = (x: number, q: number) => {
    let best = q;
    for (const a of groups[groupOf[q]!]!) {
      if (a === q || !(sq[x * n + a]! < sq[x * n + best]!)) continue;
      const carried = carriedShare(sq, n, x, a, q);
      if (carried >= MIN_INHERITED && carried <= 1 / MIN_INHERITED) best = a;
    }
    return best;
  };
  groups.forEach((g, k) => {
    g.forEach((a) => (groupOf[a] = k));
    if (g.length === 1) { units.push(g[0]!); return; }
    const sub = g.map((a) => idx[a]!), ranked = hasRanks(stats, sub, w);
    const tree = buildTree(stats, sub, w, ranked, 'mother', 0, ranked ? 'rank' : 'l2');
    tree.parent.forEach((p, k2) => (p < 0 ? units.push(g[k2]!) : (placed[g[k2]!] = g[p]!)));
  });
  let cost = 0;
  if (units.length > 1) {
    // Spectra between the units where they were computed for enough pairs to connect them (a large
    // family gets spectra for candidate pairs only, which may all lie inside the groups), else L2.
    const sub = units.map((a) => idx[a]!), u = units.length;
    const unitD = Float64Array.from({ length: u * u }, (_, k) => D[units[Math.floor(k / u)]! * n + units[k % u]!]!);
    const spectral = hasSpectrum(stats, sub) && finitelyConnected(unitD, u);
    const tree = buildTree(stats, sub, w, false, 'mother', 0, spectral ? 'spectrum' : 'l2', lengthWeight, directionWeight,
      spectral ? copyRepresentatives(stats, sub) : undefined, entropySign);
    cost = tree.cost ?? 0;
    tree.parent.forEach((p, k) => { if (p >= 0) placed[units[k]!] = insertInGroup(units[k]!, units[p]!); });
  }
  const edges: [number, number][] = [];
  placed.forEach((p, c) => { if (p >= 0) edges.push([p, c]); });
  const growth = centredGrowthScore(stats, idx, w);
  const kurtosis = kurtosisVotes(stats.kurtosis, stats.sumsq, N, stats.tensors, idx, w);
  const entropy = spectrumVotes(stats, idx, w);
  let best: ReturnType<typeof orientTree> | undefined;
  for (const kurtosisSign of [1, -1]) {
    const score = Float64Array.from(growth);
    for (const [a, b] of edges) if (groupOf[a] !== groupOf[b])
      for (const k of [a * n + b, b * n + a]) score[k] = growth[k]! + kurtosisSign * kurtosis[k]! + (entropySign || 1) * entropy[k]!;
    const oriented = orientTree(n, edges, score);
    if (!best || oriented.total[oriented.root]! > best.total[best.root]! + 1e-12) best = oriented;
  }
  const { parent, total } = best!;
  // Again after orienting: an edge between groups that the orientation turned now enters the other
  // group (a full fine-tune hung below a base that the spectral tree had hung from it).
  parent.forEach((p, x) => { if (p >= 0 && groupOf[p] !== groupOf[x]) parent[x] = insertInGroup(x, p); });
  return { parent, D, rootTotals: total, cost };
}

export function recoverGraph(stats: TensorStats, options: GraphOptions = {}): GraphResult {
  const { N, T } = checkStats(stats);
  const opt = resolveGraphOptions(options);
  const warnings: string[] = [];
  if (opt.distance === 'lora' && !stats.rank)
    throw new GraphError('E_GRAPH_OPTION', "distance 'lora' needs rank statistics (TensorStats.rank) but none were given");

  const fams = clusterFamilies(relatedness(stats), N, opt.families);
  const parent: (number | null)[] = new Array(N).fill(null);
  const family = new Array<number>(N).fill(0);
  // Per family: members, LoRA verdict, tensor weights, evidence kind, copies and adapter groups,
  // kept for the bootstrap replicates (the families and these choices stay fixed).
  type Plan = { idx: number[]; lora: boolean; base: Float64Array; evidence: Evidence; copies?: Int32Array; groups?: number[][] };
  const plans: Plan[] = [];
  const families: FamilyResult[] = [];
  const localDist: Float64Array[] = [], localTotals: (Float64Array | undefined)[] = [];
  const pending: (Plan & { f: number })[] = [];

  fams.forEach((idx, f) => {
    idx.forEach((m) => (family[m] = f));
    const usable = usableTensors(stats, idx);
    const base = new Float64Array(T);
    usable.forEach((u, t) => (base[t] = u ? 1 : 0));
    const dropped = usable.filter((u) => !u).length;
    if (dropped) warnings.push(`family ${f}: ${dropped} tensor(s) with non-finite statistics left out (${stats.tensors.filter((_, t) => !usable[t]).slice(0, 3).map((t) => t.name).join(', ')}${dropped > 3 ? ', ...' : ''})`);
    if (dropped === T) throw new GraphError('E_GRAPH_INPUT', `family ${f} (${idx.map((m) => stats.ids[m]).join(', ')}): no tensor has finite statistics`);
    let lora = opt.distance === 'lora', loraNote = '';
    if (opt.distance === 'auto' && idx.length > 1) {
      const v = detectLora(stats, idx, ftDistance(stats, idx, base).D);
      lora = v.lora;
      loraNote = `median rank fraction ${v.rankFraction.toFixed(3)} of full rank over ${v.pairs} nearest-neighbour pairs`;
    }
    // Adapter groups (adapters.ts) where rank statistics were computed: a family that is neither one
    // group (all adapters of one base: the rank distance) nor all single models gets each kind of
    // edge its own evidence.
    const spectral = hasSpectrum(stats, idx);
    const groups = opt.method === 'mother' && opt.distance === 'auto' && stats.rank && idx.length > 2 && spectral ? adapterGroups(stats, idx) : [];
    const mixed = groups.length > 1 && groups.some((g) => g.length > 1);
    const evidence: Evidence = mixed ? 'per-edge' : lora ? 'rank' : spectral ? 'spectrum' : 'l2';
    // A per-edge family is reported by its evidence (JSON, the text report's family header), not warned of.
    if (!mixed && lora && loraNote) warnings.push(`family ${f}: LoRA detected (${loraNote}); using the rank distance`);
    const copies = evidence === 'spectrum' && opt.method === 'mother' ? copyRepresentatives(stats, idx) : undefined;
    pending.push({ f, idx, lora, base, evidence, copies, ...(mixed ? { groups } : {}) });
  });

  // The entropy cue's sign, once for every spectral family (see spectrum.ts): the sign whose trees
  // cost least in total. Kept for the bootstrap replicates, like the families and evidence kinds.
  const spectralFamily = (e: Evidence) => (e === 'spectrum' || e === 'per-edge') && opt.method === 'mother';
  const signs = opt.entropySign ? [opt.entropySign] : [1, -1];
  const trees = pending.map((p) => spectralFamily(p.evidence)
    ? signs.map((sign) => buildTree(stats, p.idx, p.base, p.lora, opt.method, opt.lambda, p.evidence, opt.lengthWeight, opt.directionWeight, p.copies, sign, p.groups))
    : [buildTree(stats, p.idx, p.base, p.lora, opt.method, opt.lambda, p.evidence, opt.lengthWeight, opt.directionWeight, p.copies)]);
  const cheaperSign = (built: Built[][], spectral: boolean[]) => {
    const total = (k: number) => built.reduce((s, b, i) => s + (spectral[i] ? b[k]!.cost! : 0), 0);
    return signs.length > 1 && total(1) < total(0) - 1e-12 ? 1 : 0;
  };
  const pick = cheaperSign(trees, pending.map((p) => spectralFamily(p.evidence)));
  const entropySign = signs[pick] as 1 | -1;

  pending.forEach(({ f, idx, lora, base, evidence, copies, groups }, k) => {
    const built = spectralFamily(evidence) ? trees[k]![pick]! : trees[k]![0]!;
    const n = idx.length;
    const twins: string[] = [];
    for (let a = 0; a < n; a++) for (let b = a + 1; b < n; b++) if (!(built.D[a * n + b] > 0)) twins.push(`${stats.ids[idx[a]]} = ${stats.ids[idx[b]]}`);
    if (twins.length)
      warnings.push(`family ${f}: ${twins.length} pair(s) of models are identical on the compared tensors, so their order is arbitrary (${twins.slice(0, 3).join(', ')}${twins.length > 3 ? ', ...' : ''})`);
    let root = idx[0];
    built.parent.forEach((p, a) => {
      parent[idx[a]] = p < 0 ? null : idx[p];
      if (p < 0) root = idx[a];
    });
    plans.push({ idx, lora, base, evidence, copies, groups });
    localDist.push(built.D);
    localTotals.push(built.rootTotals);
    families.push({
      members: idx, root, distance: lora ? 'lora' : 'ft', evidence: opt.method === 'paper' ? (lora ? 'rank' : 'l2') : evidence,
      direction: kurtosisDirection(stats.kurtosis, stats.sumsq, N, stats.tensors, parent, idx),
    });
  });

  let confidence: number[], runnerUp: GraphResult['runnerUp'], entropySignSupport: number | null = null;
  if (opt.bootstrap > 0) {
    // Each replicate chooses the entropy sign again, as the estimate did (pooled over the spectral
    // families): where the two signs cost nearly the same (families that are mostly one chain,
    // which either sign orients), the choice flips between replicates and the confidences of the
    // edges it orients say so.
    const rand = mulberry32(opt.seed);
    const reps: (number | null)[][] = [];
    const spectral = plans.map((p) => spectralFamily(p.evidence));
    let sameSign = 0;
    for (let b = 0; b < opt.bootstrap; b++) {
      const w = resampleWeights(T, rand);
      const rep: (number | null)[] = new Array(N).fill(null);
      const built = plans.map(({ idx, lora, base, evidence, copies, groups }, f) => {
        const wf = w.map((x, t) => x * base[t]);
        if (!wf.some((x) => x > 0)) return null;
        const tree = (sign: number) => buildTree(stats, idx, wf, lora, opt.method, opt.lambda, evidence, opt.lengthWeight, opt.directionWeight, copies, sign, groups);
        return spectral[f] ? signs.map(tree) : [tree(0)];
      });
      const k = cheaperSign(built.map((b) => b ?? []), spectral.map((s, f) => s && built[f] !== null));
      if (k === pick) sameSign++;
      plans.forEach(({ idx }, f) => {
        const b = built[f];
        if (!b) { idx.forEach((m) => (rep[m] = parent[m])); return; }
        b[spectral[f] ? k : 0]!.parent.forEach((q, a) => (rep[idx[a]] = q < 0 ? null : idx[q]));
      });
      reps.push(rep);
    }
    ({ confidence, runnerUp } = tally(parent, reps));
    if (spectral.some(Boolean) && signs.length > 1) {
      entropySignSupport = sameSign / opt.bootstrap;
      // A family whose direction turns with the sign: the opposite sign's tree (full weights) moves
      // at least half of its models' parents, and the replicates do not settle on the estimate's sign.
      if (entropySignSupport < SIGN_SUPPORT_WARNING)
        pending.forEach(({ idx, evidence }, f) => {
          if (!spectralFamily(evidence)) return;
          const other = trees[f]![1 - pick]!.parent;
          const moved = idx.filter((m, a) => (other[a]! < 0 ? null : idx[other[a]!]) !== parent[m]).length;
          if (moved * 2 >= idx.length)
            warnings.push(`family of ${stats.ids[idx.find((m) => parent[m] === null) ?? idx[0]!]}: its direction turns with the sign of the entropy cue, which won only ${sameSign} of ${opt.bootstrap} bootstrap replicates; ` +
              'the family may be read backwards (a chain of continued pre-training stages can be); its confidences include this');
        });
    }
  } else {
    confidence = new Array(N).fill(1);
    runnerUp = new Array(N).fill(null);
    plans.forEach(({ idx }, f) => {
      const local = new Int32Array(idx.length).map((_, a) => (parent[idx[a]] === null ? -1 : idx.indexOf(parent[idx[a]]!)));
      const m = marginConfidence(idx.length, localDist[f], local, localTotals[f]);
      idx.forEach((g, a) => {
        confidence[g] = m.confidence[a];
        const alt = m.alt[a];
        runnerUp[g] = alt === null ? null : { parent: idx[alt], confidence: 1 - m.confidence[a] };
      });
    });
  }
  return { parent, confidence, family, families, runnerUp, warnings, entropySign: pending.some((p) => spectralFamily(p.evidence)) ? entropySign : null, entropySignSupport };
}
