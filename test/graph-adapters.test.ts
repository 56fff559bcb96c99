// Families that mix adapters and full fine-tunes: adapter pairs and groups (src/graph/adapters.ts)
// and the per-edge tree of recoverGraph (evidence 'per-edge').
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { adapterGroups, isAdapterPair, recoverGraph } from '../src/graph/index.js';
import { typedRelations } from '../src/graph/relations.js';
import { mulberry32 } from '../src/graph/confidence.js';
import type { TensorStats } from '../src/graph/types.js';
import { gaussian, SHAPES, statsOf } from './graph-synth.js';

// Hand-made weights: a base, its adapter (rank-2 update of every 2-D tensor, 1-D tensors frozen),
// a full fine-tune of the base (every tensor moves), an adapter of that fine-tune, and a partly
// frozen full fine-tune (1-D tensors kept, 2-D tensors moved at full rank).
function mixedModels(): Float64Array[][] {
  const { base, adapt, full } = makers(7);
  const ft = full(base);
  return [base, adapt(base), ft, adapt(ft), full(base, true)];
}

function makers(seed: number) {
  const rand = mulberry32(seed);
  const noise = (n: number, s: number) => Float64Array.from({ length: n }, () => s * gaussian(rand));
  const base = SHAPES.map(([r, c]) => noise(r * c, 1));
  const lowRank = (r: number, c: number, s: number) => {
    const out = new Float64Array(r * c);
    for (let k = 0; k < 2; k++) {
      const u = noise(r, 1), v = noise(c, 1);
      for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[i * c + j] += s * u[i]! * v[j]!;
    }
    return out;
  };
  const adapt = (m: Float64Array[], size = 0.1) => m.map((w, t) => {
    const [r, c] = SHAPES[t]!;
    if (r === 1) return Float64Array.from(w);
    const update = lowRank(r, c, size);
    return w.map((x, k) => x + update[k]!);
  });
  const full = (m: Float64Array[], keep1d = false) => m.map((w, t) => (keep1d && SHAPES[t]![0] === 1 ? Float64Array.from(w) : w.map((x) => x + 0.15 * gaussian(rand))));
  return { base, adapt, full };
}

describe('typed relations: which of two models sharing frozen tensors is the adapter', () => {
  // A root, its adapter with a large update, that adapter's own adapter with a small one, and a full
  // fine-tune of the root. The root's nearest frozen relative is its adapter, whose own nearest is
  // its adapter: not a mutual pair, so the rule before (tested on mutual pairs only) called the
  // root an adapter of its child.
  const { base, adapt, full } = makers(11);
  const a = adapt(base, 0.3);
  const models = [base, a, adapt(a, 0.05), full(base)];
  const stats = statsOf(models, true);
  const typed = typedRelations(stats, recoverGraph(stats, { bootstrap: 0 }), {}, { bootstrap: 0 });
  const edges = (i: number) => typed.parents[i]!.map((e) => [e.parent, e.relation]);

  it('the root is nobody\'s adapter; each adapter hangs from the model it grew from', () => {
    expect(edges(0)).toEqual([]);
    expect(edges(1)).toEqual([[0, 'adapter']]);
    expect(edges(2)).toEqual([[1, 'adapter']]);
    expect(edges(3)).toEqual([[0, 'finetune']]);
  });
});

describe('adapter pairs and groups', () => {
  const stats = statsOf(mixedModels(), true);

  it('an adapter pair shares a frozen tensor and moves its 2-D tensors at low rank', () => {
    expect(isAdapterPair(stats, 0, 1)).toBe(true);
    expect(isAdapterPair(stats, 2, 3)).toBe(true);
    // Nothing frozen between a base and its full fine-tune, nor between the two adapters' lines.
    expect(isAdapterPair(stats, 0, 2)).toBe(false);
    expect(isAdapterPair(stats, 1, 3)).toBe(false);
    // Frozen 1-D tensors but full-rank 2-D moves: a partly frozen full fine-tune, not an adapter.
    expect(isAdapterPair(stats, 0, 4)).toBe(false);
  });

  it('groups are the components of adapter pairs; a model in none is a group of its own', () => {
    expect(adapterGroups(stats, [0, 1, 2, 3, 4])).toEqual([[0, 1], [2, 3], [4]]);
    // Local indices of the family given.
    expect(adapterGroups(stats, [4, 3, 2])).toEqual([[0], [1, 2]]);
  });

  it('without rank or spectrum statistics nothing is called an adapter pair', () => {
    const bare = statsOf(mixedModels(), false);
    expect(bare.rank).toBeUndefined();
    expect(isAdapterPair(bare, 0, 1)).toBe(false);
    expect(adapterGroups(bare, [0, 1, 2, 3, 4])).toEqual([[0], [1], [2], [3], [4]]);
  });

  it('a tensor marked constant (a buffer shared across families) is not a frozen tensor', () => {
    const constant = new Uint8Array(stats.tensors.length);
    stats.tensors.forEach((t, k) => (constant[k] = t.rows === 1 ? 1 : 0));
    expect(isAdapterPair({ ...stats, constant }, 0, 1)).toBe(false);
  });
});

const loadStats = (file: string) => {
  const fixture = JSON.parse(gunzipSync(readFileSync(new URL(`./fixtures/${file}`, import.meta.url))).toString());
  const f64 = (b64: string) => { const b = Buffer.from(b64, 'base64'); return new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length)); };
  const stats = {
    ids: fixture.ids, tensors: fixture.tensors,
    ...Object.fromEntries(['kurtosis', 'mean', 'm2', 'sumsq', 'dot', 'rank', 'spectrum', 'weightSpectrum', 'spectrumNoise'].map((f) => [f, f64(fixture[f])])),
  } as TensorStats;
  return { stats, truth: fixture.truth as (string | null)[], method: fixture.method as string[] };
};

// TensorStats of family t0 of `bench/make_mixed_zoo.py OUT --seed 0` (digits ViT, recover()'s
// statistics with rank and spectra): t0 -> t0-c0 (LoRA) -> t0-c0-g0 (full), -g1, -g2 (LoRA);
// t0 -> t0-c1 (full) -> t0-c1-g0 (LoRA), -g1 (full), -g2 (LoRA); t0 -> t0-c2 (full) -> three LoRA.
const { stats: zoo, truth } = loadStats('mixed-vit-t0.stats.json.gz');
const parents = (r: ReturnType<typeof recoverGraph>) => r.parent.map((p) => (p === null ? null : zoo.ids[p]!));
const wrong = (r: ReturnType<typeof recoverGraph>) => parents(r).filter((p, i) => p !== truth[i]).length;

describe('a family mixing LoRA and full fine-tunes (ViT zoo, held out when the method was first measured)', () => {
  it('finds the adapter groups: each base with its LoRA children, the full fine-tunes of adapters alone', () => {
    const groups = adapterGroups(zoo, zoo.ids.map((_, i) => i)).map((g) => g.map((a) => zoo.ids[a]));
    expect(groups).toEqual([
      ['t0', 't0-c0', 't0-c0-g1', 't0-c0-g2'], ['t0-c0-g0'], ['t0-c1', 't0-c1-g0', 't0-c1-g2'], ['t0-c1-g1'], ['t0-c2', 't0-c2-g0', 't0-c2-g1', 't0-c2-g2'],
    ]);
  });

  it('per-edge evidence recovers the tree; one distance for the whole family does not', () => {
    const r = recoverGraph(zoo, { bootstrap: 50 });
    expect(r.families.map((f) => f.evidence)).toEqual(['per-edge']);
    expect(r.warnings).toEqual([]); // not 'LoRA detected ... using the rank distance' (its nearest pairs are mostly LoRA)
    expect(parents(r)).toEqual(truth);
    expect(Math.min(...r.confidence)).toBeGreaterThanOrEqual(0.5);
    // The rank distance for every edge (the previous design picked it for this family: most of its
    // nearest-neighbour pairs are LoRA) roots the family at a full fine-tune.
    const rankOnly = recoverGraph(zoo, { distance: 'lora', bootstrap: 0 });
    expect(rankOnly.families.map((f) => f.evidence)).toEqual(['rank']);
    expect(wrong(rankOnly)).toBeGreaterThanOrEqual(3);
  });

  it('the same tree without resampling, and with the margin confidences in [0, 1]', () => {
    const r = recoverGraph(zoo, { bootstrap: 0 });
    expect(parents(r)).toEqual(truth);
    for (const c of r.confidence) { expect(c).toBeGreaterThanOrEqual(0); expect(c).toBeLessThanOrEqual(1); }
  });
});

// 12 of the 21 models of family t0 of `bench/make_mixed_zoo.py OUT --seed 3 --trees 2 --children 4
// --grandchildren 4` (a zoo held out when per-edge evidence was first measured). Not a LoRA family
// by its nearest pairs (distance 'ft'), so the typed relations used to take its merged adapters
// out and hang them by the frozen-tensor rule, which took the root for an adapter of its own LoRA
// child and rooted the family at a full fine-tune.
describe('typed relations keep the per-edge tree of a family mixing adapters and full fine-tunes', () => {
  const { stats, truth: want, method } = loadStats('mixed-vit-big-t0.stats.json.gz');
  const graph = recoverGraph(stats, { bootstrap: 0 });
  const typed = typedRelations(stats, graph, {}, { bootstrap: 0 });
  const parentOf = (i: number) => typed.parents[i]!.map((e) => stats.ids[e.parent]!);

  it('the family is per-edge and not LoRA as a whole', () => {
    expect(graph.families.map((f) => [f.evidence, f.distance])).toEqual([['per-edge', 'ft']]);
  });

  it('the root stays the root; every LoRA child is an adapter of its true parent, every full one a fine-tune', () => {
    expect(parentOf(stats.ids.indexOf('t0'))).toEqual([]);
    let right = 0;
    stats.ids.forEach((id, i) => {
      if (want[i] === null) return;
      const edges = typed.parents[i]!;
      expect(edges).toHaveLength(1);
      expect(edges[0]!.relation).toBe(method[i] === 'lora' ? 'adapter' : 'finetune');
      if (stats.ids[edges[0]!.parent] === want[i]) right++;
    });
    // All 11, t0-c2-g0 included: a full fine-tune of an adapter, hung from the adapter's base by
    // the spectral tree and moved into the group after the family was oriented.
    expect(right).toBe(11);
    expect(parentOf(stats.ids.indexOf('t0-c2-g0'))).toEqual(['t0-c2']);
  });
});
