// diff_rank: known-rank constructions, exact vs randomized agreement, storage rounding noise.
import { describe, expect, it } from 'vitest';
import type { ComputeDType } from '../src/native.js';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { addon, encode, isas, kernels, rng } from './kernels-helpers.js';
import { skipWithoutZoo, ZOO } from './helpers/zoo.js';

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
    // rows * cols * 4 = 2^64 wraps to 0 bytes: must be refused, not run on empty buffers (crashed).
    expect(() => kernels.rank(new Uint8Array(0), new Uint8Array(0), 2 ** 31, 2 ** 31, 'F32')).toThrow(RangeError);
    expect(() => kernels.rank(new Uint8Array(0), new Uint8Array(0), 2 ** 31, 2 ** 30, 'F64')).toThrow(RangeError);
  });
});

// ---- the fast path (QR with column pivoting + certificates) against a float64 reference --------

/** Singular values by one-sided Jacobi in float64 (the method of the old kernel, in JS). */
function refSingularValues(D: Float64Array, m: number, n: number): number[] {
  const k = Math.min(m, n), len = Math.max(m, n);
  const cols = Array.from({ length: k }, (_, c) => {
    const v = new Float64Array(len);
    for (let i = 0; i < len; i++) v[i] = m >= n ? D[i * n + c] : D[c * n + i];
    return v;
  });
  const dot = (x: Float64Array, y: Float64Array) => { let s = 0; for (let i = 0; i < len; i++) s += x[i] * y[i]; return s; };
  for (let sweep = 0; sweep < 80; sweep++) {
    let rotated = false;
    for (let p = 0; p < k; p++)
      for (let q = p + 1; q < k; q++) {
        const x = cols[p], y = cols[q], al = dot(x, x), be = dot(y, y), g = dot(x, y);
        if (Math.abs(g) <= 1e-15 * Math.sqrt(al * be)) continue;
        rotated = true;
        const zeta = (be - al) / (2 * g);
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.hypot(1, zeta));
        const c = 1 / Math.sqrt(1 + t * t), s = c * t;
        for (let i = 0; i < len; i++) { const a = x[i], b = y[i]; x[i] = c * a - s * b; y[i] = s * a + c * b; }
      }
    if (!rotated) break;
  }
  return cols.map((v) => Math.sqrt(dot(v, v)));
}

const UNIT: Record<ComputeDType, number> = { F64: 2 ** -24, F32: 2 ** -24, F16: 2 ** -11, BF16: 2 ** -8 };

/** The rank the kernel must return (its documented tolerance) on the values as stored, and how
 *  far (relative) the nearest singular value is from tol: below ~1e-9 either answer is right. */
function refRank(a: Float64Array, b: Float64Array, m: number, n: number, dtype: ComputeDType, noise = 2) {
  const fa = Float64Array.from(a, Math.fround), fb = Float64Array.from(b, Math.fround);  // the kernel is float32
  let s2 = 0;
  const D = new Float64Array(m * n);
  for (let i = 0; i < m * n; i++) { s2 += fa[i] * fa[i] + fb[i] * fb[i]; D[i] = fa[i] - fb[i]; }
  const sv = refSingularValues(D, m, n), smax = Math.max(0, ...sv);
  const rms = Math.sqrt(s2 / (2 * m * n));
  const tol = Math.max(Math.max(m, n) * 2 ** -52 * smax, noise * UNIT[dtype] * rms * (Math.sqrt(m) + Math.sqrt(n)));
  const margin = sv.length && smax > 0 ? Math.min(...sv.map((s) => Math.abs(s - tol) / tol)) : Infinity;
  return { rank: sv.filter((s) => s > tol).length, margin, tol };
}

/** Orthonormal columns (m x r, row-major) by two-pass Gram-Schmidt of Gaussian columns. */
function orthonormal(m: number, r: number, g: () => number): Float64Array {
  const Q = new Float64Array(m * r);
  for (let c = 0; c < r; c++) {
    const v = Float64Array.from({ length: m }, g);
    for (let pass = 0; pass < 2; pass++)
      for (let p = 0; p < c; p++) {
        let f = 0;
        for (let i = 0; i < m; i++) f += Q[i * r + p] * v[i];
        for (let i = 0; i < m; i++) v[i] -= f * Q[i * r + p];
      }
    const nv = Math.hypot(...v);
    for (let i = 0; i < m; i++) Q[i * r + c] = v[i] / nv;
  }
  return Q;
}

/** W (N(0,1)) and W + U diag(s) V^T: a difference with prescribed singular values s (before storage rounding). */
function withSpectrum(m: number, n: number, s: number[], seed: number) {
  const g = rng(seed).gauss, r = s.length;
  const W = Float64Array.from({ length: m * n }, g), C = Float64Array.from(W);
  const U = orthonormal(m, r, g), V = orthonormal(n, r, g);
  for (let i = 0; i < m; i++)
    for (let k = 0; k < r; k++) {
      const u = U[i * r + k] * s[k];
      for (let j = 0; j < n; j++) C[i * n + j] += u * V[j * r + k];
    }
  return { W, C };
}

describe('rank: fast path vs the float64 Jacobi reference', () => {
  const cmp = (W: Float64Array, C: Float64Array, m: number, n: number, dtype: ComputeDType, label: string,
               opts: { noise?: number } = {}) => {
    const ew = encode(W, dtype), ec = encode(C, dtype);
    const ref = refRank(ec.decoded, ew.decoded, m, n, dtype, opts.noise);
    for (const isa of isas()) {
      const got = kernels.rank(ec.bytes, ew.bytes, m, n, dtype, { ...opts, isa });
      if (ref.margin > 1e-9) expect(got, `${label} ${isa} (reference ${ref.rank}, margin ${ref.margin.toExponential(2)})`).toBe(ref.rank);
      else expect(Math.abs(got - ref.rank), `${label} ${isa} (borderline)`).toBeLessThanOrEqual(1);
    }
    return ref;
  };

  it('random low-rank LoRA-style differences, odd shapes, F32/F16/BF16/F64, every ISA', () => {
    let decided = 0;
    for (const [m, n] of [[64, 64], [65, 33], [33, 65], [97, 80], [8, 200], [130, 129]])
      for (const r of [0, 1, 3, 16, 31])
        for (const dtype of ['F32', 'F16', 'BF16', 'F64'] as ComputeDType[]) {
          if (r > Math.min(m, n)) continue;
          const scale = dtype === 'F32' || dtype === 'F64' ? 1e-3 : 0.1;
          const { W, C } = lora(m, n, r, scale, m * 7919 + n * 31 + r);
          const ref = cmp(W, C, m, n, dtype, `${m}x${n} r=${r} ${dtype}`);
          if (ref.margin > 1e-9) decided++;
          // Well inside the shape (the smallest sigma of B A is not below the rounding): r exactly.
          if (2 * r <= Math.min(m, n)) expect(ref.rank, `${m}x${n} r=${r} ${dtype}`).toBe(r);
        }
    expect(decided).toBeGreaterThan(100);
  });

  it('singular values placed around tol (1.3, 1.05, 0.95, 0.7 x tol) and near-tolerance storage noise', () => {
    for (const [m, n] of [[64, 64], [96, 50], [50, 96]])
      for (const dtype of ['F32', 'BF16'] as ComputeDType[]) {
        const tol = 2 * UNIT[dtype] * (Math.sqrt(m) + Math.sqrt(n));  // rms ~ 1
        for (let seed = 1; seed <= 4; seed++) {
          const s = [300, 20, 1.3, 1.05, 0.95, 0.7, 0.3].map((f) => f * tol * (1 + 0.01 * seed));
          const { W, C } = withSpectrum(m, n, s, seed * 100 + m);
          cmp(W, C, m, n, dtype, `${m}x${n} ${dtype} seed ${seed}`);
        }
      }
    // Rounding noise itself near tol (noise factor 0.6 and 0.9: the certificate must not pass
    // early; the reference decides the count).
    for (const noise of [0.6, 0.9, 1.3]) {
      const { W, C } = lora(80, 80, 5, 0.1, 77);
      cmp(W, C, 80, 80, 'BF16', `BF16 noise ${noise}`, { noise });
    }
  });

  it('full-rank and nearly full-rank differences; one huge singular value next to small ones', () => {
    const g = rng(5).gauss;
    const a = Float64Array.from({ length: 70 * 70 }, g), b = Float64Array.from({ length: 70 * 70 }, g);
    expect(cmp(a, b, 70, 70, 'F32', 'full').rank).toBe(70);
    expect(cmp(a, b, 70, 70, 'BF16', 'full BF16').rank).toBe(70);
    const { W, C } = withSpectrum(60, 60, Array.from({ length: 58 }, (_, i) => 10 ** (-i / 8)), 3);
    cmp(W, C, 60, 60, 'F32', 'decaying spectrum');
    const h = withSpectrum(64, 64, [1e6, 1e-3, 1e-4], 4);  // the eps * smax term dominates
    cmp(h.W, h.C, 64, 64, 'F32', 'huge sigma_max');
    // noise 0: tol = max(m, n) eps sigma_max is below the QR's rounding bound, so no certificate
    // can hold and the Jacobi SVD of all of D answers (storage rounding then counts: full rank).
    const z = lora(48, 40, 5, 1e-3, 12);
    expect(cmp(z.W, z.C, 48, 40, 'F32', 'noise 0', { noise: 0 }).rank).toBe(40);
    expect(cmp(a, a, 70, 70, 'F32', 'noise 0 identical', { noise: 0 }).rank).toBe(0);
  });

  it('randomized path: sketch growth, odd shapes, agrees with the exact path', () => {
    for (const [m, n, r] of [[701, 531, 16], [531, 701, 3], [600, 600, 30]]) {
      const { W, C } = lora(m, n, r, 1e-3, m + n + r);
      const exact = rank(W, C, m, n, 'F32', { exactLimit: 1000 });
      expect(exact, `${m}x${n} exact`).toBe(r);
      for (const isa of isas()) expect(rank(W, C, m, n, 'F32', { exactLimit: 100, isa }), `${m}x${n} r=${r} ${isa}`).toBe(r);
    }
    // Rank 40 needs the sketch to grow past 32 columns (and past 64 with maxRank 100).
    const { W, C } = lora(520, 520, 40, 1e-2, 8);
    expect(rank(W, C, 520, 520, 'BF16', { exactLimit: 100 })).toBe(40);
    expect(rank(W, C, 520, 520, 'BF16', { exactLimit: 100, maxRank: 35 })).toBe(36);
    // maxRank + 10 just below min(rows, cols): the sketch is capped at min(rows, cols) (rounded
    // down to whole vectors), never wider than the matrix.
    const g = rng(31).gauss;
    const a = Float64Array.from({ length: 120 * 106 }, g), b = Float64Array.from({ length: 120 * 106 }, g);
    for (const isa of isas()) {
      expect(rank(a, b, 120, 106, 'F32', { exactLimit: 100, maxRank: 95, isa })).toBe(96);
      expect(rank(a, b, 106, 120, 'F32', { exactLimit: 100, maxRank: 95, isa })).toBe(96);
    }
  });
});

describe('rank on the real zoo (read-only ../shared/zoo; skipped without it, fails without it under CI=true)', () => {
  const zoo = ZOO;
  it('lora and ft splits: every 2-D tensor pair of 4 models equals the float64 reference', (ctx) => {
    skipWithoutZoo('lora')(ctx);
    for (const split of ['lora', 'ft']) {
      const ids = readdirSync(join(zoo, split)).filter((d) => existsSync(join(zoo, split, d, 'model.safetensors'))).sort().slice(0, 4);
      const models = ids.map((d) => {
        const p = join(zoo, split, d, 'model.safetensors'), h = addon.readHeaderSync(p), buf = readFileSync(p);
        return new Map(h.tensors.filter((t) => t.shape.length === 2 && t.dtype === 'F32').map((t) =>
          [t.name, { shape: t.shape, values: Float64Array.from(new Float32Array(buf.buffer.slice(buf.byteOffset + h.dataOffset + t.begin, buf.byteOffset + h.dataOffset + t.end))) }]));
      });
      let compared = 0;
      for (const [name, first] of models[0]!)
        for (let i = 0; i < models.length; i++)
          for (let j = i + 1; j < models.length; j++) {
            const a = models[i]!.get(name), b = models[j]!.get(name);
            if (!a || !b || a.shape.join() !== b.shape.join() || first.shape.join() !== a.shape.join()) continue;
            const [m, n] = a.shape as [number, number];
            const ref = refRank(a.values, b.values, m, n, 'F32');
            const got = kernels.rank(encode(a.values, 'F32').bytes, encode(b.values, 'F32').bytes, m, n, 'F32');
            if (ref.margin > 1e-9) expect(got, `${split} ${name} ${ids[i]} vs ${ids[j]}`).toBe(ref.rank);
            compared++;
          }
      expect(compared).toBeGreaterThan(50);
    }
  });
});
