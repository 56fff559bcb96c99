/**
 * What the HTML report shows beyond the RecoverResult, read back from the model files at report
 * time (best effort: a file that has moved or cannot be read is reported as a note, never an error):
 *   - per model: dtype and format from the safetensors header(s), and the base model its card
 *     (README.md front matter `base_model`, `base_model_relation`) or adapter_config.json declares;
 *   - per family: the L2 distance matrix of its members (one more pass over the weights; only for
 *     families of at most `maxDistanceFamily` models, so a 1,000-model page stays small).
 */
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { openModel, type Model } from '../io/index.js';
import { distanceMatrices } from '../stats/api.js';
import type { Backend, RecoverResult } from '../types.js';
import type { FamilyDistances, ModelFacts } from './html.js';

export interface HtmlExtrasOptions {
  /** Compute per-family distance matrices (default true). */
  distances?: boolean;
  /** Largest family that gets a heatmap (default 150 models). */
  maxDistanceFamily?: number;
  /** Tensor selection and compute, as given to recover(). */
  include?: string[];
  exclude?: string[];
  squareOnly?: boolean;
  minElements?: number;
  backend?: Backend;
  threads?: number;
  signal?: AbortSignal;
}

export interface HtmlExtras {
  facts: Map<string, ModelFacts>;
  distances: Map<number, FamilyDistances>;
  notes: string[];
}

/** 'F32' or 'BF16+F32': dtypes by number of elements, most first. */
export function dtypeSummary(model: Model): string {
  const count = new Map<string, number>();
  for (const t of model.tensors.values()) count.set(t.dtype, (count.get(t.dtype) ?? 0) + t.numel);
  return [...count.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([d]) => d).join('+');
}

function unquote(s: string): string {
  const t = s.trim();
  if ((t.startsWith('"') && t.endsWith('"')) || (t.startsWith("'") && t.endsWith("'"))) return t.slice(1, -1);
  return t;
}

/**
 * `base_model` and `base_model_relation` of a model card's YAML front matter: a scalar, a flow list
 * `[a, b]` or a block list. Not a YAML parser; enough for what hub cards write.
 */
export function cardDeclaration(card: string): { baseModel: string[]; relation?: string } | null {
  const m = /^\uFEFF?---\r?\n([\s\S]*?)\r?\n(?:---|\.\.\.)\s*(?:\r?\n|$)/.exec(card);
  if (!m) return null;
  const lines = m[1]!.split(/\r?\n/);
  let baseModel: string[] | undefined;
  let relation: string | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const kv = /^(base_model|base_model_relation)\s*:\s*(.*)$/.exec(line);
    if (!kv) continue;
    const value = kv[2]!.replace(/\s+#.*$/, '').trim();
    if (kv[1] === 'base_model_relation') {
      if (value) relation = unquote(value);
      continue;
    }
    if (value.startsWith('[')) baseModel = value.replace(/^\[|\]$/g, '').split(',').map(unquote).filter(Boolean);
    else if (value) baseModel = [unquote(value)];
    else {
      baseModel = [];
      while (i + 1 < lines.length && /^\s*-\s+/.test(lines[i + 1]!)) baseModel.push(unquote(lines[++i]!.replace(/^\s*-\s+/, '')));
    }
  }
  return baseModel && baseModel.length ? { baseModel, ...(relation ? { relation } : {}) } : null;
}

/** The folder that is the model's own (so its README.md is its card), or undefined. */
async function ownFolder(path: string): Promise<string | undefined> {
  try {
    if ((await stat(path)).isDirectory()) return path;
  } catch {
    return undefined;
  }
  return /^(model|adapter_model)\.safetensors$/.test(basename(path)) ? dirname(path) : undefined;
}

async function readText(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
}

async function declaredBase(path: string): Promise<ModelFacts['declared'] | undefined> {
  const dir = await ownFolder(path);
  if (!dir) return undefined;
  const card = await readText(join(dir, 'README.md'));
  const fromCard = card === undefined ? null : cardDeclaration(card);
  if (fromCard) return { ...fromCard, source: 'model card' };
  const adapter = await readText(join(dir, 'adapter_config.json'));
  if (adapter !== undefined) {
    try {
      const base = (JSON.parse(adapter) as { base_model_name_or_path?: unknown }).base_model_name_or_path;
      if (typeof base === 'string' && base) return { baseModel: [base], relation: 'adapter', source: 'adapter_config.json' };
    } catch {
      /* not JSON: declares nothing readable */
    }
  }
  return null;
}

/** Reads headers, cards and (optionally) distances for the HTML report. Never throws for a model. */
export async function collectHtmlExtras(result: RecoverResult, options: HtmlExtrasOptions = {}): Promise<HtmlExtras> {
  const facts = new Map<string, ModelFacts>();
  const distances = new Map<number, FamilyDistances>();
  const notes: string[] = [];
  const unreadable: string[] = [];
  for (const m of result.models) {
    options.signal?.throwIfAborted();
    const f: ModelFacts = {};
    try {
      const model = await openModel(m.path, m.id);
      f.dtype = dtypeSummary(model);
      f.files = model.files.length;
      f.format = model.files.length > 1 ? 'safetensors (sharded)' : 'safetensors';
      model.dispose();
    } catch {
      unreadable.push(m.id);
    }
    const declared = await declaredBase(m.path);
    if (declared !== undefined) f.declared = declared;
    facts.set(m.id, f);
  }
  if (unreadable.length)
    notes.push(`dtype and format unknown for ${unreadable.length} model(s) whose files could not be read now: ${unreadable.slice(0, 5).join(', ')}${unreadable.length > 5 ? ', ...' : ''}`);

  if (options.distances ?? true) {
    const max = options.maxDistanceFamily ?? 150;
    const unread = new Set(unreadable);
    const byFamily = new Map<number, RecoverResult['models']>();
    for (const m of result.models) {
      const l = byFamily.get(m.family) ?? [];
      l.push(m);
      byFamily.set(m.family, l);
    }
    for (const [fi, members] of [...byFamily.entries()].sort((a, b) => a[0] - b[0])) {
      if (members.length < 2) continue;
      if (members.length > max) {
        notes.push(`family ${fi}: no heatmap (${members.length} models, more than ${max})`);
        continue;
      }
      if (members.some((m) => unread.has(m.id))) {
        notes.push(`family ${fi}: no heatmap (some model files could not be read)`);
        continue;
      }
      options.signal?.throwIfAborted();
      const opened: Model[] = [];
      try {
        for (const m of members) opened.push(await openModel(m.path, m.id));
        const t0 = performance.now();
        const d = await distanceMatrices(opened, {
          metrics: ['l2'], include: options.include, exclude: options.exclude, squareOnly: options.squareOnly,
          minElements: options.minElements, backend: options.backend, threads: options.threads, signal: options.signal,
        });
        distances.set(fi, { metric: 'L2', ids: d.ids, values: d.matrices.l2! });
        notes.push(`family ${fi}: heatmap from one more L2 pass over ${d.tensors.length} tensors (${((performance.now() - t0) / 1000).toFixed(2)} s)`);
      } catch (err) {
        if (options.signal?.aborted) throw err;
        notes.push(`family ${fi}: no heatmap (${(err as Error).message})`);
      } finally {
        for (const m of opened) m.dispose();
      }
    }
  }
  return { facts, distances, notes };
}
