import { describe, expect, it } from 'vitest';
import { adjustedRandIndex, edgeAccuracy, rootsOf, undirectedAccuracy } from '../src/graph/eval.js';

describe('evaluation metrics', () => {
  it('adjustedRandIndex matches known values (scikit-learn adjusted_rand_score)', () => {
    expect(adjustedRandIndex([0, 0, 1, 1], [0, 0, 1, 1])).toBe(1);
    expect(adjustedRandIndex([0, 0, 1, 1], [1, 1, 0, 0])).toBe(1);
    expect(adjustedRandIndex([0, 0, 1, 2], [0, 0, 1, 1])).toBeCloseTo(0.5714285714285715, 14);
    expect(adjustedRandIndex([0, 0, 1, 1], [0, 1, 0, 1])).toBeCloseTo(-0.5, 14);
    expect(adjustedRandIndex([0, 0, 0, 0], [0, 1, 2, 3])).toBe(0);
    expect(adjustedRandIndex([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 2, 2])).toBeCloseTo(0.24242424242424243, 14);
    expect(adjustedRandIndex(['a', 'a', 'b'], [5, 5, 7])).toBe(1);
    expect(() => adjustedRandIndex([0], [0, 1])).toThrow(RangeError);
  });

  it('edge and undirected accuracy count roots and reversed edges as specified', () => {
    const truth = [null, 0, 1, 1];
    expect(edgeAccuracy(truth, [null, 0, 1, 1])).toBe(1);
    // 1 and 2 swapped roles along one edge: 2 is now parent of 1
    const pred = [null, 2, 0, 1];
    expect(edgeAccuracy(truth, pred)).toBe(0.5);
    expect(undirectedAccuracy(truth, pred)).toBe(0.75);
    expect(undirectedAccuracy(truth, [1, null, 1, 1])).toBe(0.75);
    expect(rootsOf([null, 0, 1, null, 3])).toEqual([0, 0, 0, 3, 3]);
    expect(() => rootsOf([1, 0])).toThrow(/cycle/);
  });
});
