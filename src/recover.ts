/**
 * The pipeline, the public entry point: model folders in, heritage trees out.
 *   read weights (io/) -> statistics (stats/) -> graph (graph/) -> report (report/)
 * Models of different architectures are never compared: each architecture group gets its own
 * statistics job and its own families.
 *
 * Unreadable models: unless `strict`, a model whose header, shards or bytes cannot be read (at
 * discovery, at the header stage, or during the statistics pass) is left out and listed in
 * diagnostics.skippedModels; the others are recovered. A failure during the statistics pass
 * restarts the catalogue and statistics without that model, so no half-computed numbers are kept.
 */
import { performance } from 'node:perf_hooks';
import { abortReason, AbortError, InputError, isAbortError, MotherError } from './errors.js';
import { clusterFamilies, constantTensors, recoverGraph, relatedness } from './graph/index.js';
import type { GraphOptions, GraphResult } from './graph/types.js';
import { buildCatalogue, discoverModels, isModelReadError, openModels, type ArchitectureGroup, type Model } from './io/index.js';
import { addRankStatistics, addSpectrumStatistics, groupStatistics, looksAdapterTuned, pooledKurtosis } from './stats/compute.js';
import type { Diagnostics, Family, ProgressEvent, RecoveredModel, RecoverOptions, RecoverResult, SkippedModel } from './types.js';
import { groupRelations, placeAdaptersAndClaims, readCards } from './typed.js';
import type { TypedResult } from './graph/relations.js';
import { MAX_THREADS } from './util/limits.js';
import { recoverGroupScaled, SCALE_AUTO_MODELS } from './scale/recover.js';
import { sketchable } from './stats/sketch.js';
import { StatsCache } from './store/cache.js';
import { checkOptionKeys } from './util/options.js';
import { checkClusterOptions } from './cluster/options.js';
import type { Coordinator } from './cluster/coordinator.js';

const METHODS = ['mother', 'paper'] as const;
const DISTANCES = ['auto', 'ft', 'lora'] as const;
const BACKENDS = ['auto', 'cpu', 'cuda'] as const;

/** Every key recover() reads; anything else is a mistake (a typo, an option of another tool). */
export const RECOVER_OPTION_KEYS: readonly (keyof RecoverOptions)[] = [
  'backend', 'device', 'threads', 'signal', 'onProgress', 'method', 'distance', 'lambda', 'include', 'exclude',
  'squareOnly', 'minElements', 'families', 'bootstrap', 'seed', 'strict', 'scale', 'cache', 'cluster',
];
const SCALES = ['auto', 'exact', 'sketch'] as const;

function expected(what: string, name: string, got: unknown): InputError {
  return new InputError('E_INPUT_OPTION', `Expected ${what} for ${name} but received ${shown(got)}`);
}

function shown(v: unknown): string {
  if (typeof v === 'function') return 'a function';
  if (typeof v === 'bigint') return `${v}n`;
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

/** Validates the options object up front, with uniform messages (as sharp does). */
export function checkRecoverOptions(o: RecoverOptions): void {
  if (o === null || typeof o !== 'object' || Array.isArray(o)) throw expected('an object', 'options', o);
  checkOptionKeys(o, RECOVER_OPTION_KEYS, 'recover()');
  if (o.backend !== undefined && !BACKENDS.includes(o.backend)) throw expected('one of auto|cpu|cuda', 'backend', o.backend);
  if (o.device !== undefined && !(Number.isInteger(o.device) && o.device >= 0)) throw expected('an integer >= 0', 'device', o.device);
  if (o.method !== undefined && !METHODS.includes(o.method)) throw expected('one of mother|paper', 'method', o.method);
  if (o.distance !== undefined && !DISTANCES.includes(o.distance)) throw expected('one of auto|ft|lora', 'distance', o.distance);
  if (o.lambda !== undefined && !(typeof o.lambda === 'number' && Number.isFinite(o.lambda) && o.lambda >= 0))
    throw expected('a finite number >= 0', 'lambda', o.lambda);
  if (o.lambda !== undefined && o.method !== 'paper')
    throw new InputError('E_INPUT_OPTION', `lambda has an effect only with method 'paper' (the kurtosis penalty of the paper's recipe); method is '${o.method ?? 'mother'}'`);
  if (o.threads !== undefined && !(Number.isInteger(o.threads) && o.threads >= 1 && o.threads <= MAX_THREADS))
    throw expected(`an integer between 1 and ${MAX_THREADS}`, 'threads', o.threads);
  if (o.families !== undefined && !(Number.isInteger(o.families) && o.families >= 1))
    throw expected('an integer >= 1', 'families', o.families);
  if (o.bootstrap !== undefined && !(Number.isInteger(o.bootstrap) && o.bootstrap >= 0))
    throw expected('an integer >= 0', 'bootstrap', o.bootstrap);
  if (o.seed !== undefined && !Number.isSafeInteger(o.seed)) throw expected('an integer', 'seed', o.seed);
  if (o.scale !== undefined && !SCALES.includes(o.scale)) throw expected('one of auto|exact|sketch', 'scale', o.scale);
  if (o.scale === 'sketch' && o.families !== undefined)
    throw new InputError('E_INPUT_OPTION', "families cannot be forced with scale 'sketch' (the scale path infers families from the sketches)");
  if (o.cache !== undefined && !(typeof o.cache === 'string' && o.cache.length > 0)) throw expected('a file path', 'cache', o.cache);
  if (o.cache !== undefined && o.scale === 'exact')
    throw new InputError('E_INPUT_OPTION', "cache works on the scale path; it cannot be used with scale 'exact'");
  if (o.cluster !== undefined) checkClusterOptions(o.cluster);
  if (o.cluster !== undefined && o.families !== undefined)
    throw new InputError('E_INPUT_OPTION', 'families cannot be forced with cluster (the scale path infers families from the sketches)');
  if (o.cluster !== undefined && o.scale === 'exact')
    throw new InputError('E_INPUT_OPTION', "cluster runs the scale path; it cannot be used with scale 'exact'");
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw expected('a function', 'onProgress', o.onProgress);
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) throw expected('an AbortSignal', 'signal', o.signal);
  for (const k of ['squareOnly', 'strict'] as const)
    if (o[k] !== undefined && typeof o[k] !== 'boolean') throw expected('a boolean', k, o[k]);
  if (o.minElements !== undefined && !(Number.isInteger(o.minElements) && o.minElements >= 0))
    throw expected('an integer >= 0', 'minElements', o.minElements);
  for (const k of ['include', 'exclude'] as const) {
    const v = o[k];
    if (v !== undefined && !(Array.isArray(v) && v.every((p) => typeof p === 'string'))) throw expected('an array of strings', k, v);
  }
}

/** One path or an array of paths. */
function inputList(inputs: unknown): string[] {
  if (typeof inputs === 'string') return [inputs];
  if (Array.isArray(inputs)) return inputs as string[];
  throw new InputError('E_INPUT_PATH', `Expected a path or an array of paths for inputs but received ${shown(inputs)}`);
}

function skippedEntry(path: string, err: MotherError): SkippedModel {
  return { path, code: err.code, message: err.message };
}

/**
 * Recovers the family trees of the models found in `inputs` (a path or an array of paths: model
 * files, model folders, folders of models). Rejects with `options.signal.reason` when aborted.
 */
export async function recover(inputs: string | string[], options: RecoverOptions = {}): Promise<RecoverResult> {
  checkRecoverOptions(options);
  const list = inputList(inputs);
  const { signal } = options;
  try {
    return await run(list, options);
  } catch (err) {
    // Whatever noticed the abort (a native worker, a check between stages), the caller gets the reason.
    if (signal?.aborted && (isAbortError(err) || err === signal.reason)) throw abortReason(signal);
    throw err;
  }
}

async function run(inputs: string[], options: RecoverOptions): Promise<RecoverResult> {
  const t0 = performance.now();
  const { signal } = options;
  const strict = options.strict === true;
  const progress = (e: ProgressEvent) => options.onProgress?.(e);
  const checkAbort = () => { if (signal?.aborted) throw new AbortError(); };
  checkAbort();

  const skippedModels: SkippedModel[] = [];
  const skippedErrors: MotherError[] = [];
  const skip = (path: string, err: MotherError) => { skippedModels.push(skippedEntry(path, err)); skippedErrors.push(err); };
  progress({ stage: 'discover', done: 0, total: inputs.length });
  const notes: string[] = []; // which revision of a cached model was read (src/io/discover.ts)
  const refs = await discoverModels(inputs, { ...(strict ? {} : { onSkip: skip }), onNote: (n) => notes.push(n) });
  checkAbort();
  // The cache serves unchanged files' headers too (src/store/cache.ts), then the scale path.
  const store = options.cache !== undefined ? new StatsCache(options.cache) : undefined;
  let models: Model[] = [];
  try {
    progress({ stage: 'headers', done: 0, total: refs.length });
    models = await openModels(refs, 32, strict ? undefined : (ref, err) => skip(ref.path, err), store ? (f) => store.readHeader(f) : undefined);
    store?.commitHeaders();
    const tHeaders = performance.now();
    progress({ stage: 'headers', done: refs.length, total: refs.length });

    for (;;) {
      checkAbort();
      // Nothing left: one unreadable model fails with its own error, several with the list.
      if (models.length === 0 && skippedErrors.length === 1) throw skippedErrors[0]!;
      if (models.length === 0)
        throw new InputError('E_INPUT_NO_MODELS', `no model could be read: ${skippedModels.length} skipped (${skippedModels.slice(0, 3).map((m) => `${m.path}: ${m.code}`).join('; ')}${skippedModels.length > 3 ? '; ...' : ''})`);
      try {
        const result = await pipeline(models, options, tHeaders - t0, skippedModels, store);
        result.diagnostics.seconds.total = (performance.now() - t0) / 1000;
        result.diagnostics.warnings.unshift(...notes);
        progress({ stage: 'done', done: 1, total: 1 });
        return result;
      } catch (err) {
        // A model whose bytes fail during the statistics pass (changed, truncated, unreadable):
        // leave it out and start the statistics again without it.
        const file = err instanceof MotherError ? err.file : undefined;
        const culprit = !strict && isModelReadError(err) && file !== undefined
          ? models.find((m) => m.files.includes(file) || m.path === file) : undefined;
        if (!culprit) throw err;
        skip(culprit.path, err as MotherError);
        culprit.dispose();
        models = models.filter((m) => m !== culprit);
      }
    }
  } finally {
    for (const m of models) m.dispose();
    store?.close();
  }
}

/** The tree as typed edges when no relations were decided (the scale path): fine-tunes, LoRA adapters. */
function untyped(graph: GraphResult): TypedResult {
  return {
    parent: graph.parent, confidence: graph.confidence, warnings: [],
    parents: graph.parent.map((p, k) => (p === null ? [] : [{ parent: p, relation: graph.families[graph.family[k]!]!.distance === 'lora' ? 'adapter' as const : 'finetune' as const, confidence: graph.confidence[k]! }])),
  };
}

/** Catalogue, statistics and graph over the opened models. */
async function pipeline(allModels: Model[], options: RecoverOptions, headerSeconds: number, skippedModels: SkippedModel[], store: StatsCache | undefined): Promise<RecoverResult> {
  const { signal } = options;
  const progress = (e: ProgressEvent) => options.onProgress?.(e);
  const checkAbort = () => { if (signal?.aborted) throw new AbortError(); };
  // Unmerged PEFT adapters are placed after the trees (src/typed.ts), unless nothing else is here.
  const others = allModels.filter((m) => m.format !== 'peft-adapter');
  const models = others.length ? others : allModels;
  const adapters = others.length ? allModels.filter((m) => m.format === 'peft-adapter') : [];
  const cards = await readCards(allModels);
  const allIds = allModels.map((m) => m.id);
  const groups: ArchitectureGroup[] = buildCatalogue(models, {
    include: options.include, exclude: options.exclude,
    squareOnly: options.squareOnly, minElements: options.minElements,
  });
  if (options.families !== undefined && groups.length > 1)
    throw new InputError('E_INPUT_OPTION', `families=${options.families} was given but the models form ${groups.length} architecture groups; run each architecture separately to force a family count`);
  if (options.families !== undefined && groups.length === 1 && options.families > groups[0]!.models.length)
    throw new InputError('E_INPUT_OPTION', `families=${options.families} was given but there are only ${groups[0]!.models.length} models`);

  // Statistics progress counts elements (tensor elements x models), not bytes.
  const totalElements = groups.reduce((s, g) => s + g.tensors.reduce((a, t) => a + t.numel, 0) * g.models.length, 0);
  let doneBefore = 0;
  const diagnostics: Diagnostics = {
    backend: 'cpu', device: '', threads: 0, tensorsUsed: 0, tensorsSkipped: [], bytesRead: 0,
    seconds: { total: 0, headers: headerSeconds / 1000, statistics: 0, graph: 0 }, warnings: [],
    skippedModels, backendFallback: null,
  };
  const rows: RecoveredModel[] = [];
  const families: Family[] = [];
  const graphOptions: GraphOptions = {
    method: options.method, distance: options.distance, lambda: options.lambda, families: options.families,
    bootstrap: options.bootstrap, seed: options.seed,
  };

  let scale: RecoverResult['scale'];
  // The cluster (src/cluster): BullMQ loads only when asked for.
  let remote: Coordinator | undefined;
  try {
  if (options.cluster) remote = await (await import('./cluster/coordinator.js')).Coordinator.open(options.cluster, { signal, progress, method: options.method, distance: options.distance });
  for (const [g, group] of groups.entries()) {
    diagnostics.tensorsSkipped.push(...group.skipped);
    diagnostics.tensorsUsed += group.tensors.length;
    if (group.tensors.length === 0)
      throw new InputError('E_INPUT_NO_TENSORS', `no tensor can be compared across the ${group.models.length} model(s) of architecture group ${g + 1} (${group.models.slice(0, 3).map((m) => m.id).join(', ')}${group.models.length > 3 ? ', ...' : ''}); ${group.skipped.length} tensor(s) were skipped — see the include/exclude options`);
    const groupElements = group.tensors.reduce((a, t) => a + t.numel, 0) * group.models.length;
    // The scale path (src/scale/recover.ts): sketches, candidate pairs, exact statistics per family.
    const scaled = options.scale === 'sketch' || (options.scale !== 'exact' && options.families === undefined && (store !== undefined || remote !== undefined || group.models.length > SCALE_AUTO_MODELS));
    if (scaled && sketchable(group)) {
      const s = await recoverGroupScaled(group, options, graphOptions, progress, store, remote);
      doneBefore += groupElements;
      Object.assign(diagnostics, { backend: s.backend, device: s.device, threads: s.threads });
      scale = s.scale;
      diagnostics.bytesRead += s.bytesRead;
      diagnostics.seconds.statistics += s.statisticsSeconds;
      diagnostics.seconds.graph += s.graphSeconds;
      if (s.fallbackReason) diagnostics.backendFallback = s.fallbackReason;
      addGroup(group, g, s.graph, s.kurtosis);
      continue;
    }
    const ts = performance.now();
    const gs = await groupStatistics(group, {
      backend: options.backend, device: options.device, threads: options.threads, signal,
      onProgress: (done, total) =>
        progress({ stage: 'statistics', done: doneBefore + (total ? Math.round((done / total) * groupElements) : 0), total: totalElements }),
    });
    doneBefore += groupElements;
    diagnostics.seconds.statistics += (performance.now() - ts) / 1000;
    diagnostics.backend = gs.backend;
    diagnostics.device = gs.device;
    diagnostics.threads = gs.threads;
    diagnostics.bytesRead += gs.bytesRead;
    // Only 'auto' falls back: information for whoever looks, not a warning (nobody asked for CUDA).
    if (gs.fallbackReason) diagnostics.backendFallback = gs.fallbackReason;
    // Files that could not be memory-mapped were read with pread (slower, same numbers): say so.
    if (gs.ioNote && !diagnostics.warnings.includes(gs.ioNote)) diagnostics.warnings.push(gs.ioNote);
    checkAbort();

    // A per-family pass of extra statistics (rank, spectrum), counted with the statistics stage.
    const extraPass = async (pass: typeof addRankStatistics, wanted: number[][]) => {
      const t = performance.now();
      const extra = await pass(group, gs.stats, wanted, { backend: options.backend, device: options.device, threads: options.threads, signal });
      diagnostics.bytesRead += extra.bytesRead;
      diagnostics.seconds.statistics += (performance.now() - t) / 1000;
      checkAbort();
    };

    // Rank statistics (LoRA distance) where they can matter: every family when distance 'lora' is
    // asked for, else the families whose models look adapter-tuned (see looksAdapterTuned).
    // A single-model group still gets the (empty) rank table: recoverGraph requires it for 'lora'.
    const fams = clusterFamilies(relatedness(gs.stats), group.models.length, options.families);
    gs.stats.constant = constantTensors(gs.stats, fams);
    if (options.distance === 'lora' || (options.distance !== 'ft' && group.models.length > 1)) {
      const wanted = options.distance === 'lora' ? fams : fams.filter((f) => looksAdapterTuned(gs.stats, f));
      if (wanted.length) await extraPass(addRankStatistics, wanted);
    }

    // Spectrum statistics (placement and direction of full fine-tuning trees, src/graph/spectrum.ts)
    // for every family: the graph uses them where a family is not LoRA (partly frozen full
    // fine-tunes look adapter-tuned too). The paper's recipe does not use them.
    const spectral = options.method === 'paper' || options.distance === 'lora' ? [] : fams.filter((f) => f.length > 1);
    if (spectral.length) await extraPass(addSpectrumStatistics, spectral);

    const tg = performance.now();
    progress({ stage: 'graph', done: g, total: groups.length });
    const graph = recoverGraph(gs.stats, graphOptions);
    const { typed, bytesRead: typedBytes } = await groupRelations(group, gs.stats, graph, graphOptions, {
      backend: options.backend, device: options.device, threads: options.threads, signal,
    }, cards, allIds);
    diagnostics.bytesRead += typedBytes;
    diagnostics.seconds.graph += (performance.now() - tg) / 1000;

    addGroup(group, g, graph, gs.stats.kurtosis, typed);
  }
  function addGroup(group: ArchitectureGroup, g: number, graph: GraphResult, kurtosis: Float64Array, typed: TypedResult = untyped(graph)): void {
    diagnostics.warnings.push(...[...graph.warnings, ...typed.warnings].map((w) => (groups.length > 1 ? `architecture group ${g + 1}: ${w}` : w)));
    const familyBase = families.length;
    const ids = group.models.map((m) => m.id);
    for (const [fi, f] of graph.families.entries()) {
      // The typed tree may root a family elsewhere (a copy's source, a merge's parent).
      const root = f.members.find((k) => typed.parent[k] === null && graph.family[k] === fi) ?? f.root;
      families.push({
        index: families.length,
        root: ids[root]!,
        size: f.members.length,
        members: f.members.map((k) => ids[k]!),
        distance: f.distance,
        evidence: f.evidence,
        direction: f.direction,
        architecture: group.architecture,
      });
    }
    group.models.forEach((m, k) => {
      const p = typed.parent[k];
      const ru = graph.runnerUp[k];
      rows.push({
        id: m.id,
        path: m.path,
        parent: p === null || p === undefined ? null : ids[p]!,
        confidence: typed.confidence[k]!,
        family: familyBase + graph.family[k]!,
        kurtosis: pooledKurtosis(kurtosis, group.tensors, k),
        ...(ru && (typed.parent[k] ?? null) === (graph.parent[k] ?? null) ? { runnerUp: { parent: ru.parent === null ? null : ids[ru.parent]!, confidence: ru.confidence } } : {}),
        parents: typed.parents[k]!.map((e) => ({ id: ids[e.parent]!, relation: e.relation, ...(e.weight !== undefined ? { weight: e.weight } : {}), confidence: e.confidence })),
        declared: null,
        format: m.format,
      });
    });
  }
  await placeAdaptersAndClaims(rows, families, adapters, allModels, cards, diagnostics.warnings);
  } finally {
    await remote?.close();
  }
  const cluster = remote?.diagnostics();
  // Failed tries that a retry made good: the run is complete, but say where and why.
  for (const f of cluster?.failedAttempts ?? [])
    diagnostics.warnings.push(`cluster: unit ${f.unit} failed a try on worker ${f.worker ?? '?'} (retried): ${f.message}${f.file && !f.message.includes(f.file) ? ` (file ${f.file})` : ''}${f.code ? ` [${f.code}]` : ''}`);
  for (const m of skippedModels) diagnostics.warnings.push(`skipped model ${m.path}: ${m.message} [${m.code}]`);
  // Rows in discovery order, whatever the grouping.
  const order = new Map(allModels.map((m, i) => [m.id, i]));
  rows.sort((a, b) => order.get(a.id)! - order.get(b.id)!);
  checkAbort(); // an abort during the last group's graph stage still wins
  return { models: rows, families, diagnostics, ...(scale ? { scale } : {}), ...(cluster ? { cluster } : {}) };
}
