/**
 * Glue between the pipeline and the typed relations (src/graph/relations.ts): the rank statistic
 * for merged-LoRA candidates, unmerged PEFT adapters (src/io/peft.ts) and card claims
 * (src/io/card.ts) checked against the weights.
 */
import { dirname } from 'node:path';
import { adapterCandidates, judgeClaim, placeAdapter, typedRelations, type TypedResult } from './graph/relations.js';
import type { GraphOptions, GraphResult, TensorStats } from './graph/types.js';
import { readCard, resolveModelName, type ModelCard } from './io/card.js';
import type { ArchitectureGroup } from './io/catalogue.js';
import type { Model } from './io/model.js';
import { alignmentWith, readAdapter, readTensorSlices } from './io/peft.js';
import { addRankStatistics, type StatsOptions } from './stats/compute.js';
import type { Family, RecoveredModel } from './types.js';

/** Cards of the models (folders; a GGUF file's folder), by model id. */
export async function readCards(models: Model[]): Promise<Map<string, ModelCard>> {
  const out = new Map<string, ModelCard>();
  await Promise.all(models.map(async (m) => {
    const dir = m.files.length && m.path === m.files[0] ? (m.format === 'gguf' ? dirname(m.path) : null) : m.path;
    if (dir === null) return;
    const card = await readCard(dir);
    if (card) out.set(m.id, card);
  }));
  return out;
}

function claimed(card: ModelCard | undefined): string[] {
  const b = card?.baseModel;
  return b === null || b === undefined ? [] : Array.isArray(b) ? b : [b];
}

/** Entries sampled per group for the sparse-merge test: enough that 1% is a count, and a few KiB per model. */
export const SAMPLE_ENTRIES = 16384;

/**
 * The same entries of every float model of the group (a block from the middle of each 2-D tensor,
 * SAMPLE_ENTRIES in all), for the sparse (TIES) merge test of src/graph/relations.ts: bit-exact
 * equalities need the values themselves, which no pairwise statistic keeps. Quantized (GGUF)
 * models get null: they are copies, never merges' parents here.
 */
export async function sampleEntries(group: ArchitectureGroup): Promise<{ sample: (Float64Array | null)[]; bytesRead: number }> {
  const mats = group.tensors.filter((t) => t.rows > 1 && t.cols > 1);
  if (!mats.length) return { sample: group.models.map(() => null), bytesRead: 0 };
  const per = Math.max(64, Math.ceil(SAMPLE_ENTRIES / mats.length));
  const blocks = mats.map((t) => { const count = Math.min(t.numel, per); return { name: t.name, count, start: Math.floor((t.numel - count) / 2) }; });
  let bytesRead = 0;
  const sample = await Promise.all(group.models.map(async (m) => {
    if (m.format !== 'safetensors') return null;
    const infos = blocks.map((b) => ({ info: m.tensors.get(b.name)!, start: b.start, count: b.count }));
    if (infos.some((x) => !x.info)) return null;
    const r = await readTensorSlices(infos);
    bytesRead += r.bytesRead;
    if (r.values.some((v) => v === null)) return null;
    const out = new Float64Array(blocks.reduce((a, b) => a + b.count, 0));
    let o = 0;
    for (const v of r.values) { out.set(v!, o); o += v!.length; }
    return out;
  }));
  return { sample, bytesRead };
}

/**
 * Typed relations of one group: the rank statistic first, for the pairs that look like merged
 * LoRA where it is not computed yet (a 2-model pass over the tensors that differ), then
 * typedRelations.
 */
export async function groupRelations(
  group: ArchitectureGroup, stats: TensorStats, graph: GraphResult, graphOptions: GraphOptions,
  statsOptions: StatsOptions, cards: Map<string, ModelCard>, allIds: string[],
): Promise<{ typed: TypedResult; bytesRead: number }> {
  const N = stats.ids.length;
  let bytesRead = 0;
  const pairs = adapterCandidates(stats).filter(([i, j]) => {
    if (!stats.rank) return true;
    return stats.tensors.some((tt, t) => tt.rows > 1 && tt.cols > 1 && Number.isNaN(stats.rank![(t * N + i) * N + j]!));
  });
  // Into a copy: the tree (and its re-run over the core) must see the statistics it saw.
  let rank = stats.rank;
  if (pairs.length) {
    const scratch: TensorStats = { ...stats, ...(stats.rank ? { rank: Float64Array.from(stats.rank) } : {}) };
    if (!stats.rank) delete scratch.rank;
    const extra = await addRankStatistics(group, scratch, pairs.map(([i, j]) => [i, j]), statsOptions);
    bytesRead += extra.bytesRead;
    rank = scratch.rank;
  }
  // Sampled entries for the sparse-merge test, where a family could hold one (base + 2 parents + it).
  const big = graph.families.some((f) => f.members.length >= 4);
  const sampled = big ? await sampleEntries(group) : null;
  if (sampled) bytesRead += sampled.bytesRead;
  const index = new Map(stats.ids.map((id, k) => [id, k]));
  const typed = typedRelations(stats, graph, {
    format: group.models.map((m) => m.format),
    // The stored dtype ('Q8_0' in a GGUF file), not the one the kernels compute in.
    dtypes: group.models.map((m, k) => group.tensors.map((t) => m.tensors.get(t.name)?.dtype ?? t.dtypes[k]!)),
    files: group.models.map((m) => m.files.length),
    ...(rank ? { rank } : {}),
    ...(sampled ? { sample: sampled.sample } : {}),
    claimedBases: group.models.map((m) => {
      const ids = claimed(cards.get(m.id)).map((b) => resolveModelName(b, allIds)).filter((x): x is string => x !== null);
      const ks = ids.map((id) => index.get(id)).filter((k): k is number => k !== undefined);
      return ks.length ? ks : null;
    }),
  }, graphOptions);
  return { typed, bytesRead };
}

/**
 * Places the unmerged adapters (a row each, in the family of their base) and judges every card's
 * claim; contradicted claims become warnings.
 */
export async function placeAdaptersAndClaims(
  rows: RecoveredModel[], families: Family[], adapters: Model[], models: Model[],
  cards: Map<string, ModelCard>, warnings: string[],
): Promise<void> {
  const allIds = [...rows.map((r) => r.id), ...adapters.map((a) => a.id)];
  const byId = new Map(models.map((m) => [m.id, m]));
  const roots = new Map(families.map((f) => [f.index, f.root]));
  for (const a of adapters) {
    const adapter = await readAdapter(a);
    const scores: { id: string; family: number; score: number }[] = [];
    for (const r of rows) {
      const m = byId.get(r.id);
      const p = r.parents?.[0];
      // Copies are never chosen as a base: their source stands for them.
      if (!m || (p && (p.relation === 'duplicate' || p.relation === 'cast' || p.relation === 'quantized'))) continue;
      const s = await alignmentWith(adapter, m);
      if (s !== null) scores.push({ id: r.id, family: r.family, score: s });
    }
    const declared = [adapter.declaredBase, ...claimed(cards.get(a.id))]
      .filter((x): x is string => x !== null).map((b) => resolveModelName(b, allIds)).filter((x): x is string => x !== null);
    const place = placeAdapter(scores, declared, roots);
    const row: RecoveredModel = {
      id: a.id, path: a.path, parent: null, confidence: 0, family: families.length, kurtosis: NaN,
      parents: [], declared: null, format: a.format,
    };
    if (place) {
      row.parent = place.parent;
      row.confidence = place.confidence;
      row.family = place.family;
      row.parents = [{ id: place.parent, relation: 'adapter', confidence: place.confidence }];
      const f = families[place.family]!;
      f.members.push(a.id);
      f.size = f.members.length;
    } else {
      warnings.push(`adapter ${a.id}: no model here has the tensors it adapts (${adapter.factors.slice(0, 2).map((f) => f.target).join(', ')}${adapter.factors.length > 2 ? ', ...' : ''}); reported as a root`);
      families.push({ index: families.length, root: a.id, size: 1, members: [a.id], distance: 'lora', evidence: 'rank', direction: 'mixed', architecture: 'peft-adapter' });
    }
    rows.push(row);
  }
  for (const r of rows) {
    const card = cards.get(r.id);
    const bases = claimed(card);
    if (!card || bases.length === 0) { r.declared = null; continue; }
    const resolved = bases.map((b) => resolveModelName(b, allIds));
    const j = judgeClaim(resolved, card.relation, r.parents ?? []);
    r.declared = { baseModel: card.baseModel!, relation: card.relation, agrees: j.agrees, note: j.note };
    if (j.agrees === false) warnings.push(`model card of ${r.id} claims ${bases.join(' + ')}${card.relation ? ` (${card.relation})` : ''}: ${j.note}`);
  }
}
