// The CPU stats runner's threading: each thread takes an equal share of every chunk (no barriers
// per chunk), threads > 0 keep private sums merged in thread order. Results must not depend on
// scheduling (bit-identical reruns), must agree across thread counts to rounding, and every
// thread share shape (empty shares, shares cutting packed small tensors) must be right.
// Also: the rank pass on F64 sources counts float32 rounding as noise (the kernel is float32).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { cpuAddon, type ComputeDType, type JobTensor, type StatsJob } from '../src/native.js';
import { makeTempDir, randomValues, removeTempDir, writeSafetensors } from './helpers/safetensors.js';

let dir: string;
beforeAll(async () => { dir = await makeTempDir('mother-kernels-runner-'); });
afterAll(async () => { await removeTempDir(dir); });

async function models(tag: string, N: number, specs: { name: string; shape: number[]; dtype: ComputeDType }[],
                      value?: (t: number, k: number, base: Float64Array) => Float64Array) {
  const files: string[] = [], offsets: Record<string, number>[] = [];
  for (let k = 0; k < N; k++) {
    const ts = specs.map((s, t) => {
      const numel = s.shape.reduce((a, b) => a * b, 1);
      const base = randomValues(numel, 1000 + t, { normal: true });
      const own = randomValues(numel, 77 + 100 * k + t, { normal: true, scale: 0.05 * (k + 1) });
      const v = value ? value(t, k, base) : base.map((b, i) => b + own[i]!);
      return { name: s.name, dtype: s.dtype, shape: s.shape, data: v };
    });
    const w = await writeSafetensors(join(dir, `${tag}-${k}.safetensors`), ts, { align: 1 });
    files.push(w.path);
    offsets.push(w.offsets);
  }
  const tensors: JobTensor[] = specs.map((s) => {
    const rows = s.shape.length >= 2 ? s.shape[0]! : 1;
    const numel = s.shape.reduce((a, b) => a * b, 1);
    return { name: s.name, rows, cols: numel / rows, sources: files.map((f, k) => ({ file: f, offset: offsets[k]![s.name]!, dtype: s.dtype })) };
  });
  return { tensors, N };
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

  it('1..5 threads, tiny and default chunks, perTensor on/off: equal to rounding, reruns bit-identical', async () => {
    const m = await models('thr', 6, specs);
    for (const perTensor of [false, true])
      for (const chunkBytes of [undefined, 4 * 6 * 3, 4 * 6 * 50 + 4]) {
        const base = await run(m, { perTensor, chunkBytes, threads: 1 });
        for (const threads of [2, 3, 5]) {
          const r = await run(m, { perTensor, chunkBytes, threads });
          const again = await run(m, { perTensor, chunkBytes, threads });
          expect(r.threads).toBe(threads);
          expect(r.bytesRead).toBe(base.bytesRead);
          for (const key of ['sumsq', 'sumabs', 'dot'] as const) {
            expect(Array.from(again[key]!)).toEqual(Array.from(r[key]!));
            // float32 lanes over blocks that start where each thread's share starts: ~1e-7 relative
            r[key]!.forEach((v, i) => expect(Math.abs(v - base[key]![i]!), `${key}[${i}] threads ${threads}`).toBeLessThanOrEqual(1e-6 * Math.abs(base[key]![i]!)));
          }
          expect(Array.from(again.maxabs!)).toEqual(Array.from(r.maxabs!));
          // the SIMD body rounds x - y to float32, the scalar tail does not: one float32 ulp
          r.maxabs!.forEach((v, i) => expect(Math.abs(v - base.maxabs![i]!)).toBeLessThanOrEqual(2 ** -23 * Math.abs(base.maxabs![i]!)));
          expect(Array.from(again.moments!.kurtosis)).toEqual(Array.from(r.moments!.kurtosis));
          expect(Array.from(r.moments!.n)).toEqual(Array.from(base.moments!.n));
          const near = (v: number, w: number, rel: number, abs: number) => (Number.isNaN(w) ? Number.isNaN(v) : Math.abs(v - w) <= rel * Math.abs(w) + abs);
          r.moments!.kurtosis.forEach((v, i) => expect(near(v, base.moments!.kurtosis[i]!, 1e-11, 1e-12), `kurtosis[${i}]`).toBe(true));
          r.moments!.mean.forEach((v, i) => expect(near(v, base.moments!.mean[i]!, 1e-12, 1e-15), `mean[${i}]`).toBe(true));
        }
      }
  });

  it('NaN in one thread share only: NaN pairs and nonfinite counts survive the merge', async () => {
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
});
