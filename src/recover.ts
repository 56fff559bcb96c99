/**
 * The pipeline, the public entry point: model folders in, heritage trees out.
 *   read weights (io/) -> statistics (stats/) -> graph (graph/) -> report (report/)
 * Models of different architectures are never compared: each architecture group gets its own
 * statistics job and its own families.
 */
import { performance } from 'node:perf_hooks';
import { AbortError, InputError } from './errors.js';
import { clusterFamilies, recoverGraph, relatedness } from './graph/index.js';
import type { GraphOptions } from './graph/types.js';
import { buildCatalogue, discoverModels, openModels, type ArchitectureGroup, type Model } from './io/index.js';
import { addRankStatistics, addSpectrumStatistics, groupStatistics, looksAdapterTuned, pooledKurtosis } from './stats/compute.js';
import type { Diagnostics, Family, ProgressEvent, RecoveredModel, RecoverOptions, RecoverResult } from './types.js';

const METHODS = ['mother', 'paper'] as const;
const DISTANCES = ['auto', 'ft', 'lora'] as const;

function expected(what: string, name: string, got: unknown): InputError {
  return new InputError('E_INPUT_OPTION', `Expected ${what} for ${name} but received ${JSON.stringify(got)}`);
}

/** Validates the options object up front, with uniform messages (as sharp does). */
export function checkRecoverOptions(o: RecoverOptions): void {
  if (o === null || typeof o !== 'object') throw expected('an object', 'options', o);
  if (o.method !== undefined && !METHODS.includes(o.method)) throw expected('one of mother|paper', 'method', o.method);
  if (o.distance !== undefined && !DISTANCES.includes(o.distance)) throw expected('one of auto|ft|lora', 'distance', o.distance);
  if (o.lambda !== undefined && !(typeof o.lambda === 'number' && Number.isFinite(o.lambda) && o.lambda >= 0))
    throw expected('a finite number >= 0', 'lambda', o.lambda);
  if (o.threads !== undefined && !(Number.isInteger(o.threads) && o.threads >= 1 && o.threads <= 1024))
    throw expected('an integer between 1 and 1024', 'threads', o.threads);
  if (o.families !== undefined && !(Number.isInteger(o.families) && o.families >= 1))
    throw expected('an integer >= 1', 'families', o.families);
  if (o.bootstrap !== undefined && !(Number.isInteger(o.bootstrap) && o.bootstrap >= 0))
    throw expected('an integer >= 0', 'bootstrap', o.bootstrap);
  if (o.seed !== undefined && !Number.isInteger(o.seed)) throw expected('an integer', 'seed', o.seed);
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw expected('a function', 'onProgress', o.onProgress);
  for (const k of ['include', 'exclude'] as const) {
    const v = o[k];
    if (v !== undefined && !(Array.isArray(v) && v.every((p) => typeof p === 'string'))) throw expected('an array of strings', k, v);
  }
}

export async function recover(inputs: string[], options: RecoverOptions = {}): Promise<RecoverResult> {
  checkRecoverOptions(options);
  const t0 = performance.now();
  const { signal } = options;
  const progress = (e: ProgressEvent) => options.onProgress?.(e);
  const checkAbort = () => { if (signal?.aborted) throw new AbortError(); };
  checkAbort();

  progress({ stage: 'discover', done: 0, total: inputs.length });
  const refs = await discoverModels(inputs);
  checkAbort();
  progress({ stage: 'headers', done: 0, total: refs.length });
  const models: Model[] = await openModels(refs);
  const tHeaders = performance.now();
  progress({ stage: 'headers', done: refs.length, total: refs.length });

  try {
    checkAbort();
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
      seconds: { total: 0, headers: (tHeaders - t0) / 1000, statistics: 0, graph: 0 }, warnings: [],
    };
    const rows: RecoveredModel[] = [];
    const families: Family[] = [];
    const graphOptions: GraphOptions = {
      method: options.method, distance: options.distance, lambda: options.lambda, families: options.families,
      bootstrap: options.bootstrap, seed: options.seed,
    };

    for (const [g, group] of groups.entries()) {
      diagnostics.tensorsSkipped.push(...group.skipped);
      diagnostics.tensorsUsed += group.tensors.length;
      if (group.tensors.length === 0)
        throw new InputError('E_INPUT_NO_TENSORS', `no tensor can be compared across the ${group.models.length} model(s) of architecture group ${g + 1} (${group.models.slice(0, 3).map((m) => m.id).join(', ')}${group.models.length > 3 ? ', ...' : ''}); ${group.skipped.length} tensor(s) were skipped — see the include/exclude options`);
      const groupElements = group.tensors.reduce((a, t) => a + t.numel, 0) * group.models.length;
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
      // Only 'auto' (the default) falls back, so a reason here is always worth a warning.
      if (gs.fallbackReason && !diagnostics.warnings.includes(gs.fallbackReason))
        diagnostics.warnings.push(gs.fallbackReason);
      checkAbort();

      // Rank statistics (LoRA distance) where they can matter: every family when distance 'lora' is
      // asked for, else the families whose models look adapter-tuned (see looksAdapterTuned).
      // A single-model group still gets the (empty) rank table: recoverGraph requires it for 'lora'.
      const fams = group.models.length > 1 ? clusterFamilies(relatedness(gs.stats), group.models.length, options.families) : [];
      if (options.distance === 'lora' || (options.distance !== 'ft' && group.models.length > 1)) {
        const wanted = options.distance === 'lora' ? fams : fams.filter((f) => looksAdapterTuned(gs.stats, f));
        if (wanted.length) {
          const tr = performance.now();
          const extra = await addRankStatistics(group, gs.stats, wanted, {
            backend: options.backend, device: options.device, threads: options.threads, signal,
          });
          diagnostics.bytesRead += extra.bytesRead;
          diagnostics.seconds.statistics += (performance.now() - tr) / 1000;
          checkAbort();
        }
      }

      // Spectrum statistics (placement and direction of full fine-tuning trees, src/graph/spectrum.ts)
      // for the families that do not look adapter-tuned; the paper's recipe does not use them.
      const spectral = options.method === 'paper' || options.distance === 'lora' ? [] : fams.filter((f) => f.length > 1 && !looksAdapterTuned(gs.stats, f));
      if (spectral.length) {
        const tsp = performance.now();
        const extra = await addSpectrumStatistics(group, gs.stats, spectral, {
          backend: options.backend, device: options.device, threads: options.threads, signal,
        });
        diagnostics.bytesRead += extra.bytesRead;
        diagnostics.seconds.statistics += (performance.now() - tsp) / 1000;
        checkAbort();
      }

      const tg = performance.now();
      progress({ stage: 'graph', done: g, total: groups.length });
      const graph = recoverGraph(gs.stats, graphOptions);
      diagnostics.seconds.graph += (performance.now() - tg) / 1000;
      diagnostics.warnings.push(...graph.warnings.map((w) => (groups.length > 1 ? `architecture group ${g + 1}: ${w}` : w)));

      const familyBase = families.length;
      const ids = gs.stats.ids;
      for (const f of graph.families) {
        families.push({
          index: families.length,
          root: ids[f.root]!,
          members: f.members.map((k) => ids[k]!),
          distance: f.distance,
          evidence: f.evidence,
          direction: f.direction,
          architecture: group.architecture,
        });
      }
      group.models.forEach((m, k) => {
        const p = graph.parent[k];
        const ru = graph.runnerUp[k];
        rows.push({
          id: m.id,
          path: m.path,
          parent: p === null || p === undefined ? null : ids[p]!,
          confidence: graph.confidence[k]!,
          family: familyBase + graph.family[k]!,
          kurtosis: pooledKurtosis(gs.stats.kurtosis, gs.stats.tensors, k),
          ...(ru ? { runnerUp: { parent: ru.parent === null ? null : ids[ru.parent]!, confidence: ru.confidence } } : {}),
        });
      });
    }
    // Rows in discovery order, whatever the grouping.
    const order = new Map(models.map((m, i) => [m.id, i]));
    rows.sort((a, b) => order.get(a.id)! - order.get(b.id)!);
    checkAbort(); // an abort during the last group's graph stage still wins
    diagnostics.seconds.total = (performance.now() - t0) / 1000;
    progress({ stage: 'done', done: 1, total: 1 });
    return { models: rows, families, diagnostics };
  } finally {
    for (const m of models) m.dispose();
  }
}
