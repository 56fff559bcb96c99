import { describe, expect, it } from 'vitest';
import {
  adjustedRandIndex, clusterFamilies, edgeAccuracy, GraphError, minSpanningTree, orientTree, recoverGraph, rootsOf,
  undirectedAccuracy,
} from '../src/graph/index.js';
import { randomForest, statsOf, synthWeights } from './graph-synth.js';

describe('recoverGraph on synthetic trees', () => {
  it('recovers full fine-tuning forests of several shapes exactly, without being told K', () => {
    for (const seed of [1, 2, 3]) {
      const truth = randomForest(3, 7, seed);
      const stats = statsOf(synthWeights({ parents: truth, seed }), false);
      const r = recoverGraph(stats, { bootstrap: 10 });
      expect(edgeAccuracy(truth, r.parent)).toBe(1);
      expect(adjustedRandIndex(rootsOf(truth), r.family)).toBe(1);
      expect(r.families).toHaveLength(3);
      expect(r.families.every((f) => f.distance === 'ft')).toBe(true);
      expect(r.families.map((f) => f.root)).toEqual([0, 7, 14]);
      for (const c of r.confidence) { expect(c).toBeGreaterThanOrEqual(0); expect(c).toBeLessThanOrEqual(1); }
    }
  });

  it('detects LoRA per family and places the edges by the rank distance', () => {
    const truth = randomForest(2, 6, 5);
    const stats = statsOf(synthWeights({ parents: truth, lora: true, rank: 1, seed: 5 }));
    const r = recoverGraph(stats, { bootstrap: 0 });
    expect(r.families.map((f) => f.distance)).toEqual(['lora', 'lora']);
    expect(undirectedAccuracy(truth, r.parent)).toBe(1);
    expect(edgeAccuracy(truth, r.parent)).toBe(1);
    expect(r.warnings.some((w) => w.includes('LoRA detected'))).toBe(true);
    // the same models without rank statistics fall back to the ft distance
    const ft = recoverGraph({ ...stats, rank: undefined }, { bootstrap: 0 });
    expect(ft.families.map((f) => f.distance)).toEqual(['ft', 'ft']);
  });

  it('forces the number of families when asked', () => {
    const truth = randomForest(3, 4, 9);
    const stats = statsOf(synthWeights({ parents: truth, seed: 9 }), false);
    expect(recoverGraph(stats, { families: 2, bootstrap: 0 }).families).toHaveLength(2);
    const four = recoverGraph(stats, { families: 4, bootstrap: 0 });
    expect(four.families).toHaveLength(4);
    expect(four.parent.filter((p) => p === null)).toHaveLength(4);
    expect(() => recoverGraph(stats, { families: 0 })).toThrow(GraphError);
  });

  it('is deterministic for a seed and gives margin confidences without bootstrap', () => {
    const truth = randomForest(1, 8, 4);
    const stats = statsOf(synthWeights({ parents: truth, seed: 4, step: 0.3 }), false);
    const a = recoverGraph(stats, { bootstrap: 20, seed: 7 }), b = recoverGraph(stats, { bootstrap: 20, seed: 7 });
    expect(a).toEqual(b);
    const m = recoverGraph(stats, { bootstrap: 0 });
    expect(m.parent).toEqual(a.parent);
    for (const c of m.confidence) expect(c >= 0 && c <= 1).toBe(true);
  });

  it('handles a single model and non-finite tensors', () => {
    const one = statsOf(synthWeights({ parents: [null] }), false);
    const r = recoverGraph(one);
    expect(r.parent).toEqual([null]);
    expect(r.families).toEqual([{ members: [0], root: 0, distance: 'ft', evidence: 'l2', direction: 'mixed' }]);
    const truth = randomForest(1, 5, 2);
    const stats = statsOf(synthWeights({ parents: truth, seed: 2 }), false);
    const N = 5;
    stats.sumsq[(0 * N + 1) * N + 2] = NaN; // tensor t0 broken for one pair
    const s = recoverGraph(stats, { bootstrap: 0 });
    expect(s.warnings.join(' ')).toMatch(/t0/);
    expect(edgeAccuracy(truth, s.parent)).toBe(1);
  });

  it('runs the paper recipe as a baseline', () => {
    const truth = randomForest(2, 6, 3);
    const stats = statsOf(synthWeights({ parents: truth, seed: 3 }), false);
    const r = recoverGraph(stats, { method: 'paper', bootstrap: 5 });
    expect(r.families).toHaveLength(2);
    expect(r.parent.filter((p) => p === null)).toHaveLength(2);
    expect(undirectedAccuracy(truth, r.parent)).toBeGreaterThan(0.8);
  });

  it('rejects bad statistics and options with stable codes naming the field', () => {
    const stats = statsOf(synthWeights({ parents: [null, 0] }), false);
    const code = (f: () => unknown) => { try { f(); } catch (e) { return [(e as GraphError).code, (e as Error).message]; } return null; };
    expect(code(() => recoverGraph({ ...stats, sumsq: new Float64Array(3) }))).toEqual(['E_GRAPH_INPUT', expect.stringMatching(/sumsq/)]);
    expect(code(() => recoverGraph({ ...stats, ids: ['a', 'a'] }))?.[0]).toBe('E_GRAPH_INPUT');
    expect(code(() => recoverGraph({ ...stats, tensors: [] }))?.[0]).toBe('E_GRAPH_INPUT');
    expect(code(() => recoverGraph(stats, { method: 'x' as 'paper' }))).toEqual(['E_GRAPH_OPTION', expect.stringMatching(/method/)]);
    expect(code(() => recoverGraph(stats, { bootstrap: -1 }))?.[0]).toBe('E_GRAPH_OPTION');
    expect(code(() => recoverGraph(stats, { entropySign: 0 as 1 }))).toEqual(['E_GRAPH_OPTION', expect.stringMatching(/entropySign/)]);
    expect(code(() => recoverGraph(stats, { distance: 'lora' }))).toEqual(['E_GRAPH_OPTION', expect.stringMatching(/rank/)]);
  });
});

describe('graph building blocks', () => {
  it('clusterFamilies links clearly correlated models only', () => {
    const N = 4, rel = new Float64Array([1, 0.9, 0.01, 0, 0.9, 1, 0.02, 0.6, 0.01, 0.02, 1, 0, 0, 0.6, 0, 1]);
    expect(clusterFamilies(rel, N)).toEqual([[0, 1, 3], [2]]);
    expect(clusterFamilies(rel, N, 1)).toEqual([[0, 1, 2, 3]]);
    expect(clusterFamilies(rel, N, 3)).toEqual([[0, 1], [2], [3]]);
  });

  it('minSpanningTree finds the path of a line metric', () => {
    const n = 5, D = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) D[i * n + j] = Math.abs(i - j);
    const e = minSpanningTree(n, D).map(([a, b]) => [Math.min(a, b), Math.max(a, b)]).sort((x, y) => x[0] - y[0]);
    expect(e).toEqual([[0, 1], [1, 2], [2, 3], [3, 4]]);
  });

  it('orientTree reroots in O(n) with the same totals as a direct sum per root', () => {
    const n = 6, edges: [number, number][] = [[0, 1], [1, 2], [1, 3], [3, 4], [3, 5]];
    const score = new Float64Array(n * n);
    for (let i = 0; i < n * n; i++) score[i] = Math.sin(i * 1.7);
    const { total, root, parent } = orientTree(n, edges, score);
    for (let r = 0; r < n; r++) {
      // direct: orient from r
      const adj: number[][] = Array.from({ length: n }, () => []);
      for (const [a, b] of edges) { adj[a].push(b); adj[b].push(a); }
      let s = 0;
      const st = [r], seen = new Set([r]);
      while (st.length) { const u = st.pop()!; for (const v of adj[u]) if (!seen.has(v)) { seen.add(v); s += score[u * n + v]; st.push(v); } }
      expect(total[r]).toBeCloseTo(s, 12);
    }
    expect(parent[root]).toBe(-1);
    expect(Math.max(...total)).toBe(total[root]);
  });
});

describe('degenerate inputs', () => {
  it('warns when models are identical on the compared tensors', () => {
    const w = synthWeights({ parents: [null, 0, 0], seed: 11 });
    w.push(w[1].map((t) => Float64Array.from(t)));
    const r = recoverGraph(statsOf(w, false), { bootstrap: 0 });
    expect(r.warnings.join(' ')).toMatch(/m1 = m3/);
    expect(r.parent.filter((p) => p === null)).toHaveLength(1);
  });
});
