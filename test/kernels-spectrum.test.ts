// Spectral entropy (native/cpu/spectrum.cc, kernels.spectralEntropy) against a float64 one-sided
// Jacobi SVD in JS on the values the kernel sees (stored dtype, then float32): odd shapes, every
// ISA and dtype, degenerate and non-finite inputs, closed forms, rank-deficient matrices, scaling.
// Then the stats runner's spectrum pass (spectrum: true): sampled blocks (replicated here), pairs
// and per-model values against the kernel, threads, reruns, mixed dtypes, validation, cancellation,
// and addSpectrumStatistics placing a family's values.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpuAddon, type ComputeDType, type JobTensor, type StatsJob, type StatsResult } from '../src/native.js';
import { openModel } from '../src/io/model.js';
import { catalogueGroup } from '../src/io/catalogue.js';
import { addSpectrumStatistics, groupStatistics } from '../src/stats/compute.js';
import { encode, isas, kernels, rng } from './kernels-helpers.js';
import { makeTempDir, randomValues, removeTempDir, storedValues, writeJobModels } from './helpers/safetensors.js';

const DTYPES: ComputeDType[] = ['F32', 'F16', 'BF16', 'F64'];

// ---- float64 reference ----------------------------------------------------------------------------

/** Singular values of the m x n row-major D by one-sided Jacobi (float64, relative accuracy). */
function singularValues(D: Float64Array, m: number, n: number): number[] {
  const k = Math.min(m, n), len = Math.max(m, n);
  const cols = Array.from({ length: k }, (_, c) => {
    const v = new Float64Array(len);
    for (let i = 0; i < len; i++) v[i] = m >= n ? D[i * n + c]! : D[c * n + i]!;
    return v;
  });
  const dot = (x: Float64Array, y: Float64Array) => { let s = 0; for (let i = 0; i < len; i++) s += x[i]! * y[i]!; return s; };
  for (let sweep = 0; sweep < 100; sweep++) {
    let rotated = false;
    for (let p = 0; p < k; p++)
      for (let q = p + 1; q < k; q++) {
        const x = cols[p]!, y = cols[q]!, al = dot(x, x), be = dot(y, y), g = dot(x, y);
        if (Math.abs(g) <= 1e-16 * Math.sqrt(al * be) || g === 0) continue;
        rotated = true;
        const zeta = (be - al) / (2 * g);
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.hypot(1, zeta));
        const c = 1 / Math.sqrt(1 + t * t), s = c * t;
        for (let i = 0; i < len; i++) { const a = x[i]!, b = y[i]!; x[i] = c * a - s * b; y[i] = s * a + c * b; }
      }
    if (!rotated) break;
  }
  return cols.map((v) => Math.sqrt(dot(v, v)));
}

/** H = -sum p log p, p = sigma / sum sigma (NaN: a non-finite value or an all-zero matrix). */
function entropyOf(sigma: number[]): number {
  const total = sigma.reduce((a, b) => a + b, 0);
  if (!(total > 0)) return NaN;
  let h = 0;
  for (const s of sigma) if (s > 0) { const p = s / total; h -= p * Math.log(p); }
  return h;
}

/** The reference on float32 inputs (already rounded): H of sigma(A - B), or of sigma(A). */
function refEntropy(a: ArrayLike<number>, b: ArrayLike<number> | null, m: number, n: number): number {
  const D = new Float64Array(m * n);
  for (let i = 0; i < m * n; i++) {
    D[i] = b ? a[i]! - b[i]! : a[i]!;
    if (!Number.isFinite(D[i])) return NaN;
  }
  return entropyOf(singularValues(D, m, n));
}

/** What the kernel sees: the value stored as dtype, then rounded to float32. */
function asKernelInput(values: ArrayLike<number>, dtype: ComputeDType) {
  const e = encode(values, dtype);
  return { bytes: e.bytes, f32: Float64Array.from(e.decoded, Math.fround) };
}

const f32bytes = (v: ArrayLike<number>) => new Uint8Array(Float32Array.from(v).buffer);
const H = (a: ArrayLike<number>, b: ArrayLike<number> | null, m: number, n: number, isa?: string) =>
  kernels.spectralEntropy(f32bytes(a), b ? f32bytes(b) : null, m, n, 'F32', isa);
const gaussian = (len: number, seed: number, scale = 1) => { const g = rng(seed).gauss; return Float64Array.from({ length: len }, () => scale * g()); };

/** |got - want| <= rel |want| + abs, NaN matching NaN only. */
function near(got: number, want: number, rel: number, abs = 0, what = '') {
  if (Number.isNaN(want)) return expect(got, what).toBeNaN();
  expect(Number.isFinite(got), `${what}: got ${got}`).toBe(true);
  expect(Math.abs(got - want), `${what}: got ${got}, want ${want}`).toBeLessThanOrEqual(rel * Math.abs(want) + abs);
}

const SHAPES: [number, number][] = [[1, 1], [1, 9], [9, 1], [2, 3], [3, 2], [7, 5], [5, 7], [63, 65], [176, 64], [33, 130], [256, 64]];

describe('spectralEntropy vs the float64 Jacobi SVD', () => {
  it('random matrices, odd shapes, every ISA and dtype, b null and given: within 1e-12 relative', () => {
    let compared = 0;
    for (const [m, n] of SHAPES)
      for (const dtype of DTYPES) {
        const seed = m * 7919 + n * 31 + DTYPES.indexOf(dtype);
        // B = A + a full-rank change: the pass's typical input (a difference of related models).
        const A = gaussian(m * n, seed), change = gaussian(m * n, seed + 1, 0.3), B = Float64Array.from(A, (v, i) => v + change[i]!);
        const a = asKernelInput(A, dtype), b = asKernelInput(B, dtype);
        const wantAB = refEntropy(a.f32, b.f32, m, n), wantA = refEntropy(a.f32, null, m, n);
        if (Math.min(m, n) === 1) { expect(wantAB).toBe(0); expect(wantA).toBe(0); }
        const byIsa: number[] = [];
        for (const isa of isas()) {
          const gotAB = kernels.spectralEntropy(a.bytes, b.bytes, m, n, dtype, isa);
          const gotA = kernels.spectralEntropy(a.bytes, null, m, n, dtype, isa);
          near(gotAB, wantAB, 1e-12, 1e-15, `${m}x${n} ${dtype} ${isa} A-B`);
          near(gotA, wantA, 1e-12, 1e-15, `${m}x${n} ${dtype} ${isa} A`);
          // One singular value: p = 1 and H is exactly 0, on every path.
          if (Math.min(m, n) === 1) { expect(gotAB).toBe(0); expect(gotA).toBe(0); }
          // Undefined isa = the detected one; b undefined = null.
          byIsa.push(gotAB);
          compared += 2;
        }
        for (const x of byIsa) near(x, byIsa[0]!, 1e-13, 0, `${m}x${n} ${dtype} ISAs agree`);
        expect(kernels.spectralEntropy(a.bytes, b.bytes, m, n, dtype)).toBe(byIsa.at(-1));
        expect(kernels.spectralEntropy(a.bytes, undefined as never, m, n, dtype)).toBe(kernels.spectralEntropy(a.bytes, null, m, n, dtype));
        // Every dtype reduces to the F32 kernel on its float32 values, bit for bit.
        expect(kernels.spectralEntropy(a.bytes, b.bytes, m, n, dtype)).toBe(H(a.f32, b.f32, m, n));
      }
    expect(compared).toBeGreaterThan(300);
  });

  it('F64 inputs are rounded to float32 first (the kernel is float32), not used in double', () => {
    // Values that differ only below float32 resolution: A - B is zero once rounded.
    const A = gaussian(40 * 24, 3), B = Float64Array.from(A, (v) => v * (1 + 2 ** -40));
    const a = encode(A, 'F64').bytes, b = encode(B, 'F64').bytes;
    expect(kernels.spectralEntropy(a, b, 40, 24, 'F64')).toBeNaN();
    expect(kernels.spectralEntropy(a, null, 40, 24, 'F64')).toBe(H(Float64Array.from(A, Math.fround), null, 40, 24));
  });

  it('A == B, zero matrices, NaN/Inf anywhere in A or B (every dtype): NaN; huge values that only overflow float32 in A - B: finite', () => {
    for (const dtype of DTYPES) {
      const m = 9, n = 13, A = gaussian(m * n, 11), B = gaussian(m * n, 12);
      const a = encode(A, dtype).bytes;
      expect(kernels.spectralEntropy(a, a, m, n, dtype), `${dtype} A == A`).toBeNaN();
      expect(kernels.spectralEntropy(encode(new Float64Array(m * n), dtype).bytes, null, m, n, dtype), `${dtype} zero`).toBeNaN();
      expect(kernels.spectralEntropy(encode(new Float64Array(m * n), dtype).bytes, encode(new Float64Array(m * n).fill(-0), dtype).bytes, m, n, dtype)).toBeNaN();
      for (const bad of [NaN, Infinity, -Infinity])
        for (const at of [0, 57, m * n - 1])
          for (const which of ['a', 'b', 'both'] as const) {
            const X = Float64Array.from(A), Y = Float64Array.from(B);
            if (which !== 'b') X[at] = bad;
            if (which !== 'a') Y[at] = bad;
            for (const isa of isas()) {
              expect(kernels.spectralEntropy(encode(X, dtype).bytes, encode(Y, dtype).bytes, m, n, dtype, isa), `${dtype} ${bad} at ${at} in ${which} ${isa}`).toBeNaN();
              if (which !== 'b') expect(kernels.spectralEntropy(encode(X, dtype).bytes, null, m, n, dtype, isa)).toBeNaN();
            }
          }
    }
    // F16 values that round to Inf when stored are Inf to the kernel.
    const big = Float64Array.from(gaussian(12, 4)); big[5] = 70000;
    expect(kernels.spectralEntropy(encode(big, 'F16').bytes, null, 3, 4, 'F16')).toBeNaN();
    expect(kernels.spectralEntropy(encode(big, 'F32').bytes, null, 3, 4, 'F32')).toBeGreaterThan(0);
    // A - B is formed in double: 3e38 - (-3e38) is finite there (it would be Inf in float32).
    const P = Float64Array.from(gaussian(6 * 5, 5), (v) => 3e38 * Math.sign(v)), Q = Float64Array.from(P, (v) => -v);
    const got = H(P, Q, 6, 5);
    expect(Number.isFinite(got)).toBe(true);
    near(got, H(P, null, 6, 5), 1e-13, 0, '2P has the spectrum of P');
    // Nothing at all: 0 x n or m x 0.
    expect(kernels.spectralEntropy(new Uint8Array(0), null, 0, 5, 'F32')).toBeNaN();
    expect(kernels.spectralEntropy(new Uint8Array(0), new Uint8Array(0), 5, 0, 'F32')).toBeNaN();
  });

  it('closed forms: identity-like and Hadamard (log n), orthogonal (log n), diagonal, exact differences', () => {
    for (const [m, n] of [[8, 8], [64, 64], [65, 65], [5, 9], [130, 33], [1, 1]]) {
      const I = new Float64Array(m * n);
      for (let i = 0; i < Math.min(m, n); i++) I[i * n + i] = 1;
      for (const isa of isas()) near(H(I, null, m, n, isa), Math.log(Math.min(m, n)), 0, 1e-14, `identity ${m}x${n} ${isa}`);
      // A - B = I exactly (integer-valued B, so B + I is exact in float32): the difference's spectrum.
      const B = Float64Array.from(gaussian(m * n, m + n), (v) => Math.round(1000 * v));
      const A = Float64Array.from(B, (v, i) => v + I[i]!);
      near(H(A, B, m, n), Math.log(Math.min(m, n)), 0, 1e-14, `A - B = I ${m}x${n}`);
      // Permuted and signed: still orthogonal rows.
      const P = new Float64Array(m * n);
      for (let i = 0; i < Math.min(m, n); i++) P[i * n + ((i * 7 + 3) % Math.min(m, n))] = i % 3 ? -2.5 : 2.5;
      near(H(P, null, m, n), Math.log(Math.min(m, n)), 0, 1e-14, `signed permutation ${m}x${n}`);
    }
    // Sylvester Hadamard matrices: entries +-1, every singular value sqrt(n).
    for (const n of [2, 16, 64, 128]) {
      const had = new Float64Array(n * n);
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
        let x = i & j, bits = 0; while (x) { bits += x & 1; x >>= 1; }
        had[i * n + j] = bits % 2 ? -1 : 1;
      }
      for (const isa of isas()) near(H(had, null, n, n, isa), Math.log(n), 0, 1e-13, `Hadamard ${n} ${isa}`);
    }
    // An orthogonal matrix stored in float32 (Gram-Schmidt): sigma = 1 +- 1e-7, H = log n - O(1e-13).
    for (const n of [50, 64]) {
      const g = rng(n).gauss, Q = new Float64Array(n * n);
      for (let c = 0; c < n; c++) {
        const v = Float64Array.from({ length: n }, g);
        for (let pass = 0; pass < 2; pass++)
          for (let p = 0; p < c; p++) {
            let f = 0;
            for (let i = 0; i < n; i++) f += Q[i * n + p]! * v[i]!;
            for (let i = 0; i < n; i++) v[i] -= f * Q[i * n + p]!;
          }
        const nv = Math.hypot(...v);
        for (let i = 0; i < n; i++) Q[i * n + c] = v[i]! / nv;
      }
      const q = Float64Array.from(Q, Math.fround);
      near(H(q, null, n, n), Math.log(n), 0, 1e-12, `orthogonal ${n}`);
      near(H(q, null, n, n), refEntropy(q, null, n, n), 1e-13, 0, `orthogonal ${n} vs reference`);
    }
    // Diagonal: sigma = |d_i|, H in closed form (zeros on the diagonal drop out).
    for (const [m, n] of [[40, 40], [40, 25], [25, 40]]) {
      const k = Math.min(m, n), D = new Float64Array(m * n), d: number[] = [];
      for (let i = 0; i < k; i++) { const x = i % 5 === 4 ? 0 : (i % 2 ? -1 : 1) * (i + 1); d.push(Math.abs(x)); D[i * n + i] = x; }
      for (const isa of isas()) near(H(D, null, m, n, isa), entropyOf(d), 1e-14, 0, `diagonal ${m}x${n} ${isa}`);
    }
    // Two equal singular values and nothing else: log 2 (a rank-2 matrix of orthogonal +-1 rows).
    const two = new Float64Array(4 * 8);
    for (let j = 0; j < 8; j++) { two[j] = 1; two[8 + j] = j % 2 ? -1 : 1; }
    near(H(two, null, 4, 8), Math.log(2), 0, 1e-7, 'rank 2, equal sigmas');
  });

  it('rank-1 is H = 0 up to the Gram floor (sqrt(eps) sigma_max: H < 3e-6 at n = 64); 1 x n and n x 1 exactly 0', () => {
    // u v^T with small integers: exact in float32 and in the float64 Gram. The kernel's Gram
    // eigenvalues carry ~eps lambda_max rounding, so the n - 1 zero sigmas come back as up to
    // ~1e-8 sigma_max: H is ~1e-6, not 0 (the float64 SVD reference gives ~1e-14).
    const u0 = rng(5).uniform;
    for (const [m, n] of [[256, 64], [64, 256], [64, 64], [7, 5], [33, 130]]) {
      const u = Array.from({ length: m }, () => Math.floor(u0() * 200) - 100 || 1), v = Array.from({ length: n }, () => Math.floor(u0() * 200) - 100 || 1);
      const A = Float64Array.from({ length: m * n }, (_, i) => u[Math.floor(i / n)]! * v[i % n]!);
      expect(refEntropy(A, null, m, n), `${m}x${n} reference`).toBeLessThan(1e-12);
      for (const isa of isas()) {
        const h = H(A, null, m, n, isa);
        expect(h, `${m}x${n} ${isa}`).toBeGreaterThanOrEqual(0);
        expect(h, `${m}x${n} ${isa}`).toBeLessThan(3e-6);
      }
    }
    for (const len of [1, 2, 64, 1000]) {
      const x = gaussian(len, len);
      for (const isa of isas()) {
        expect(H(x, null, 1, len, isa)).toBe(0);
        expect(H(x, null, len, 1, isa)).toBe(0);
        expect(H(x, gaussian(len, len + 1), len, 1, isa)).toBe(0);
      }
    }
  });

  it('rank-deficient products (rank r, float32-rounded): near the reference (abs 2e-6), exp(H) <= r + 1e-4', () => {
    for (const [m, n, r] of [[64, 64, 1], [256, 64, 1], [256, 64, 3], [64, 256, 8], [100, 40, 39], [176, 64, 16], [63, 65, 2]]) {
      const g = rng(m * 3 + n * 5 + r).gauss;
      const U = Float64Array.from({ length: m * r }, g), V = Float64Array.from({ length: r * n }, g);
      const A = new Float64Array(m * n);
      for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) { let s = 0; for (let q = 0; q < r; q++) s += U[i * r + q]! * V[q * n + j]!; A[i * n + j] = Math.fround(s); }
      const want = refEntropy(A, null, m, n);
      expect(Math.exp(want), `${m}x${n} r=${r} reference`).toBeLessThanOrEqual(r + 1e-4);
      for (const isa of isas()) {
        const got = H(A, null, m, n, isa);
        near(got, want, 0, 2e-6, `${m}x${n} r=${r} ${isa}`);
        expect(Math.exp(got), `${m}x${n} r=${r} ${isa}`).toBeLessThanOrEqual(r + 1e-4);
      }
      // As a difference: W + (rank r) - W, W not exactly representable (the difference then also
      // holds W's float32 rounding, ~1e-7 |W|; the reference sees the same values).
      const W = gaussian(m * n, r + 99, 0.01), C = Float64Array.from(W, (w, i) => Math.fround(w + A[i]!));
      const w32 = Float64Array.from(W, Math.fround);
      near(H(C, w32, m, n), refEntropy(C, w32, m, n), 0, 2e-6, `${m}x${n} r=${r} as a difference`);
    }
  });

  it('scale invariance (H(cA) = H(A)), sign and order of the pair (H(A-B) = H(B-A)), transpose (H(A^T) = H(A))', () => {
    for (const [m, n] of [[7, 5], [63, 65], [256, 64], [33, 130]]) {
      const A = Float64Array.from(gaussian(m * n, m * n), Math.fround), B = Float64Array.from(gaussian(m * n, m * n + 1), Math.fround);
      for (const isa of isas()) {
        const h = H(A, null, m, n, isa), hab = H(A, B, m, n, isa);
        // Powers of two scale every step exactly: bit-identical (2^+-100: values near 1e+-30).
        for (const c of [2 ** -100, 2 ** -20, 0.5, 2, 2 ** 20, 2 ** 100]) {
          expect(H(A.map((x) => x * c), null, m, n, isa), `${m}x${n} c=${c} ${isa}`).toBe(h);
          expect(H(A.map((x) => x * c), B.map((x) => x * c), m, n, isa)).toBe(hab);
        }
        // Other factors round the float32 inputs: equal to ~1e-7 relative of sigma, far less in H.
        for (const c of [3, 1e-3, -7.5e5, 1e-30]) near(H(A.map((x) => Math.fround(x * c)), null, m, n, isa), h, 1e-6, 0, `${m}x${n} c=${c} ${isa}`);
        expect(H(B, A, m, n, isa)).toBe(hab);
        expect(H(A.map((x) => -x), null, m, n, isa)).toBe(h);
        const T = new Float64Array(m * n);
        for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) T[j * m + i] = A[i * n + j]!;
        near(H(T, null, n, m, isa), h, 1e-13, 0, `${m}x${n} transpose ${isa}`);
      }
    }
  });

  it('ordering the evidence relies on: one low-rank update < the sum of two < a full-rank change', () => {
    const m = 256, n = 64, g = rng(8).gauss;
    const update = (r: number) => {
      const U = Float64Array.from({ length: m * r }, g), V = Float64Array.from({ length: r * n }, g), X = new Float64Array(m * n);
      for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) { let s = 0; for (let q = 0; q < r; q++) s += U[i * r + q]! * V[q * n + j]!; X[i * n + j] = s; }
      return X;
    };
    const W = gaussian(m * n, 9), d1 = update(4), d2 = update(4), noise = gaussian(m * n, 10);
    const child = Float64Array.from(W, (w, i) => w + d1[i]!), sibling = Float64Array.from(W, (w, i) => w + d2[i]!);
    const one = H(child, W, m, n), two = H(child, sibling, m, n), full = H(child, Float64Array.from(child, (c, i) => c + noise[i]!), m, n);
    expect(Math.exp(one)).toBeLessThanOrEqual(4 + 1e-3);
    expect(two).toBeGreaterThan(one);
    expect(Math.exp(two)).toBeLessThanOrEqual(8 + 1e-3);
    expect(full).toBeGreaterThan(two);
    near(full, refEntropy(Float64Array.from(child, Math.fround), Float64Array.from(child, (c, i) => Math.fround(c + noise[i]!)), m, n), 1e-12);
  });

  it('bad arguments: TypeError / RangeError naming spectralEntropy', () => {
    const a = new Uint8Array(24), b = new Uint8Array(24);
    const k = kernels.spectralEntropy as (...args: unknown[]) => number;
    expect(() => k(a, b, 2, 3)).toThrow(TypeError);
    expect(() => k(a, b, 2, 3)).toThrow(/spectralEntropy/);
    expect(() => k(a, b, 2, 3, 'I8')).toThrow(/spectralEntropy: dtype must be/);
    expect(() => k(a, b, 2, 3, 'F32', 'mmx')).toThrow(/spectralEntropy: isa must be/);
    expect(() => k(a, b, 2, 3, 'F32', 5)).toThrow(TypeError);
    expect(() => k([1, 2], b, 2, 3, 'F32')).toThrow(/spectralEntropy: a/);
    expect(() => k(a, 'x', 2, 3, 'F32')).toThrow(/spectralEntropy: b/);
    for (const [x, y, rows, cols, dtype] of [
      [new Uint8Array(20), b, 2, 3, 'F32'], [a, new Uint8Array(28), 2, 3, 'F32'], [a, null, 3, 3, 'F32'],
      [new Uint8Array(12), new Uint8Array(10), 2, 3, 'F16'], [new Uint8Array(24), new Uint8Array(24), 2, 3, 'F64'],
    ] as const) {
      expect(() => k(x, y, rows, cols, dtype), `${x.length} ${y?.length} ${rows}x${cols} ${dtype}`).toThrow(RangeError);
      expect(() => k(x, y, rows, cols, dtype)).toThrow(/spectralEntropy: a and b must hold rows \* cols = \d+ elements of/);
    }
    expect(() => k(new Uint8Array(12), new Uint8Array(11), 2, 3, 'F16')).toThrow(/spectralEntropy: b: byte length 11 is not a multiple of 2/);
    expect(() => k(a, b, 2.5, 3, 'F32')).toThrow(/spectralEntropy: rows must be an integer/);
    expect(() => k(a, b, 2, -3, 'F32')).toThrow(/spectralEntropy: cols must be an integer/);
    expect(() => k(a, b, '2', 3, 'F32')).toThrow(/spectralEntropy: rows must be a number/);
    expect(() => k(new Uint8Array(0), null, 2 ** 16 + 1, 0, 'F32')).toThrow(RangeError);
    // min(rows, cols) above 4096 is refused before any work (an n^3 eigen-solve per call).
    const bigSide = 4097, big = new Uint8Array(bigSide * bigSide * 2);
    expect(() => k(big, null, bigSide, bigSide, 'F16')).toThrow(/spectralEntropy: min\(rows, cols\) must be <= 4096/);
    // A failed call with an isa leaves the active ISA as it was.
    const before = cpuAddon().capabilities().isa;
    expect(() => k(a, b, 2, 3, 'F32', 'bogus')).toThrow();
    k(a, b, 2, 3, 'F32', 'scalar');
    expect(cpuAddon().capabilities().isa).toBe(before);
  });
});

// ---- the stats runner's spectrum pass ------------------------------------------------------------

const M64 = (1n << 64n) - 1n;

/** stats_runner.cc's sample_indices: partial Fisher-Yates driven by splitmix64, sorted. */
function sampleIndices(n: number, keep: number, seed: bigint): number[] {
  const all = Array.from({ length: n }, (_, i) => i);
  if (keep >= n) return all;
  let s = seed;
  const next = () => {
    s = (s + 0x9e3779b97f4a7c15n) & M64;
    let z = s;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M64;
    return z ^ (z >> 31n);
  };
  for (let i = 0; i < keep; i++) {
    const j = i + Number(next() % BigInt(n - i));
    [all[i], all[j]] = [all[j]!, all[i]!];
  }
  return all.slice(0, keep).sort((x, y) => x - y);
}

/** stats_runner.cc's spectrum_block: the rows and columns the pass reads (seeded by name and shape). */
function spectrumBlock(name: string, rows: number, cols: number, short = 64, long = 256) {
  let seed = 1469598103934665603n;
  for (const c of Buffer.from(name, 'utf8')) seed = ((seed ^ BigInt(c)) * 1099511628211n) & M64;
  seed ^= (BigInt(rows) * 0x9e3779b97f4a7c15n + BigInt(cols)) & M64;
  const tall = rows >= cols;
  return { rows: sampleIndices(rows, tall ? long : short, seed), cols: sampleIndices(cols, tall ? short : long, seed ^ 0x5bd1e995n) };
}

let dir: string;
beforeAll(async () => { dir = await makeTempDir('mother-spectrum-'); });
afterAll(async () => { await removeTempDir(dir); });

type Spec = { name: string; shape: number[] };
type Fixture = { tensors: JobTensor[]; N: number; specs: Spec[]; files: string[]; values: Float64Array[][] /* [t][k], float32 as the kernel sees them */ };

const MIXED: ComputeDType[] = ['F32', 'BF16', 'F16', 'F64', 'F32', 'BF16'];

/** N related models (a base plus per-model noise, low-rank for odd k) with per-model dtypes. */
async function fixture(tag: string, N: number, specs: Spec[], dtypeOf: (t: number, k: number) => ComputeDType = (_t, k) => MIXED[k % MIXED.length]!,
                       edit?: (t: number, k: number, v: Float64Array) => void): Promise<Fixture> {
  const values: Float64Array[][] = specs.map(() => []);
  const { tensors, files } = await writeJobModels(dir, tag, N, specs, (t, k) => {
    const numel = specs[t]!.shape.reduce((a, b) => a * b, 1);
    const base = randomValues(numel, 1000 + t, { normal: true });
    const own = randomValues(numel, 77 + 100 * k + t, { normal: true, scale: 0.05 * (k + 1) });
    const v = base.map((b, i) => b + own[i]!);
    edit?.(t, k, v);
    values[t]![k] = Float64Array.from(storedValues(v, dtypeOf(t, k)), Math.fround);
    return v;
  }, dtypeOf);
  return { tensors: tensors as JobTensor[], N, specs, files, values };
}

const NONE = { kurtosis: false, sumsq: false, sumabs: false, maxabs: false, dot: false, rank: false };
const runSpectrum = (f: Fixture, extra: Partial<StatsJob> = {}, token = new (cpuAddon().CancelToken)()) =>
  cpuAddon().computeStats({ tensors: f.tensors, models: f.N, ...NONE, spectrum: true, perTensor: true, threads: 2, ...extra } as StatsJob, null, token);

/** The block of model k's tensor t (float32 values) the pass reads, and its shape. */
function blockOf(f: Fixture, t: number, k: number, short?: number, long?: number) {
  const ten = f.tensors[t]!, bl = spectrumBlock(ten.name, ten.rows, ten.cols, short, long);
  const v = f.values[t]![k]!, out = new Float64Array(bl.rows.length * bl.cols.length);
  bl.rows.forEach((r, i) => bl.cols.forEach((c, j) => { out[i * bl.cols.length + j] = v[r * ten.cols + c]!; }));
  return { data: out, R: bl.rows.length, C: bl.cols.length, exact: bl.rows.length === ten.rows && bl.cols.length === ten.cols };
}

/** Every value of the pass equals the kernel on the same block, bit for bit; NaN where no spectrum. */
function checkAgainstKernel(f: Fixture, r: StatsResult, short?: number, long?: number) {
  const N = f.N, T = f.tensors.length, S = r.spectrum!, W = r.weightSpectrum!;
  expect(S.length).toBe(T * N * N);
  expect(W.length).toBe(T * N);
  let exact = 0, sampled = 0;
  for (let t = 0; t < T; t++) {
    const ten = f.tensors[t]!;
    if (!(ten.rows > 1 && ten.cols > 1)) {
      expect([...S.subarray(t * N * N, (t + 1) * N * N)].every(Number.isNaN), `${ten.name}: not a matrix`).toBe(true);
      expect([...W.subarray(t * N, (t + 1) * N)].every(Number.isNaN), `${ten.name}: not a matrix`).toBe(true);
      continue;
    }
    const blocks = Array.from({ length: N }, (_, k) => blockOf(f, t, k, short, long));
    const { R, C } = blocks[0]!;
    expect(Math.min(R, C)).toBeLessThanOrEqual(short ?? 64);
    expect(Math.max(R, C)).toBeLessThanOrEqual(long ?? 256);
    if (blocks[0]!.exact) exact++; else sampled++;
    for (let i = 0; i < N; i++) {
      expect(W[t * N + i], `${ten.name} model ${i}`).toBe(H(blocks[i]!.data, null, R, C));
      expect(S[(t * N + i) * N + i], `${ten.name} diagonal`).toBeNaN();
      for (let j = 0; j < N; j++) {
        if (i === j) continue;
        expect(S[(t * N + i) * N + j], `${ten.name} ${i},${j} symmetric`).toBe(S[(t * N + j) * N + i]);
        expect(S[(t * N + i) * N + j], `${ten.name} ${i},${j}`).toBe(H(blocks[i]!.data, blocks[j]!.data, R, C));
      }
    }
  }
  return { exact, sampled };
}

const SPECS: Spec[] = [
  { name: 'fits', shape: [40, 24] },                    // inside 64 x 256: exact
  { name: 'wide.sampled', shape: [20, 300] },           // short side fits, long side sampled
  { name: 'tall.both', shape: [300, 90] },              // both sides sampled
  { name: 'bias', shape: [37] },                        // 1-D: NaN
  { name: 'row', shape: [1, 50] },                      // one row: NaN (no spectrum to compare)
  { name: 'conv', shape: [6, 4, 3, 3] },                // 6 x 36 view: exact
  { name: 'edge.exact', shape: [64, 256] },             // exactly the block
];

describe('stats runner: spectrum pass', () => {
  it('every pair and model equals the kernel on the sampled block (exact when it fits), mixed dtypes, NaN off matrices', async () => {
    const f = await fixture('mixed', 6, SPECS);
    const r = await runSpectrum(f);
    const seen = checkAgainstKernel(f, r);
    expect(seen).toEqual({ exact: 3, sampled: 2 });
    // Where the tensor fits, the value is the spectrum of the whole matrix: the float64 reference.
    for (const t of [0, 5]) {
      const ten = f.tensors[t]!;
      for (const [i, j] of [[0, 1], [2, 3], [1, 5]] as const)
        near(r.spectrum![(t * 6 + i) * 6 + j]!, refEntropy(f.values[t]![i]!, f.values[t]![j]!, ten.rows, ten.cols), 1e-12, 0, `${ten.name} ${i},${j}`);
      near(r.weightSpectrum![t * 6 + 3]!, refEntropy(f.values[t]![3]!, null, ten.rows, ten.cols), 1e-12, 0, `${ten.name} own`);
    }
    // Bytes: the sampled rows are read whole, per model at its dtype's size; nothing else.
    const size: Record<string, number> = { F32: 4, F16: 2, BF16: 2, F64: 8 };
    let bytes = 0;
    f.tensors.forEach((ten) => {
      if (!(ten.rows > 1 && ten.cols > 1)) return;
      const bl = spectrumBlock(ten.name, ten.rows, ten.cols);
      ten.sources.forEach((s) => { bytes += bl.rows.length * ten.cols * size[s.dtype]!; });
    });
    expect(r.bytesRead).toBe(bytes);
    expect(r.sumsq).toBeUndefined();
    expect(r.rank).toBeUndefined();
  });

  it('small spectrumShort/spectrumLong sample every tensor; short == long; the defaults are 64 and 256', async () => {
    const f = await fixture('caps', 4, SPECS);
    for (const [short, long] of [[8, 16], [5, 5], [1, 7], [24, 40], [64, 4096]] as const) {
      const r = await runSpectrum(f, { spectrumShort: short, spectrumLong: long });
      checkAgainstKernel(f, r, short, long);
    }
    const dflt = await runSpectrum(f), explicit = await runSpectrum(f, { spectrumShort: 64, spectrumLong: 256 });
    expect([...dflt.spectrum!].map(String)).toEqual([...explicit.spectrum!].map(String));
    // short = 1: every block is a vector, H = 0 wherever the difference is not zero.
    const one = await runSpectrum(f, { spectrumShort: 1, spectrumLong: 300 });
    for (const t of [0, 1, 2, 5, 6]) expect(one.weightSpectrum![t * 4 + 1]).toBe(0);
  });

  it('deterministic: threads 1..4 and reruns give bit-identical results; combined with the other statistics, nothing changes', async () => {
    const f = await fixture('threads', 5, SPECS);
    const base = await runSpectrum(f, { threads: 1 });
    const key = (r: StatsResult) => [...r.spectrum!, ...r.weightSpectrum!].map(String);
    for (const threads of [1, 2, 3, 4]) {
      const r = await runSpectrum(f, { threads });
      expect(r.threads).toBe(threads);
      expect(key(r), `threads ${threads}`).toEqual(key(base));
      expect(r.bytesRead).toBe(base.bytesRead);
    }
    expect(key(await runSpectrum(f, { threads: 3 }))).toEqual(key(base));
    // In one job with the chunked pass and the rank pass: the same spectra, and the same other sums.
    const all = { kurtosis: true, sumsq: true, sumabs: false, maxabs: false, dot: true, rank: true };
    const both = await runSpectrum(f, { ...all, threads: 3 });
    const without = await runSpectrum(f, { ...all, spectrum: false, threads: 3 });
    expect(key(both)).toEqual(key(base));
    for (const k of ['sumsq', 'dot', 'rank'] as const) expect([...both[k]!].map(String), k).toEqual([...without[k]!].map(String));
    expect([...both.moments!.kurtosis].map(String)).toEqual([...without.moments!.kurtosis].map(String));
    expect(without.spectrum).toBeUndefined();
    expect(both.bytesRead).toBe(without.bytesRead + base.bytesRead);
    checkAgainstKernel(f, both);
  });

  it('identical pairs and NaN/Inf: NaN only where the block sees them', async () => {
    // Model 2 = model 1 on 'fits'; model 3 has a NaN in 'fits' and an Inf in 'tall.both' at a
    // position the block reads, and a NaN in 'wide.sampled' at a column it does not read.
    const wideBlock = spectrumBlock('wide.sampled', 20, 300), tallBlock = spectrumBlock('tall.both', 300, 90);
    const unread = Array.from({ length: 300 }, (_, c) => c).find((c) => !wideBlock.cols.includes(c))!;
    let model1: Float64Array | undefined;
    const f = await fixture('nan', 4, SPECS, () => 'F32', (t, k, v) => {
      if (t === 0 && k === 1) model1 = Float64Array.from(v);
      if (t === 0 && k === 2) v.set(model1!);
      if (t === 0 && k === 3) v[17] = NaN;
      if (t === 2 && k === 3) v[tallBlock.rows[5]! * 90 + tallBlock.cols[7]!] = Infinity;
      if (t === 1 && k === 3) v[4 * 300 + unread] = NaN;
    });
    const r = await runSpectrum(f), N = 4, S = r.spectrum!, W = r.weightSpectrum!;
    expect(S[(0 * N + 1) * N + 2]).toBeNaN();                          // identical
    expect(S[(0 * N + 2) * N + 1]).toBeNaN();
    for (const j of [0, 1, 2]) { expect(S[(0 * N + 3) * N + j]).toBeNaN(); expect(S[(2 * N + 3) * N + j]).toBeNaN(); }
    expect(W[0 * N + 3]).toBeNaN();
    expect(W[2 * N + 3]).toBeNaN();
    for (const j of [0, 1, 2]) expect(Number.isFinite(S[(1 * N + 3) * N + j])).toBe(true);  // not in the block
    expect(Number.isFinite(W[1 * N + 3])).toBe(true);
    expect(Number.isFinite(S[(0 * N + 0) * N + 1])).toBe(true);
    checkAgainstKernel(f, r);
  });

  it('one model, and tensors that are all 1-D: NaN tables of the right size, no reads', async () => {
    const f = await fixture('single', 1, SPECS);
    const r = await runSpectrum(f);
    expect([...r.spectrum!].every(Number.isNaN)).toBe(true);
    checkAgainstKernel(f, r);
    const v = await fixture('vectors', 3, [{ name: 'a', shape: [10] }, { name: 'b', shape: [1, 4] }, { name: 'c', shape: [4, 1] }]);
    const rv = await runSpectrum(v);
    expect(rv.spectrum!.length).toBe(27);
    expect([...rv.spectrum!, ...rv.weightSpectrum!].every(Number.isNaN)).toBe(true);
    expect(rv.bytesRead).toBe(0);
  });

  it('validation: spectrumShort / spectrumLong out of range or not integers -> E_JOB_RANGE / E_JOB_INVALID', async () => {
    const f = await fixture('bad', 2, [{ name: 'x', shape: [8, 8] }]);
    const cases: [Partial<StatsJob>, string, RegExp][] = [
      [{ spectrumShort: 0 }, 'E_JOB_RANGE', /spectrumShort/],
      [{ spectrumShort: 4097 }, 'E_JOB_RANGE', /spectrumShort/],
      [{ spectrumShort: 2.5 }, 'E_JOB_RANGE', /spectrumShort/],
      [{ spectrumShort: -1 }, 'E_JOB_RANGE', /spectrumShort/],
      [{ spectrumShort: NaN }, 'E_JOB_RANGE', /spectrumShort/],
      [{ spectrumLong: 0 }, 'E_JOB_RANGE', /spectrumLong/],
      [{ spectrumLong: 65537 }, 'E_JOB_RANGE', /spectrumLong/],
      [{ spectrumLong: 32 }, 'E_JOB_RANGE', /spectrumLong.*>= spectrumShort \(64\)/],
      [{ spectrumShort: 100, spectrumLong: 99 }, 'E_JOB_RANGE', /spectrumLong.*>= spectrumShort \(100\)/],
      [{ spectrumShort: '8' as never }, 'E_JOB_INVALID', /spectrumShort/],
      [{ spectrumLong: null as never }, 'E_JOB_INVALID', /spectrumLong/],
      [{ spectrum: 'yes' as never }, 'E_JOB_INVALID', /spectrum/],
    ];
    for (const [extra, code, msg] of cases) {
      const err = (await runSpectrum(f, extra).catch((e: unknown) => e)) as { code: string; name: string; message: string };
      expect(err?.code, JSON.stringify(extra)).toBe(code);
      expect(err.message).toMatch(msg);
      expect(err.name).toBe('Error');
    }
    // Limits themselves are fine; a larger short side alone raises the default long side with it.
    checkAgainstKernel(f, await runSpectrum(f, { spectrumShort: 4096, spectrumLong: 65536 }), 4096, 65536);
    checkAgainstKernel(f, await runSpectrum(f, { spectrumShort: 300 }), 300, 300);
    checkAgainstKernel(f, await runSpectrum(f, { spectrumShort: 1, spectrumLong: 1 }), 1, 1);
  });

  it('cancel mid-pass -> AbortError after joining; an already-cancelled token rejects; the next call works', async () => {
    // 60 tensors x (8 models + 28 pairs) of 256 x 64 blocks: long enough to cancel in the middle.
    const f = await fixture('cancel', 8, [{ name: 'w', shape: [300, 300] }], () => 'F32');
    const many: Fixture = { ...f, tensors: Array.from({ length: 60 }, () => f.tensors[0]!) };
    for (const threads of [1, 2, 3]) {
      const token = new (cpuAddon().CancelToken)();
      let calls = 0;
      const p = cpuAddon().computeStats({ tensors: many.tensors, models: 8, ...NONE, spectrum: true, perTensor: true, threads } as StatsJob,
        () => { if (++calls === 1) token.cancel(); }, token);
      setTimeout(() => token.cancel(), 30);
      const t0 = performance.now();
      const err = (await p.catch((e: unknown) => e)) as { name: string; code: string };
      expect(err.name, `threads ${threads}`).toBe('AbortError');
      expect(err.code).toBe('ABORT_ERR');
      expect(performance.now() - t0).toBeLessThan(5000);
    }
    const pre = new (cpuAddon().CancelToken)();
    pre.cancel();
    await expect(runSpectrum(many, {}, pre)).rejects.toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
    checkAgainstKernel(f, await runSpectrum(f));
  });
});

describe('addSpectrumStatistics', () => {
  it('puts each family\'s values at its members (NaN elsewhere), skips tensors identical inside the family', async () => {
    const specs: Spec[] = [{ name: 'a.weight', shape: [30, 20] }, { name: 'frozen', shape: [12, 12] }, { name: 'a.bias', shape: [20] }];
    const f = await fixture('family', 5, specs, () => 'F32', (t, k, v) => {
      if (t === 1) v.set(randomValues(144, 5, { normal: true }));  // the same in every model
    });
    const group = catalogueGroup(await Promise.all(f.files.map((p) => openModel(p))));
    const gs = await groupStatistics(group, { threads: 2 });
    const N = 5, T = group.tensors.length;
    const names = group.tensors.map((t) => t.name);
    const out = await addSpectrumStatistics(group, gs.stats, [[0, 2, 3], [1, 4]], { threads: 2 });
    const S = gs.stats.spectrum!, W = gs.stats.weightSpectrum!;
    expect(S.length).toBe(T * N * N);
    const wt = names.indexOf('a.weight'), fr = names.indexOf('frozen'), bias = names.indexOf('a.bias');
    const ti = specs.findIndex((s) => s.name === 'a.weight');
    const fam = (i: number) => ([0, 2, 3].includes(i) ? 0 : 1);
    for (let i = 0; i < N; i++) {
      near(W[wt * N + i]!, refEntropy(f.values[ti]![i]!, null, 30, 20), 1e-12, 0, `own ${i}`);
      expect(W[fr * N + i]).toBeNaN();
      expect(W[bias * N + i]).toBeNaN();
      for (let j = 0; j < N; j++) {
        const v = S[(wt * N + i) * N + j]!;
        if (i === j || fam(i) !== fam(j)) { expect(v, `${i},${j}`).toBeNaN(); continue; }
        expect(v, `${i},${j}`).toBe(H(f.values[ti]![i]!, f.values[ti]![j]!, 30, 20));
        expect(S[(fr * N + i) * N + j]).toBeNaN();
      }
    }
    // Only the moving 2-D tensor's bytes were read: 5 models x 30 x 20 float32.
    expect(out.bytesRead).toBe(5 * 30 * 20 * 4);
    // Custom block caps pass through (a 30 x 20 tensor sampled to 8 x 16).
    const small = await addSpectrumStatistics(group, { ...gs.stats, spectrum: undefined, weightSpectrum: undefined }, [[0, 1]], { threads: 1, short: 8, long: 16 });
    expect(small.bytesRead).toBe(2 * 16 * 20 * 4);
  });
});
