// The CPU stats runner's threading: threads take fixed items (slices of the chunks) from a counter,
// reduce each while it is in cache and fold the results in item order through a ring of slots (no
// barrier per chunk). The items do not depend on the thread count, so results must be
// bit-identical for 1..5 threads and across reruns; every item shape (items cutting packed small
// tensors, several items per chunk, > 64 tensors per chunk with perTensor) must be right.
// Also: the rank pass on F64 sources counts float32 rounding as noise (the kernel is float32).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpuAddon, type ComputeDType, type JobTensor, type StatsJob } from '../src/native.js';
import { makeTempDir, randomValues, removeTempDir, writeJobModels } from './helpers/safetensors.js';

let dir: string;
beforeAll(async () => { dir = await makeTempDir('mother-kernels-runner-'); });
afterAll(async () => { await removeTempDir(dir); });

async function models(tag: string, N: number, specs: { name: string; shape: number[]; dtype: ComputeDType }[],
                      value?: (t: number, k: number, base: Float64Array) => Float64Array) {
  const { tensors } = await writeJobModels(dir, tag, N, specs, (t, k) => {
    const numel = specs[t]!.shape.reduce((a, b) => a * b, 1);
    const base = randomValues(numel, 1000 + t, { normal: true });
    const own = randomValues(numel, 77 + 100 * k + t, { normal: true, scale: 0.05 * (k + 1) });
    return value ? value(t, k, base) : base.map((b, i) => b + own[i]!);
  }, (t) => specs[t]!.dtype);
  return { tensors: tensors as JobTensor[], N };
}

const ALL = { kurtosis: true, sumsq: true, sumabs: true, maxabs: true, dot: true, rank: false };
const run = (m: { tensors: JobTensor[]; N: number }, extra: Partial<StatsJob>) =>
  cpuAddon().computeStats({ tensors: m.tensors, models: m.N, ...ALL, perTensor: false, threads: 1, ...extra } as StatsJob,
    null, new (cpuAddon().CancelToken)());

describe('stats runner threads', () => {
  const specs = [
    { name: 'big', shape: [97, 131], dtype: 'F32' as ComputeDType },
    { name: 'b1', shape: [7], dtype: 'BF16' as ComputeDType },
    { name: 'b2', shape: [3, 5], dtype: 'F16' as ComputeDType },
    { name: 'w64', shape: [33, 9], dtype: 'F64' as ComputeDType },
    { name: 'one', shape: [1], dtype: 'F32' as ComputeDType },
  ];

  it('1..5 threads, tiny and default chunks, perTensor on/off: bit-identical to 1 thread and to reruns', async () => {
    const m = await models('thr', 6, specs);
    const same = (a: Float64Array | undefined, b: Float64Array | undefined, what: string) =>
      expect(Array.from(a!).map(String), what).toEqual(Array.from(b!).map(String));  // NaN-safe, exact
    for (const perTensor of [false, true])
      for (const chunkBytes of [undefined, 4 * 6 * 3, 4 * 6 * 50 + 4]) {
        const base = await run(m, { perTensor, chunkBytes, threads: 1 });
        for (const threads of [2, 3, 5]) {
          const r = await run(m, { perTensor, chunkBytes, threads });
          const again = await run(m, { perTensor, chunkBytes, threads });
          expect(r.threads).toBe(threads);
          expect(r.bytesRead).toBe(base.bytesRead);
          for (const key of ['sumsq', 'sumabs', 'maxabs', 'dot'] as const) {
            same(r[key], base[key], `${key} threads ${threads} perTensor ${perTensor} chunk ${chunkBytes}`);
            same(again[key], r[key], `${key} rerun`);
          }
          for (const key of ['n', 'nonfinite', 'mean', 'm2', 'kurtosis'] as const) same(r.moments![key], base.moments![key], `moments.${key}`);
        }
      }
  });

  it('several items per chunk and > 64 tensors per chunk (perTensor): same as one thread, near the float64 reference', async () => {
    const big = await models('big', 3, [{ name: 'w', shape: [300, 700], dtype: 'F32' }]);  // 210k elements: 7 items
    const r1 = await run(big, { threads: 1 }), r2 = await run(big, { threads: 2 });
    expect(Array.from(r2.sumsq!)).toEqual(Array.from(r1.sumsq!));
    expect(Array.from(r2.moments!.kurtosis)).toEqual(Array.from(r1.moments!.kurtosis));
    // float64 reference of one pair and one model's kurtosis
    const vals = (k: number) => {
      const base = randomValues(210000, 1000, { normal: true }), own = randomValues(210000, 77 + 100 * k, { normal: true, scale: 0.05 * (k + 1) });
      return base.map((b, i) => Math.fround(b + own[i]!));
    };
    const a = vals(0), b = vals(2);
    let sq = 0;
    for (let i = 0; i < a.length; i++) sq += (a[i]! - b[i]!) ** 2;
    expect(Math.abs(r1.sumsq![2] - sq) / sq).toBeLessThan(1e-6);
    const mean = a.reduce((s, v) => s + v, 0) / a.length;
    let m2 = 0, m4 = 0;
    for (const v of a) { const d = v - mean; m2 += d * d; m4 += d ** 4; }
    expect(Math.abs(r1.moments!.kurtosis[0]! - (a.length * m4 / (m2 * m2) - 3))).toBeLessThan(1e-9);

    const many = Array.from({ length: 150 }, (_, t) => ({ name: `b${t}`, shape: [5 + (t % 7)], dtype: 'F32' as ComputeDType }));
    const mm = await models('many', 4, many);
    const p1 = await run(mm, { perTensor: true, threads: 1 }), p3 = await run(mm, { perTensor: true, threads: 3 });
    expect(Array.from(p3.sumsq!)).toEqual(Array.from(p1.sumsq!));
    expect(Array.from(p3.maxabs!)).toEqual(Array.from(p1.maxabs!));
    // each tensor's matrix is its own: tensor 149 (shape [5 + 149 % 7]) against a direct sum
    const t = 149, n = 5 + (t % 7);
    const v = (k: number) => {
      const base = randomValues(n, 1000 + t, { normal: true }), own = randomValues(n, 77 + 100 * k + t, { normal: true, scale: 0.05 * (k + 1) });
      return base.map((x, i) => Math.fround(x + own[i]!));
    };
    const x0 = v(0), x3 = v(3);
    const want = x0.reduce((s, x, i) => s + (x - x3[i]!) ** 2, 0);
    expect(Math.abs(p1.sumsq![t * 16 + 3] - want) / want).toBeLessThan(1e-6);
  });

  it('NaN in one item only: NaN pairs and nonfinite counts survive the fold', async () => {
    const m = await models('nan', 4, [{ name: 'x', shape: [64, 16], dtype: 'F32' }], (_t, k, base) => {
      const v = base.map((b) => b + 0.01 * k);
      if (k === 2) v[1000] = NaN;  // in the second half: thread 1's share with 2 threads
      return v;
    });
    const r = await run(m, { threads: 2 });
    expect(r.maxabs![0 * 4 + 2]).toBeNaN();
    expect(r.sumsq![2 * 4 + 3]).toBeNaN();
    expect(r.maxabs![0 * 4 + 1]).toBeCloseTo(0.01, 6);
    expect(Array.from(r.moments!.nonfinite)).toEqual([0, 0, 1, 0]);
  });

  it('rank pass on F64 sources: float32 rounding of the kernel input is noise, not rank', async () => {
    // Values with more than float32's digits: the kernel's input rounding is ~2^-24 |W|. A rank-2
    // change well above it must read 2, identical models 0.
    const rows = 40, cols = 30;
    const m = await models('r64', 3, [{ name: 'w', shape: [rows, cols], dtype: 'F64' }], (_t, k, base) => {
      const v = Float64Array.from(base, (b, i) => b + 1e-9 * Math.sin(i));
      if (k === 1) for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) v[i * cols + j]! += 1e-2 * (Math.sin(i) * Math.cos(j) + Math.cos(2 * i) * Math.sin(3 * j));
      return v;
    });
    const r = await cpuAddon().computeStats({ tensors: m.tensors, models: 3, kurtosis: false, sumsq: false, sumabs: false,
      maxabs: false, dot: false, rank: true, perTensor: true, threads: 2 } as StatsJob, null, new (cpuAddon().CancelToken)());
    expect(r.rank![0 * 3 + 1]).toBe(2);
    expect(r.rank![0 * 3 + 2]).toBe(0);
    expect(r.rank![1 * 3 + 2]).toBe(2);
  });

  it('rank pass: a pair whose matrix holds NaN/Inf has rank NaN (the kernel says -1), as kernels.rank', async () => {
    // The graph drops non-finite ranks; a -1 would be summed into the LoRA distance as a rank.
    const m = await models('rnan', 3, [{ name: 'w', shape: [6, 5], dtype: 'F32' }], (_t, k, base) => {
      const v = Float64Array.from(base);
      if (k === 2) v[7] = NaN;
      return v;
    });
    const r = await cpuAddon().computeStats({ tensors: m.tensors, models: 3, kurtosis: false, sumsq: false, sumabs: false,
      maxabs: false, dot: false, rank: true, perTensor: true, threads: 2 } as StatsJob, null, new (cpuAddon().CancelToken)());
    expect(Array.from(r.rank!)).toEqual([0, 0, NaN, 0, 0, NaN, NaN, NaN, 0]);
  });
});
