// Typed relations (src/graph/relations.ts) on synthetic zoos with exact statistics: copies,
// casts, quantized copies (int8 blocks, as GGUF Q8_0), merges, merged LoRA; and the pure helpers
// for adapters and card claims.
import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../src/graph/confidence.js';
import { recoverGraph } from '../src/graph/recover.js';
import { castRatio, judgeClaim, placeAdapter, quantNoiseCeiling, settleSpectralTies, sparseMerge, spectralPreference, typedRelations } from '../src/graph/relations.js';
import type { TensorStats } from '../src/graph/types.js';
import { gaussian, SHAPES, statsOf, synthWeights } from './graph-synth.js';

function bf16(x: number): number {
  const f = new Float32Array([x]), u = new Uint32Array(f.buffer);
  const b = u[0]!;
  u[0] = ((b + 0x7fff + ((b >> 16) & 1)) >>> 16) << 16;
  return f[0]!;
}

/** GGUF Q8_0-style: blocks of 32, scale max|x| / 127, values rounded to int8. */
function q8(w: Float64Array): Float64Array {
  const out = new Float64Array(w.length);
  for (let b = 0; b < w.length; b += 32) {
    let amax = 0;
    for (let i = b; i < Math.min(w.length, b + 32); i++) amax = Math.max(amax, Math.abs(w[i]!));
    const d = amax / 127;
    for (let i = b; i < Math.min(w.length, b + 32); i++) out[i] = d ? Math.round(w[i]! / d) * d : 0;
  }
  return out;
}

// 0 root, 1-3 fine-tunes of 0, 4 fine-tune of 1.
const TREE = [null, 0, 0, 0, 1];
const F32 = SHAPES.map(() => 'F32');

function zoo(extra: (base: Float64Array[][]) => { weights: Float64Array[]; dtype?: string; format?: string; files?: number }[]) {
  const base = synthWeights({ parents: TREE, seed: 7 });
  const more = extra(base);
  const models = [...base, ...more.map((m) => m.weights)];
  const stats = statsOf(models, false);
  const graph = recoverGraph(stats, { bootstrap: 0 });
  const facts = {
    format: [...base.map(() => 'safetensors'), ...more.map((m) => m.format ?? 'safetensors')],
    dtypes: [...base.map(() => F32), ...more.map((m) => SHAPES.map(() => m.dtype ?? 'F32'))],
    files: [...base.map(() => 1), ...more.map((m) => m.files ?? 1)],
  };
  return { stats, graph, typed: typedRelations(stats, graph, facts, { bootstrap: 0 }) };
}

const rel = (t: ReturnType<typeof typedRelations>, k: number) => t.parents[k]!.map((e) => [e.parent, e.relation]);

describe('typed relations', () => {
  it('a zoo of plain fine-tunes keeps recoverGraph tree exactly, every edge a fine-tune', () => {
    const { graph, typed } = zoo(() => []);
    expect(typed.parent).toEqual(graph.parent);
    expect(typed.confidence).toEqual(graph.confidence);
    for (let k = 0; k < TREE.length; k++)
      expect(typed.parents[k]).toEqual(graph.parent[k] === null ? [] : [expect.objectContaining({ parent: graph.parent[k], relation: 'finetune' })]);
  });

  it('finds a re-sharded duplicate, a BF16 cast and a Q8_0 copy, each with its source', () => {
    const { typed } = zoo((b) => [
      { weights: b[1]!.map((w) => Float64Array.from(w)), files: 2 }, // 5: duplicate of 1
      { weights: b[2]!.map((w) => w.map(bf16)), dtype: 'BF16' }, // 6: cast of 2
      { weights: b[4]!.map(q8), dtype: 'Q8_0', format: 'gguf' }, // 7: quantized copy of 4
    ]);
    expect(rel(typed, 5)).toEqual([[1, 'duplicate']]);
    expect(rel(typed, 6)).toEqual([[2, 'cast']]);
    expect(rel(typed, 7)).toEqual([[4, 'quantized']]);
    // the originals keep their own parents
    expect(typed.parent.slice(0, 5)).toEqual(TREE);
  });

  it('the original of two duplicates is the one in fewer files, whichever comes first', () => {
    const { typed } = zoo((b) => [{ weights: b[3]!.map((w) => Float64Array.from(w)), files: 1 }]);
    // model 5 (1 file) vs model 3 (1 file): the first one found stays the original
    expect(rel(typed, 5)).toEqual([[3, 'duplicate']]);
    expect(typed.parent[3]).toBe(0);
  });

  it('a cast is at rounding level only: a BF16 fine-tune is not a cast', () => {
    const base = synthWeights({ parents: [null, 0], seed: 3 });
    const stats = statsOf([base[0]!, base[1]!.map((w) => w.map(bf16))], false);
    expect(castRatio(stats, [F32, SHAPES.map(() => 'BF16')], 1, 0)).toBeNull();
    const copy = statsOf([base[0]!, base[0]!.map((w) => w.map(bf16))], false);
    expect(castRatio(copy, [F32, SHAPES.map(() => 'BF16')], 1, 0)).toBeLessThanOrEqual(1);
    // and a F32 model is never a cast of its BF16 copy
    expect(castRatio(copy, [F32, SHAPES.map(() => 'BF16')], 0, 1)).toBeNull();
  });

  it('a linear merge of two siblings gets both parents with their weights, the larger primary', () => {
    const { typed } = zoo((b) => [{ weights: b[1]!.map((w, t) => w.map((x, i) => 0.3 * x + 0.7 * b[2]![t]![i]!)) }]);
    expect(typed.parents[5]!.map((e) => [e.parent, e.relation, e.weight])).toEqual([[2, 'merge', 0.7], [1, 'merge', 0.3]]);
    expect(typed.parent[5]).toBe(2);
    expect(typed.parent.slice(0, 5)).toEqual(TREE);
  });

  it('a merged LoRA (low-rank update of one tensor, the rest frozen) is an adapter of its base', () => {
    const rand = mulberry32(11);
    const { typed } = zoo((b) => [{
      weights: b[3]!.map((w, t) => {
        if (t !== 0) return Float64Array.from(w);
        const [r, c] = SHAPES[0]!;
        const u = Array.from({ length: r }, () => gaussian(rand)), v = Array.from({ length: c }, () => gaussian(rand));
        return w.map((x, i) => x + 0.05 * u[Math.floor(i / c)]! * v[i % c]!);
      }),
    }]);
    expect(rel(typed, 5)).toEqual([[3, 'adapter']]);
    expect(typed.parent.slice(0, 5)).toEqual(TREE);
  });

  it('quantiser noise ceilings grow with coarser types', () => {
    expect(quantNoiseCeiling('Q8_0')).toBeLessThan(quantNoiseCeiling('Q6_K'));
    expect(quantNoiseCeiling('Q6_K')).toBeLessThan(quantNoiseCeiling('Q4_0'));
    expect(quantNoiseCeiling('IQ2_XS')).toBeGreaterThan(quantNoiseCeiling('Q4_K'));
  });
});

/**
 * TIES as its paper defines it, per tensor: task vectors k - base, each trimmed to its `density`
 * largest magnitudes, the sign elected by the weighted sum, then the weighted mean of the kept
 * values that agree with it; base + that, stored as float32.
 */
function ties(base: Float64Array[], parents: Float64Array[][], weights: number[], density: number): Float64Array[] {
  return base.map((b, t) => {
    const tau = parents.map((p) => {
      const v = p[t]!.map((x, i) => x - b[i]!);
      const keep = Math.round(density * v.length);
      const cut = [...v].map(Math.abs).sort((x, y) => y - x)[Math.max(0, keep - 1)]!;
      return v.map((x) => (Math.abs(x) >= cut ? x : 0));
    });
    return b.map((x, i) => {
      const s = Math.sign(tau.reduce((a, v, k) => a + weights[k]! * v[i]!, 0));
      let num = 0, den = 0;
      tau.forEach((v, k) => { if (v[i] !== 0 && Math.sign(v[i]!) === s) { num += weights[k]! * v[i]!; den += weights[k]!; } });
      return Math.fround(x + (den ? num / den : 0));
    });
  });
}

/** Every model's 2-D tensors, flattened: the sampled entries of src/typed.ts, here all of them. */
const sampleOf = (models: Float64Array[][]) => models.map((m) => Float64Array.from(m.flatMap((w, t) => (SHAPES[t]![0] > 1 ? [...w] : []))));

describe('sparse (TIES) merges', () => {
  // Stored float32, as the sample reads them: equalities are bit for bit.
  const base = synthWeights({ parents: TREE, seed: 7 }).map((m) => m.map((w) => w.map(Math.fround)));

  it('base + trimmed, sign-elected task vectors of three fine-tunes: the three parents, not the base', () => {
    const m = ties(base[0]!, [base[1]!, base[2]!, base[3]!], [0.5, 0.3, 0.2], 0.2);
    const models = [...base, m];
    const stats = statsOf(models, false);
    const graph = recoverGraph(stats, { bootstrap: 0 });
    const plain = typedRelations(stats, graph, {}, { bootstrap: 0 });
    // No affine combination is close: without the sample it is a fine-tune.
    expect(plain.parents[5]!.map((e) => e.relation)).toEqual(['finetune']);
    const typed = typedRelations(stats, graph, { sample: sampleOf(models) }, { bootstrap: 0 });
    const got = typed.parents[5]!;
    expect(got.map((e) => e.relation)).toEqual(['merge', 'merge', 'merge']);
    expect(got.map((e) => e.parent)).toEqual([1, 2, 3]); // by weight, largest first
    expect(got[0]!.weight!).toBeGreaterThan(got[2]!.weight!);
    expect(got[0]!.confidence).toBeGreaterThan(0.9);
    expect(typed.parent.slice(0, 5)).toEqual(TREE);
  });

  it('density 0.5 and two parents (as many entries equal a parent as the base): the base is still found', () => {
    const m = ties(base[0]!, [base[2]!, base[3]!], [0.5, 0.5], 0.5);
    const fit = sparseMerge(sampleOf([...base, m]), 5, [0, 1, 2, 3, 4]);
    expect(fit?.sparse?.base).toBe(0);
    expect([...fit!.parents].sort()).toEqual([2, 3]);
  });

  it('fine-tunes, linear merges and a fine-tune with untouched entries are not sparse merges', () => {
    const lin = base[1]!.map((w, t) => w.map((x, i) => Math.fround(0.5 * x + 0.5 * base[2]![t]![i]!)));
    // A fine-tune of 4 that left a quarter of its entries untouched (frozen rows): equal to 4 there, but to no other model.
    const part = base[4]!.map((w, t) => w.map((x, i) => (i % 4 === 0 ? x : Math.fround(x + 0.01 * Math.sin(i + t)))));
    const sample = sampleOf([...base, lin, part]);
    for (const k of [0, 1, 2, 3, 4, 5, 6]) expect(sparseMerge(sample, k, [0, 1, 2, 3, 4, 5, 6].filter((x) => x !== k))).toBeNull();
  });
});

describe('sparse merges: no false claim in a bfloat16 fine-tuning family', () => {
  // Stored bfloat16: an update below half a unit in the last place leaves the entry equal to the
  // parent bit for bit, and relatives collide by rounding, which looks like TIES's trimming.
  const bf16 = (x: number) => {
    const f = new Float32Array([x]), u = new Uint32Array(f.buffer);
    u[0] = (u[0]! + 0x7fff + ((u[0]! >> 16) & 1)) & 0xffff0000;
    return f[0]!;
  };
  it('a base, its fine-tunes and theirs, with small updates: no model is a sparse merge', () => {
    const S = 4000;
    let seed = 11;
    const rand = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed / 2 ** 32 - 0.5; };
    const gauss = () => rand() + rand() + rand() + rand();
    const parentOf = [-1, 0, 0, 0, 1, 1, 2, 3, 3, 4, 5];
    const raw: Float64Array[] = [];
    parentOf.forEach((p, k) => {
      raw.push(Float64Array.from({ length: S }, (_, e) => (p < 0 ? 0.05 * gauss() : raw[p]![e]! + 0.0004 * gauss() + 0.0003 * Math.sin(e * (k + 1)))));
    });
    const sample = raw.map((m) => Float64Array.from(m, bf16));
    const all = parentOf.map((_, k) => k);
    // u: bfloat16's unit roundoff, as typedRelations passes it for a bfloat16 model.
    for (const k of all) expect(sparseMerge(sample, k, all.filter((x) => x !== k), 2 ** -8), `model ${k}`).toBeNull();
  });
});

describe('spectral ties in a hub family core', () => {
  // 0 base, 1 a short fine-tune of 0 (nearly a copy), 2 and 3 fine-tunes of 0 (not of 1).
  const N = 4, T = 8;
  const D = Float64Array.from([
    0, 0.6, 6, 7,
    0.6, 0, 6.5, 7.7,
    6, 6.5, 0, 12,
    7, 7.7, 12, 0,
  ]);
  /** Spectra: H(W_x - W_a) per tensor, `bias` added to every pair with 1 (positive: 1 looks farther). */
  function stats(bias: number): TensorStats {
    const spectrum = new Float64Array(T * N * N);
    for (let t = 0; t < T; t++)
      for (let i = 0; i < N; i++)
        for (let j = i + 1; j < N; j++) {
          // Per-tensor scatter that averages out over the tensors.
          const h = 3.7 + ((t + i + j) % 2 ? 0.01 : -0.01) + (i === 1 || j === 1 ? bias : 0);
          spectrum[(t * N + i) * N + j] = spectrum[(t * N + j) * N + i] = h;
        }
    return { ids: ['b', 'c', 'x', 'y'], tensors: Array.from({ length: T }, (_, t) => ({ name: `t${t}`, rows: 8, cols: 8, numel: 64 })), spectrum } as unknown as TensorStats;
  }

  it('spectra within their noise: L2 decides, so the near-copy is not the parent', () => {
    const s = stats(0);
    expect(Math.abs(spectralPreference(s, 2, 1, 0))).toBeLessThan(2);
    const parent: (number | null)[] = [null, 0, 1, 1];
    const conf = [1, 1, 0.55, 0.55];
    settleSpectralTies(s, D, N, [0, 1, 2, 3], parent, conf);
    expect(parent).toEqual([null, 0, 0, 0]);
    expect(conf[2]).toBeCloseTo(0.5 + 0.5 * 0.5 / 12.5, 4);
  });

  it('spectra that clearly prefer the near-copy keep the tree', () => {
    const s = stats(-0.1);
    expect(spectralPreference(s, 2, 0, 1)).toBeGreaterThan(2);
    const parent: (number | null)[] = [null, 0, 1, 1];
    settleSpectralTies(s, D, N, [0, 1, 2, 3], parent, [1, 1, 1, 1]);
    expect(parent).toEqual([null, 0, 1, 1]);
  });
});

describe('adapters and claims', () => {
  it('placeAdapter: the family from the scores, the declared base inside it, else the root', () => {
    const scores = [
      { id: 'a', family: 0, score: 0.30 }, { id: 'a-ft', family: 0, score: 0.31 },
      { id: 'b', family: 1, score: 0.20 }, { id: 'b-ft', family: 1, score: 0.21 },
    ];
    const roots = new Map([[0, 'a'], [1, 'b']]);
    expect(placeAdapter(scores, ['a-ft'], roots)).toMatchObject({ parent: 'a-ft', family: 0 });
    expect(placeAdapter(scores, [], roots)).toMatchObject({ parent: 'a', family: 0 });
    // a declared base of the other family does not override the weights
    expect(placeAdapter(scores, ['b'], roots)).toMatchObject({ parent: 'a', family: 0 });
    expect(placeAdapter([], [], roots)).toBeNull();
  });

  it('judgeClaim: bases must be exactly the parents, the relation (if given) theirs', () => {
    const ft = [{ id: 'p', relation: 'finetune' as const }];
    expect(judgeClaim(['p'], 'finetune', ft).agrees).toBe(true);
    expect(judgeClaim(['p'], null, ft).agrees).toBe(true);
    expect(judgeClaim(['g'], 'finetune', ft).agrees).toBe(false);
    expect(judgeClaim(['p'], 'merge', ft).agrees).toBe(false);
    const merge = [{ id: 'a', relation: 'merge' as const }, { id: 'b', relation: 'merge' as const }];
    expect(judgeClaim(['b', 'a'], null, merge).agrees).toBe(true);
    expect(judgeClaim(['a'], 'finetune', merge).agrees).toBe(false);
    expect(judgeClaim([null], null, ft).agrees).toBeNull();
    // a cast has no hub relation: any claimed relation is wrong, none is right
    expect(judgeClaim(['p'], null, [{ id: 'p', relation: 'cast' }]).agrees).toBe(true);
  });
});
