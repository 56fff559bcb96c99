/**
 * Placement settled between parent, grandparent and sibling (src/graph/placement.ts). Explicit
 * weight vectors give the squared distances; the placement distance D is given by hand, since the
 * moves only compare its entries.
 */
import { describe, expect, it } from 'vitest';
import { adoptBySibling, liftToGrandparent, settlePlacement } from '../src/graph/placement.js';

function squared(rows: number[][]): Float64Array {
  const n = rows.length, S2 = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) S2[i * n + j] = rows[i]!.reduce((s, v, k) => s + (v - rows[j]![k]!) ** 2, 0);
  return S2;
}

/** Symmetric n x n distance from the listed pairs; every other pair is far (10). */
function distance(n: number, pairs: [number, number, number][]): Float64Array {
  const D = new Float64Array(n * n).fill(10);
  for (let i = 0; i < n; i++) D[i * n + i] = 0;
  for (const [a, b, d] of pairs) D[a * n + b] = D[b * n + a] = d;
  return D;
}

describe('adoptBySibling', () => {
  // g = 0 with a = g + u (u along axis 0); x carries u and adds its own update along axis 1.
  const g = [0, 0, 0], a = [2, 0, 0], x = [2, 1, 0];
  it('moves x below the sibling that is nearer and whose update x carries', () => {
    const S2 = squared([g, a, x]);
    const D = distance(3, [[0, 1, 1], [0, 2, 3.01], [1, 2, 3]]);
    const { parent, moved } = adoptBySibling(D, S2, 3, [-1, 0, 0]);
    expect(moved).toBe(1);
    expect([...parent]).toEqual([-1, 0, 1]);
  });

  it('leaves x where it is when the sibling is not strictly nearer by the placement distance', () => {
    const S2 = squared([g, a, x]);
    expect([...adoptBySibling(distance(3, [[0, 1, 1], [0, 2, 3], [1, 2, 3]]), S2, 3, [-1, 0, 0]).parent]).toEqual([-1, 0, 0]);
  });

  it('does not chain siblings when x carries less than half, or more than twice, of the sibling\'s update', () => {
    const D = distance(3, [[0, 1, 1], [0, 2, 3.01], [1, 2, 3]]);
    const half = [0.9, 2, 0]; // kappa0 = 0.45
    const far = [4.2, 1, 0]; // kappa0 = 2.1: a tiny update of which x went far beyond
    const inside = [3.8, 1, 0]; // kappa0 = 1.9
    expect([...adoptBySibling(D, squared([g, a, half]), 3, [-1, 0, 0]).parent]).toEqual([-1, 0, 0]);
    expect([...adoptBySibling(D, squared([g, a, far]), 3, [-1, 0, 0]).parent]).toEqual([-1, 0, 0]);
    expect([...adoptBySibling(D, squared([g, a, inside]), 3, [-1, 0, 0]).parent]).toEqual([-1, 0, 1]);
  });

  it('takes the nearest of several inheriting siblings, and leaves roots alone', () => {
    // g with children a, b (both carried by x) and x; b is nearer to x than a.
    const b = [2, 0, 0.5];
    const S2 = squared([g, a, b, [2, 1, 0.5]]);
    const D = distance(4, [[0, 1, 1], [0, 2, 1], [0, 3, 3.1], [1, 3, 3.05], [2, 3, 3.0]]);
    expect([...adoptBySibling(D, S2, 4, [-1, 0, 0, 0]).parent]).toEqual([-1, 0, 0, 2]);
    expect([...adoptBySibling(D, S2, 4, [-1, -1, -1, -1]).parent]).toEqual([-1, -1, -1, -1]);
  });
});

describe('liftToGrandparent', () => {
  it('moves a child that is nearer its grandparent up, to a fixed point', () => {
    // chain 0 -> 1 -> 2 -> 3; 3 is nearer 1 than 2, and nearer 0 than 1.
    const D = distance(4, [[0, 1, 1], [1, 2, 1], [2, 3, 2], [1, 3, 1.9], [0, 3, 1.8], [0, 2, 2]]);
    const { parent, moved } = liftToGrandparent(D, 4, [-1, 0, 1, 2]);
    expect([...parent]).toEqual([-1, 0, 1, 0]);
    expect(moved).toBe(2);
  });

  it('keeps a child that is nearer its parent, and equal distances', () => {
    const D = distance(3, [[0, 1, 1], [1, 2, 1], [0, 2, 1]]);
    expect([...liftToGrandparent(D, 3, [-1, 0, 1]).parent]).toEqual([-1, 0, 1]);
  });
});

describe('settlePlacement', () => {
  it('adopts, then lifts, and never makes a cycle', () => {
    // 0 root; 1, 2 children of 0; x = 3 under 0 is adopted by 1; 4 under 2 is nearer 0 than 2.
    const rows = [[0, 0, 0, 0], [2, 0, 0, 0], [0, 2, 0, 0], [2, 1, 0, 0], [0, 0, 0, 3]];
    const D = distance(5, [[0, 1, 1], [0, 2, 1], [0, 3, 3.01], [1, 3, 3], [2, 4, 3.2], [0, 4, 3.1]]);
    const parent = settlePlacement(D, squared(rows), 5, [-1, 0, 0, 0, 2]);
    expect([...parent]).toEqual([-1, 0, 0, 1, 0]);
    // every node reaches the root
    for (let v = 0; v < 5; v++) {
      let u = v, steps = 0;
      while (parent[u]! >= 0 && steps++ < 5) u = parent[u]!;
      expect(parent[u]).toBe(-1);
    }
  });
});
