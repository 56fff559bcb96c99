import { describe, expect, it } from 'vitest';
import { minDirectedSpanningTree } from '../src/graph/arborescence.js';
import { GraphError } from '../src/graph/types.js';
import { mulberry32 } from '../src/graph/confidence.js';

const rng = mulberry32;

/** Every parent assignment; keeps those that are forests with allowed roots. Returns the best cost. */
function brute(n: number, W: number[], rootCost: (v: number) => number | undefined, fixedRoot?: number, single = false): number {
  let best = Infinity;
  const par = new Array(n).fill(-1);
  const rec = (v: number, acc: number) => {
    if (acc >= best) return;
    if (v === n) {
      // acyclic: every node reaches a root
      let roots = 0;
      for (let i = 0; i < n; i++) {
        if (par[i] === -1) roots++;
        let x = i, s = 0;
        while (par[x] !== -1 && s <= n) { x = par[x]; s++; }
        if (s > n) return;
      }
      if (single && roots !== 1) return;
      best = acc;
      return;
    }
    if (fixedRoot === v) { par[v] = -1; rec(v + 1, acc); return; }
    const rc = fixedRoot === undefined ? rootCost(v) : undefined;
    if (rc !== undefined) { par[v] = -1; rec(v + 1, acc + rc); }
    for (let u = 0; u < n; u++) {
      if (u === v || W[u * n + v] === Infinity) continue;
      par[v] = u; rec(v + 1, acc + W[u * n + v]);
    }
    par[v] = -1;
  };
  rec(0, 0);
  return best;
}

function costOf(n: number, W: number[], parent: Int32Array): number {
  let c = 0;
  for (let v = 0; v < n; v++) if (parent[v] >= 0) c += W[parent[v] * n + v];
  return c;
}

function isTree(parent: Int32Array): boolean {
  for (let i = 0; i < parent.length; i++) {
    let x = i, s = 0;
    while (parent[x] !== -1) { x = parent[x]; if (++s > parent.length) return false; }
  }
  return true;
}

describe('minDirectedSpanningTree', () => {
  it('finds the known optimum of a small graph with a cycle to contract', () => {
    const I = Infinity;
    // 0 is the root; 1 <-> 2 is a cheap cycle that must be broken by the cheaper entry 0 -> 2.
    const W = [
      I, 10, 5,
      I, I, 1,
      I, 1, I,
    ];
    const r = minDirectedSpanningTree(3, W, 0);
    expect(Array.from(r.parent)).toEqual([-1, 2, 0]);
    expect(r.cost).toBe(6);
  });

  it('matches brute force on random graphs (n <= 7) with ties, missing edges and a fixed root', () => {
    const rand = rng(1);
    for (let trial = 0; trial < 300; trial++) {
      const n = 1 + Math.floor(rand() * 7);
      const W = Array.from({ length: n * n }, (_, i) =>
        Math.floor(i / n) === i % n ? Infinity : rand() < 0.15 ? Infinity : Math.floor(rand() * 5));
      const root = Math.floor(rand() * n);
      const want = brute(n, W, () => undefined, root);
      if (want === Infinity) {
        expect(() => minDirectedSpanningTree(n, W, root)).toThrow(GraphError);
        continue;
      }
      const got = minDirectedSpanningTree(n, W, root);
      expect(got.parent[root]).toBe(-1);
      expect(isTree(got.parent)).toBe(true);
      expect(costOf(n, W, got.parent)).toBe(want);
      expect(got.cost).toBe(want);
    }
  });

  it('matches brute force with a virtual root: best single root, and forests with root costs', () => {
    const rand = rng(2);
    for (let trial = 0; trial < 200; trial++) {
      const n = 1 + Math.floor(rand() * 6);
      const W = Array.from({ length: n * n }, (_, i) =>
        Math.floor(i / n) === i % n ? Infinity : rand() < 0.1 ? Infinity : Math.floor(rand() * 6));
      const single = brute(n, W, () => 0, undefined, true);
      if (single < Infinity) {
        const got = minDirectedSpanningTree(n, W);
        expect(Array.from(got.parent).filter((p) => p === -1).length).toBe(1);
        expect(isTree(got.parent)).toBe(true);
        expect(got.cost).toBe(single);
      }
      const rc = Array.from({ length: n }, () => Math.floor(rand() * 8));
      const forest = brute(n, W, (v) => rc[v]);
      const got = minDirectedSpanningTree(n, W, { rootCost: rc });
      expect(isTree(got.parent)).toBe(true);
      expect(got.cost).toBe(forest);
    }
  });

  it('accepts an edge list (parallel edges: the cheapest counts)', () => {
    const r = minDirectedSpanningTree(3, [
      { from: 0, to: 1, weight: 5 }, { from: 0, to: 1, weight: 2 },
      { from: 1, to: 2, weight: 1 }, { from: 0, to: 2, weight: 4 },
    ], 0);
    expect(Array.from(r.parent)).toEqual([-1, 0, 1]);
    expect(r.cost).toBe(3);
  });

  it('rejects bad input with a stable code', () => {
    expect(() => minDirectedSpanningTree(2, [0, 1], 0)).toThrow(/n\*n = 4/);
    expect(() => minDirectedSpanningTree(2, [0, 1, 1, 0], 5)).toThrow(GraphError);
    try { minDirectedSpanningTree(2, [Infinity, Infinity, Infinity, Infinity], 0); } catch (e) {
      expect((e as GraphError).code).toBe('E_NO_ARBORESCENCE');
    }
  });

  it('handles a dense n = 300 graph quickly and beats a greedy tree', () => {
    const n = 300, rand = rng(3);
    const W = new Float64Array(n * n);
    for (let i = 0; i < n * n; i++) W[i] = Math.floor(i / n) === i % n ? Infinity : rand();
    const t0 = performance.now();
    const r = minDirectedSpanningTree(n, W, 0);
    const ms = performance.now() - t0;
    expect(isTree(r.parent)).toBe(true);
    // Lower bound: every node's cheapest incoming edge. The optimum is at least that and usually close.
    let lb = 0;
    for (let v = 1; v < n; v++) { let m = Infinity; for (let u = 0; u < n; u++) if (u !== v) m = Math.min(m, W[u * n + v]); lb += m; }
    expect(r.cost).toBeGreaterThanOrEqual(lb - 1e-9);
    expect(r.cost).toBeLessThan(lb * 1.5);
    expect(ms).toBeLessThan(2000);
  });
});
