/**
 * Inheritance (src/graph/inheritance.ts): a child carries its parent's own update. Checked on
 * explicit weight vectors, whose squared distances are what the graph stage sees.
 */
import { describe, expect, it } from 'vitest';
import { inheritanceViolations, MIN_INHERITED, repairByInheritance } from '../src/graph/inheritance.js';

/** n x n squared Euclidean distances of the rows. */
function squared(rows: number[][]): Float64Array {
  const n = rows.length, S2 = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) S2[i * n + j] = rows[i]!.reduce((s, v, k) => s + (v - rows[j]![k]!) ** 2, 0);
  return S2;
}

describe('inheritanceViolations', () => {
  // p = 0; a = p + u (u along axis 0, length 2); models placed under a in the tree.
  const p = [0, 0, 0], a = [2, 0, 0];
  it('passes a child that carries its parent\'s update, also with some of it undone', () => {
    const child = [2, 1, 0]; // a + an orthogonal update: kappa0 = 1
    const forgetful = [1.4, 1, 0]; // undid 30 % of u: kappa0 = 0.7
    const S2 = squared([p, a, child, forgetful]);
    expect(inheritanceViolations(S2, 4, [-1, 0, 1, 1])).toEqual([]);
  });

  it('flags a model that carries less than half of the update (nearer the grandparent)', () => {
    const sibling = [0.2, 3, 0]; // p + an update nearly orthogonal to u: kappa0 = 0.1
    const behind = [-1, 0, 2]; // moved against u: kappa0 = -0.5
    const S2 = squared([p, a, sibling, behind]);
    expect(inheritanceViolations(S2, 4, [-1, 0, 1, 1])).toEqual([1 * 4 + 2, 1 * 4 + 3]);
  });

  it('puts the threshold where the model is as near the grandparent as the parent', () => {
    expect(MIN_INHERITED).toBe(0.5);
    const justOver = [1.001, 5, 0], justUnder = [0.999, 5, 0]; // |x - p| vs |x - a| straddle equality
    const S2 = squared([p, a, justOver, justUnder]);
    expect(inheritanceViolations(S2, 4, [-1, 0, 1, 1])).toEqual([1 * 4 + 3]);
  });

  it('does not test edges under a root, or a parent identical to its own parent', () => {
    const S2 = squared([p, a, [5, 5, 5], p]);
    // 2 under the root 0 (no grandparent); 1 under 3, which equals its parent 0 (no update to carry).
    expect(inheritanceViolations(S2, 4, [-1, 3, 0, 0])).toEqual([]);
  });
});

describe('repairByInheritance', () => {
  it('moves a child that carries less than none of its parent\'s own update (siblings projected out) up', () => {
    // p = 0 with children a and s sharing a drift along axis 0; a's own part is along axis 1.
    const p = [0, 0, 0, 0], s = [3, 0, 1, 0], a = [3, 1, 0, 0];
    const child = [3, 1.9, 0, 1]; // a + its own update: carries e_a
    const stage = [3, -1, 1, 2]; // moved along the drift but against a's own part
    const parent = Int32Array.from([-1, 0, 0, 2, 2]);
    const { parent: out, moved } = repairByInheritance(squared([p, s, a, child, stage]), 5, parent);
    expect(moved).toBe(1);
    expect([...out]).toEqual([-1, 0, 0, 2, 0]);
  });
});
