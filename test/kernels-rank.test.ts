// diff_rank: known-rank constructions, exact vs randomized agreement, storage rounding noise.
import { describe, expect, it } from 'vitest';
import type { ComputeDType } from '../src/native.js';
import { encode, isas, kernels, rng } from './kernels-helpers.js';

/** Parent W (m x n, N(0,1)) and child W + B A with B A of exact rank r and elements ~ scale. */
function lora(m: number, n: number, r: number, scale: number, seed: number) {
  const g = rng(seed).gauss;
  const W = Float64Array.from({ length: m * n }, g);
  const C = Float64Array.from(W);
  const B = Float64Array.from({ length: m * r }, g), A = Float64Array.from({ length: r * n }, g);
  const f = r ? scale / Math.sqrt(r) : 0;
  for (let i = 0; i < m; i++)
    for (let k = 0; k < r; k++) {
      const b = B[i * r + k] * f;
      for (let j = 0; j < n; j++) C[i * n + j] += b * A[k * n + j];
    }
  return { W, C };
}

function rank(W: Float64Array, C: Float64Array, m: number, n: number, dtype: ComputeDType,
              opts?: { noise?: number; exactLimit?: number; maxRank?: number; isa?: string }) {
  return kernels.rank(encode(W, dtype).bytes, encode(C, dtype).bytes, m, n, dtype, opts);
}

describe('rank', () => {
  it('F32: LoRA-style differences (1e-3 of W) have exactly rank r, any shape, every ISA', () => {
    for (const [m, n] of [[64, 64], [64, 128], [128, 64], [1, 50], [50, 1], [7, 5]]) {
      for (const r of [0, 1, 4, 7, 40]) {
        if (r > Math.min(m, n)) continue;
        const { W, C } = lora(m, n, r, 1e-3, m * 1000 + n * 10 + r);
        for (const isa of isas()) expect(rank(W, C, m, n, 'F32', { isa }), `${m}x${n} r=${r} ${isa}`).toBe(r);
      }
    }
  });

  it('full-rank differences have full rank; identical matrices rank 0', () => {
    const g = rng(2).gauss;
    const a = Float64Array.from({ length: 48 * 30 }, g), b = Float64Array.from({ length: 48 * 30 }, g);
    expect(rank(a, b, 48, 30, 'F32')).toBe(30);
    expect(rank(a, a, 48, 30, 'F32')).toBe(0);
    expect(rank(a, a, 48, 30, 'BF16')).toBe(0);
  });

  it('randomized path agrees with the exact one at 600 x 600 (rank 0/1/7/40), caps at maxRank + 1', () => {
    for (const r of [0, 1, 7, 40]) {
      const { W, C } = lora(600, 600, r, 1e-3, 600 + r);
      const exact = rank(W, C, 600, 600, 'F32', { exactLimit: 600 });
      expect(exact).toBe(r);
      for (const isa of isas()) expect(rank(W, C, 600, 600, 'F32', { exactLimit: 100, maxRank: 60, isa })).toBe(exact);
    }
    const { W, C } = lora(300, 200, 80, 1e-2, 9);
    expect(rank(W, C, 300, 200, 'F32', { exactLimit: 50, maxRank: 30 })).toBe(31);
    expect(rank(W, C, 300, 200, 'F32')).toBe(80);
  });

  it('BF16/F16 storage rounding alone never raises the rank (default noise factor)', () => {
    for (const [m, n] of [[64, 64], [256, 256]]) {
      // A real rank-7 change well above the rounding: the rounding noise around it is iid.
      const { W, C } = lora(m, n, 7, 0.1, m);
      expect(rank(W, C, m, n, 'BF16')).toBe(7);
      expect(rank(W, C, m, n, 'F16')).toBe(7);
      // Half the measured noise level does count rounding as rank (shows the term is needed).
      expect(rank(W, C, m, n, 'BF16', { noise: 0.5 })).toBeGreaterThan(7);
      // Changes far below one ulp: only a few elements round differently.
      const tiny = Float64Array.from(W, (v, i) => v * (1 + 1e-4 * Math.sin(i)));
      expect(rank(W, tiny, m, n, 'BF16')).toBe(0);
      expect(rank(W, tiny, m, n, 'F16')).toBe(0);
    }
  });

  it('BF16: what is recoverable (documented limits)', () => {
    // 3e-2 of |W|: exact. 1e-3 of |W| is below BF16 rounding (2^-9 |W|): nothing can be seen.
    const big = lora(256, 256, 7, 3e-2, 1);
    expect(rank(big.W, big.C, 256, 256, 'BF16')).toBe(7);
    const small = lora(256, 256, 7, 1e-3, 1);
    expect(rank(small.W, small.C, 256, 256, 'BF16')).toBe(0);
    expect(rank(small.W, small.C, 256, 256, 'F32')).toBe(7);
  });

  it('NaN in a matrix gives NaN; bad arguments throw', () => {
    const a = new Float32Array(6), b = new Float32Array(6);
    b[3] = NaN;
    expect(kernels.rank(new Uint8Array(a.buffer), new Uint8Array(b.buffer), 2, 3, 'F32')).toBeNaN();
    expect(() => kernels.rank(new Uint8Array(24), new Uint8Array(20), 2, 3, 'F32')).toThrow(/rows \* cols = 6/);
    expect(() => kernels.rank(new Uint8Array(24), new Uint8Array(24), 2, 3, 'F32', { noise: -1 })).toThrow(/noise/);
    expect(() => kernels.rank(new Uint8Array(24), new Uint8Array(24), 2.5, 3, 'F32')).toThrow(/rows/);
    expect(kernels.rank(new Uint8Array(0), new Uint8Array(0), 0, 3, 'F32')).toBe(0);
  });
});
