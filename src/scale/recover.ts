/**
 * The scale path of one architecture group (recover.ts calls it above SCALE_AUTO_MODELS models,
 * or when options.scale is 'sketch'). Memory O(N * (S + k * T)) instead of O(T * N^2):
 *   1. sketch (stats/sketch.ts): moments and a fixed-position sample per model, one pass;
 *   2. candidates: k nearest per model by the sketch, widened where the margin is thin;
 *   3. sketch families: components of candidate pairs whose estimated relatedness exceeds
 *      SKETCH_RELATED (below the exact RELATED = 0.5, so a sketch family is a union of exact ones);
 *   4. a sketch family of at most EXACT_FAMILY_MAX models runs the exact pipeline of recover.ts
 *      (all pairs, rank and spectrum passes, recoverGraph) on its members alone: the same parents
 *      as the exact path over the whole group, whenever the sketch families are unions of exact
 *      families (the bootstrap draws one tensor resampling per replicate for all families, so a
 *      per-family call with the same seed sees the same draws);
 *   5. a larger one gets exact per-tensor L2 statistics for its candidate pairs only (native jobs
 *      over each model and its candidates) and a sparse L2 tree (graph/sparse.ts).
 */
import { performance } from 'node:perf_hooks';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { selectionKey, type StatsCache } from '../store/cache.js';
import { AbortError } from '../errors.js';
import { clusterFamilies, constantTensors, recoverGraph, relatedness } from '../graph/index.js';
import { GRAPH_REVISION, resolveGraphOptions } from '../graph/recover.js';
import { sparseRecover, type SparseFamily } from '../graph/sparse.js';
import type { FamilyResult, GraphOptions, GraphResult, TensorStats } from '../graph/types.js';
import type { ArchitectureGroup } from '../io/catalogue.js';
import { jobTensors } from '../io/catalogue.js';
import { addRankStatistics, addSpectrumStatistics, groupStatistics, looksAdapterTuned, runJob, type StatsOptions } from '../stats/compute.js';
import { sketchCandidates, sketchGroup, sketchRelatedness, type SketchBatch } from '../stats/sketch.js';
import type { ProgressEvent, RecoverOptions } from '../types.js';

/** Groups larger than this take the scale path under scale 'auto'. */
export const SCALE_AUTO_MODELS = 512;
/** Sketch families up to this size run the exact pipeline (T * n^2 doubles per statistic). */
export const EXACT_FAMILY_MAX = 384;
/** Estimated relatedness that joins two candidates into one sketch family. */
export const SKETCH_RELATED = 0.25;

export interface ScaleDiagnostics {
  mode: 'sketch';
  models: number;
  /** Candidates per model asked for, and the most any model got after widening. */
  k: number;
  candidatePairs: number;
  /** Models whose candidate list was widened for a thin margin; those still thin at the cap. */
  widened: number;
  thin: number;
  /** Sketch families solved exactly (all pairs) and sparsely (candidate pairs). */
  exactFamilies: number;
  sparseFamilies: number;
  /** Share of models whose recovered parent is among the sketch candidates (either way round). */
  candidateRecall: number | null;
  seconds: { sketch: number; candidates: number; exact: number; sparse: number };
  /**
   * With a cache: entries found and computed (sketches per model, results per exact family), and
   * per file whether its header and content key were taken from the cache (stat unchanged).
   */
  cache?: {
    hits: { sketch: number; family: number }; misses: { sketch: number; family: number };
    headers: { trusted: number; parsed: number }; files: { trusted: number; hashed: number };
  };
}

export interface ScaledGroup {
  graph: GraphResult;
  /** T * N kurtosis (for pooledKurtosis). */
  kurtosis: Float64Array;
  bytesRead: number;
  statisticsSeconds: number;
  graphSeconds: number;
  backend: 'cpu' | 'cuda';
  device: string;
  threads: number;
  fallbackReason?: string;
  scale: ScaleDiagnostics;
}

/** The statistics of one exact family (its models alone), before its graph: what exactFamily reads. */
export interface FamilyStatistics {
  stats: TensorStats;
  bytesRead: number;
  backend: 'cpu' | 'cuda';
  device: string;
  threads: number;
  fallbackReason?: string;
}

/**
 * Work units computed elsewhere (src/cluster: BullMQ workers). Each returns exactly what the local
 * code computes for the same unit; the graph decisions stay here.
 */
export interface ScaleRemote {
  /** The sketch of a batch of models (indices into group). */
  sketchBatch(group: ArchitectureGroup, batch: number[]): Promise<SketchBatch>;
  /** familyGraph over a subgroup: the family's statistics and its graph, computed elsewhere. */
  familyGraph(sub: ArchitectureGroup, graphOptions: GraphOptions): Promise<FamilyGraph>;
  /** Per-tensor L2 sums (T x m x m) of each job's models (indices into group; first model vs the rest). */
  pairBlocks(group: ArchitectureGroup, jobs: number[][]): Promise<Float64Array[]>;
}

/**
 * The statistics of an exact family: all pairs and moments, then rank statistics where the family
 * looks adapter-tuned and spectra (which passes to run follows from the numbers, as in recover.ts).
 */
export async function familyStatistics(sub: ArchitectureGroup, options: Pick<RecoverOptions, 'method' | 'distance'>, statsOptions: StatsOptions): Promise<FamilyStatistics> {
  const gs = await groupStatistics(sub, statsOptions);
  let bytesRead = gs.bytesRead;
  const n = sub.models.length;
  const local = clusterFamilies(relatedness(gs.stats), n, undefined);
  gs.stats.constant = constantTensors(gs.stats, local);
  if (options.distance === 'lora' || (options.distance !== 'ft' && n > 1)) {
    const wanted = options.distance === 'lora' ? local : local.filter((f) => looksAdapterTuned(gs.stats, f));
    if (wanted.length) bytesRead += (await addRankStatistics(sub, gs.stats, wanted, statsOptions)).bytesRead;
  }
  const spectral = options.method === 'paper' || options.distance === 'lora' ? [] : local.filter((f) => f.length > 1);
  if (spectral.length) bytesRead += (await addSpectrumStatistics(sub, gs.stats, spectral, statsOptions)).bytesRead;
  return { stats: gs.stats, bytesRead, backend: gs.backend, device: gs.device, threads: gs.threads, ...(gs.fallbackReason ? { fallbackReason: gs.fallbackReason } : {}) };
}

/** An exact family's graph and what its statistics cost (no matrices: they stay where computed). */
export interface FamilyGraph extends Omit<FamilyStatistics, 'stats'> {
  graph: GraphResult;
  seconds: { statistics: number; graph: number };
}

/**
 * The statistics of an exact family, then its graph (recoverGraph on the family alone, as the
 * local path does): what a cluster's family unit computes, so only the graph travels.
 */
export async function familyGraph(sub: ArchitectureGroup, options: Pick<RecoverOptions, 'method' | 'distance'>, statsOptions: StatsOptions, graphOptions: GraphOptions): Promise<FamilyGraph> {
  const t1 = performance.now();
  const { stats, ...meta } = await familyStatistics(sub, options, statsOptions);
  const t2 = performance.now();
  const graph = recoverGraph(stats, { ...graphOptions, families: undefined });
  return { ...meta, graph, seconds: { statistics: (t2 - t1) / 1000, graph: (performance.now() - t2) / 1000 } };
}

/**
 * Cache key of an exact family's graph result: its members' content keys, the resolved graph
 * options (a default given explicitly, bootstrap 50, finds the same entry) and the graph method's
 * revision (a result of an older method is never reused).
 */
export function familyCacheKey(memberKeys: string[], graphOptions: GraphOptions, revision: number = GRAPH_REVISION): string {
  const decided = JSON.stringify({ revision, ...resolveGraphOptions({ ...graphOptions, families: undefined }) });
  return createHash('sha256').update(JSON.stringify(memberKeys)).update(decided).digest('hex');
}

export function subgroup(group: ArchitectureGroup, members: number[]): ArchitectureGroup {
  return {
    architecture: group.architecture, skipped: [],
    models: members.map((k) => group.models[k]!),
    tensors: group.tensors.map((t) => ({ ...t, dtypes: members.map((k) => t.dtypes[k]!) })),
  };
}

export async function recoverGroupScaled(group: ArchitectureGroup, options: RecoverOptions, graphOptions: GraphOptions,
  progress: (e: ProgressEvent) => void, store?: StatsCache, remote?: ScaleRemote): Promise<ScaledGroup> {
  const N = group.models.length, T = group.tensors.length;
  const { signal } = options;
  const checkAbort = () => { if (signal?.aborted) throw new AbortError(); };
  const statsOptions: StatsOptions = { backend: options.backend, device: options.device, threads: options.threads, signal };
  const seconds = { sketch: 0, candidates: 0, exact: 0, sparse: 0 };
  let statisticsSeconds = 0, graphSeconds = 0;

  let t = performance.now();
  const keys = store?.modelKeys(group);
  const cache = store && keys ? { store, keys } : undefined;
  const sk = await sketchGroup(group, { ...statsOptions, ...(cache ? { cache } : {}), ...(remote ? { computeBatch: (b: number[]) => remote.sketchBatch(group, b) } : {}), onModels: (done, total) => progress({ stage: 'statistics', done, total, message: 'sketch' }) });
  let bytesRead = sk.bytesRead;
  seconds.sketch = (performance.now() - t) / 1000;
  checkAbort();

  t = performance.now();
  const K = 8;
  const cand = candidates(sk, K, keys, store, group, signal, (done, total) => progress({ stage: 'statistics', done, total, message: 'candidates' }));
  const dump = process.env.MOTHER_SCALE_CANDIDATES;
  if (dump) {
    // A debugging and benchmarking hook: candidate lists of every sketched group, appended.
    const prev = existsSync(dump) ? JSON.parse(readFileSync(dump, 'utf8')) as { ids: string[]; lists: number[][] } : { ids: [], lists: [] };
    const base = prev.ids.length;
    writeFileSync(dump, JSON.stringify({ ids: [...prev.ids, ...group.models.map((m) => m.id)], lists: [...prev.lists, ...cand.lists.map((l) => Array.from(l, (j) => j + base))] }));
  }
  // Candidate pairs (a < b) and the sketch families.
  const pairSet = new Set<number>();
  for (let i = 0; i < N; i++) for (const j of cand.lists[i]!) pairSet.add(Math.min(i, j) * N + Math.max(i, j));
  const root = Int32Array.from({ length: N }, (_, i) => i);
  const find = (x: number): number => { while (root[x] !== x) { root[x] = root[root[x]!]!; x = root[x]!; } return x; };
  for (const key of pairSet) {
    const i = Math.floor(key / N), j = key % N;
    if (find(i) !== find(j) && sketchRelatedness(sk, i, j) > SKETCH_RELATED) root[find(i)] = find(j);
  }
  const byRoot = new Map<number, number[]>();
  for (let i = 0; i < N; i++) { const r = find(i); if (!byRoot.has(r)) byRoot.set(r, []); byRoot.get(r)!.push(i); }
  const sketchFamilies = [...byRoot.values()].sort((x, y) => x[0]! - y[0]!);
  seconds.candidates = (performance.now() - t) / 1000;
  statisticsSeconds += seconds.sketch + seconds.candidates;
  checkAbort();

  const parent: (number | null)[] = new Array(N).fill(null);
  const confidence: number[] = new Array(N).fill(1);
  const runnerUp: GraphResult['runnerUp'] = new Array(N).fill(null);
  const famOf = new Array<number>(N).fill(0);
  const fams: FamilyResult[] = [];
  const warnings: string[] = [];
  let backend: 'cpu' | 'cuda' = 'cpu', device = '', threads = 0, fallbackReason: string | undefined;
  let exactFamilies = 0, sparseFamilies = 0, done = 0;

  // Exact families: their cache keys and hits first, so that a cluster gets every missing family at once.
  const familyKeys = sketchFamilies.map((members) => members.length <= EXACT_FAMILY_MAX && keys
    ? familyCacheKey(members.map((m) => keys[m]!), graphOptions) : undefined);
  const cachedFamilies = familyKeys.map((k) => (k ? store!.family<GraphResult>(k) : undefined));
  const prefetched = new Map<number[], Promise<FamilyGraph>>();
  if (remote) sketchFamilies.forEach((members, f) => {
    if (members.length > EXACT_FAMILY_MAX || cachedFamilies[f]) return;
    const p = remote.familyGraph(subgroup(group, members), graphOptions);
    p.catch(() => {}); // awaited in order below; an earlier failure must not leave this one unhandled
    prefetched.set(members, p);
  });

  const exactFamily = async (members: number[]): Promise<GraphResult> => {
    const fg = await (prefetched.get(members) ?? familyGraph(subgroup(group, members), options, statsOptions, graphOptions));
    backend = fg.backend; device = fg.device; threads = fg.threads;
    if (fg.fallbackReason) fallbackReason = fg.fallbackReason;
    bytesRead += fg.bytesRead;
    statisticsSeconds += fg.seconds.statistics;
    graphSeconds += fg.seconds.graph;
    return fg.graph;
  };

  for (const [f, members] of sketchFamilies.entries()) {
    checkAbort();
    progress({ stage: 'graph', done, total: N, message: 'families' });
    done += members.length;
    if (members.length <= EXACT_FAMILY_MAX) {
      exactFamilies++;
      const t1 = performance.now();
      const familyKey = familyKeys[f], cached = cachedFamilies[f];
      const g = cached ?? await exactFamily(members);
      if (familyKey && !cached) store!.putFamilyResult(familyKey, g);
      seconds.exact += (performance.now() - t1) / 1000;
      warnings.push(...g.warnings.map((w) => `models ${group.models[members[0]!]!.id}..: ${w}`));
      const base = fams.length;
      members.forEach((m, a) => {
        const p = g.parent[a];
        parent[m] = p === null || p === undefined ? null : members[p]!;
        confidence[m] = g.confidence[a]!;
        const ru = g.runnerUp[a];
        runnerUp[m] = ru ? { parent: ru.parent === null ? null : members[ru.parent]!, confidence: ru.confidence } : null;
        famOf[m] = base + g.family[a]!;
      });
      for (const f of g.families) fams.push({ ...f, members: f.members.map((a) => members[a]!), root: members[f.root]! });
    } else {
      sparseFamilies++;
      const t1 = performance.now();
      const r = await sparseFamily(group, members, cand.lists, sk, statsOptions, graphOptions, remote);
      bytesRead += r.bytesRead;
      const t2 = performance.now();
      seconds.sparse += (t2 - t1) / 1000;
      statisticsSeconds += r.statisticsSeconds;
      graphSeconds += (t2 - t1) / 1000 - r.statisticsSeconds;
      for (const f of r.families) {
        const base = fams.length;
        fams.push(f);
        for (const m of f.members) famOf[m] = base;
      }
      members.forEach((m) => {
        parent[m] = r.parent[m] ?? null;
        confidence[m] = r.confidence[m]!;
        runnerUp[m] = r.runnerUp[m] ?? null;
      });
      warnings.push(`models ${group.models[members[0]!]!.id}..: a family of ${members.length} models (more than ${EXACT_FAMILY_MAX}) was placed by L2 over ${r.pairs} candidate pairs (sparse tree, no spectra)`);
    }
  }
  // Families in order of their first member, as recoverGraph orders them.
  const order = fams.map((f, i) => ({ f, i, first: Math.min(...f.members) })).sort((x, y) => x.first - y.first);
  const renumber = new Map(order.map((o, k) => [o.i, k]));
  const families = order.map((o) => ({ ...o.f, members: o.f.members.slice().sort((a, b) => a - b) }));
  const family = famOf.map((f) => renumber.get(f)!);

  let hit = 0, withParent = 0;
  const inList = (a: number, b: number) => cand.lists[a]!.includes(b);
  parent.forEach((p, c) => { if (p === null) return; withParent++; if (inList(c, p) || inList(p, c)) hit++; });
  if (cand.thin.length)
    warnings.push(`scale: ${cand.thin.length} model(s) have a thin candidate margin even after widening to ${2 * K} candidates (e.g. ${cand.thin.slice(0, 3).map((i) => group.models[i]!.id).join(', ')}); their parent may lie outside the candidates`);
  const scale: ScaleDiagnostics = {
    mode: 'sketch', models: N, k: K, candidatePairs: pairSet.size, widened: cand.widened, thin: cand.thin.length,
    exactFamilies, sparseFamilies, candidateRecall: withParent ? hit / withParent : null, seconds,
    ...(store ? { cache: { hits: { ...store.hits }, misses: { ...store.misses }, headers: { ...store.headers }, files: { ...store.files } } } : {}),
  };
  return {
    graph: { parent, confidence, family, families, runnerUp, warnings },
    kurtosis: sk.kurtosis, bytesRead, statisticsSeconds, graphSeconds, backend, device, threads,
    ...(fallbackReason ? { fallbackReason } : {}), scale,
  };
}

/**
 * The candidate search; with a cache, the last search over this tensor selection is updated
 * instead (only the models added since are compared with all: sketch.ts, CandidateState), and the
 * result stored for the next run. The lists are the full search's either way.
 */
function candidates(sk: Awaited<ReturnType<typeof sketchGroup>>, k: number, keys: string[] | undefined, store: StatsCache | undefined,
  group: ArchitectureGroup, signal: AbortSignal | undefined, onProgress: (done: number, total: number) => void) {
  const stateKey = store && keys ? `${selectionKey(group)}:k${k}` : undefined;
  const previous = stateKey ? store!.candidateState(stateKey) : undefined;
  const cand = sketchCandidates(sk, { k, signal, onProgress, ...(keys ? { keys } : {}), ...(previous ? { previous } : {}) });
  if (stateKey) store!.putCandidateState(stateKey, cand.state);
  return cand;
}

/**
 * Per-tensor L2 sums (T x m x m) of one sparse-path job: a model (job[0]) and its candidates
 * (indices into group), on one thread. The local path and a cluster's pairs unit both call this,
 * so their numbers are the same.
 */
export async function pairSums(group: ArchitectureGroup, job: readonly number[], statsOptions: StatsOptions): Promise<{ sums: Float64Array; bytesRead: number }> {
  const r = await runJob({
    tensors: jobTensors(group, job), models: job.length,
    kurtosis: false, sumsq: true, sumabs: false, maxabs: false, dot: false, rank: false, perTensor: true,
  }, { ...statsOptions, threads: 1, onProgress: undefined });
  return { sums: r.sumsq!, bytesRead: r.bytesRead };
}

/** Exact L2 statistics on the candidate pairs of one big sketch family, then the sparse tree. */
async function sparseFamily(group: ArchitectureGroup, members: number[], lists: Int32Array[], sk: { mean: Float64Array; m2: Float64Array; kurtosis: Float64Array; N: number },
  statsOptions: StatsOptions, graphOptions: GraphOptions, remote?: ScaleRemote) {
  const n = members.length, T = group.tensors.length, N = sk.N;
  const local = new Map(members.map((m, a) => [m, a]));
  // Jobs: each member with its candidates of higher local index (every pair exactly once).
  const nbr: Set<number>[] = Array.from({ length: n }, () => new Set());
  for (const m of members) for (const j of lists[m]!) {
    const b = local.get(j);
    if (b === undefined) continue;
    const a = local.get(m)!;
    nbr[Math.min(a, b)]!.add(Math.max(a, b));
  }
  const E = nbr.reduce((s, x) => s + x.size, 0);
  const ea = new Int32Array(E), eb = new Int32Array(E), sumsq = new Float64Array(E * T);
  let e = 0, bytesRead = 0;
  const t0 = performance.now();
  // One native job per member with candidates (a cluster gets them all at once, in blocks).
  const owners: number[] = [], jobs: number[][] = [];
  for (let a = 0; a < n; a++) if (nbr[a]!.size) { owners.push(a); jobs.push([a, ...[...nbr[a]!].sort((x, y) => x - y)].map((x) => members[x]!)); }
  const remoteSums = remote ? await remote.pairBlocks(group, jobs) : undefined;
  for (const [q0, a] of owners.entries()) {
    if (statsOptions.signal?.aborted) throw new AbortError();
    const job = jobs[q0]!, others = job.slice(1).map((m) => local.get(m)!);
    let sums = remoteSums?.[q0];
    if (!sums) {
      const r = await pairSums(group, job, statsOptions);
      bytesRead += r.bytesRead;
      sums = r.sums;
    }
    const m = job.length;
    others.forEach((b, q) => {
      ea[e] = a; eb[e] = b;
      for (let t = 0; t < T; t++) sumsq[e * T + t] = sums[(t * m + 0) * m + q + 1]!;
      e++;
    });
  }
  const statisticsSeconds = (performance.now() - t0) / 1000;
  const pick = (X: Float64Array) => { const out = new Float64Array(T * n); for (let t = 0; t < T; t++) for (let a = 0; a < n; a++) out[t * n + a] = X[t * N + members[a]!]!; return out; };
  const fam: SparseFamily = {
    n, a: ea, b: eb, sumsq, mean: pick(sk.mean), m2: pick(sk.m2), kurtosis: pick(sk.kurtosis),
    tensors: group.tensors.map((t) => ({ rows: t.rows, cols: t.cols, numel: t.numel })),
  };
  const res = sparseRecover(fam, graphOptions.bootstrap ?? 50, graphOptions.seed ?? 0);
  const parent = new Map<number, number | null>(), confidence = new Map<number, number>(), runnerUp = new Map<number, { parent: number | null; confidence: number } | null>();
  // Components of the forest are the families.
  const comp = new Int32Array(n).fill(-1);
  const rootOf = (a: number): number => { let x = a; while (res.parent[x]! >= 0) x = res.parent[x]!; return x; };
  const groups = new Map<number, number[]>();
  for (let a = 0; a < n; a++) {
    const m = members[a]!, p = res.parent[a]!;
    parent.set(m, p < 0 ? null : members[p]!);
    confidence.set(m, res.confidence[a]!);
    const ru = res.runnerUp[a];
    runnerUp.set(m, ru ? { parent: ru.parent === null ? null : members[ru.parent]!, confidence: ru.confidence } : null);
    const r = rootOf(a);
    comp[a] = r;
    if (!groups.has(r)) groups.set(r, []);
    groups.get(r)!.push(m);
  }
  const families: FamilyResult[] = [...groups.entries()].map(([r, ms]) => ({
    members: ms, root: members[r]!, distance: 'ft', evidence: 'l2', direction: 'mixed',
  }));
  return {
    parent: Object.fromEntries(parent) as Record<number, number | null>,
    confidence: Object.fromEntries(confidence) as Record<number, number>,
    runnerUp: Object.fromEntries(runnerUp) as Record<number, { parent: number | null; confidence: number } | null>,
    families, bytesRead, statisticsSeconds, pairs: E,
  };
}
