// Native computeStats against float64 JS references: every dtype, odd sizes, chunk boundaries
// (tiny chunkBytes), perTensor on/off, NaN/Inf, threads; progress, cancellation, truncated files,
// job validation.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { truncate, writeFile } from 'node:fs/promises';
import { cpuAddon, type ComputeDType, type JobTensor, type StatsJob } from '../src/native.js';
import { openModel } from '../src/io/model.js';
import { catalogueGroup, jobTensors } from '../src/io/catalogue.js';
import { makeTempDir, randomValues, removeTempDir, storedValues, writeJobModels, writeSafetensors } from './helpers/safetensors.js';

let dir: string;
beforeAll(async () => {
  dir = await makeTempDir('mother-stats-job-');
});
afterAll(async () => {
  await removeTempDir(dir);
});

interface Fixture {
  tensors: JobTensor[];
  /** values[t][k] = what model k's file holds for tensor t, as float64. */
  values: Float64Array[][];
  files: string[];
}

/** N models, each one file holding the given tensors (per-model dtypes allowed). */
async function fixture(tag: string, N: number, specs: { name: string; shape: number[]; dtypes: ComputeDType[] }[], seed = 1,
                       edit?: (t: number, k: number, v: Float64Array) => void): Promise<Fixture> {
  const values: Float64Array[][] = specs.map(() => []);
  const dtypeOf = (t: number, k: number) => specs[t]!.dtypes[k % specs[t]!.dtypes.length]!;
  const { tensors, files } = await writeJobModels(dir, tag, N, specs, (t, k) => {
    const numel = specs[t]!.shape.reduce((a, b) => a * b, 1);
    // Children = a shared base plus model-specific noise, so distances are realistic.
    const base = randomValues(numel, seed * 1000 + t, { normal: true });
    const own = randomValues(numel, seed * 1000 + 100 * (k + 1) + t, { normal: true, scale: 0.1 * (k + 1) });
    const v = base.map((b, i) => b + own[i]!);
    edit?.(t, k, v);
    values[t]![k] = storedValues(v, dtypeOf(t, k));
    return v;
  }, dtypeOf);
  return { tensors: tensors as JobTensor[], values, files };
}

function job(f: Fixture, extra: Partial<StatsJob> = {}): StatsJob {
  return {
    tensors: f.tensors, models: f.files.length, kurtosis: true, sumsq: true, sumabs: true, maxabs: true, dot: true,
    rank: false, perTensor: false, threads: 2, ...extra,
  };
}

/** float64 reference: the kernels see float32 values (F64 sources rounded once), moments of F64 exact. */
function reference(f: Fixture, perTensor: boolean) {
  const N = f.files.length, T = f.values.length;
  const f32 = (x: number) => Math.fround(x);
  const P = perTensor ? T : 1;
  const out = { sumsq: new Float64Array(P * N * N), sumabs: new Float64Array(P * N * N), maxabs: new Float64Array(P * N * N), dot: new Float64Array(P * N * N) };
  const kurt = new Float64Array(T * N), mean = new Float64Array(T * N), cnt = new Float64Array(T * N), nonfinite = new Float64Array(T * N);
  for (let t = 0; t < T; t++) {
    const base = perTensor ? t * N * N : 0;
    for (let k = 0; k < N; k++) {
      const v = f.values[t]![k]!;
      const fin = [...v].filter(Number.isFinite);
      let m = fin.reduce((a, b) => a + b, 0) / fin.length;
      m += fin.reduce((a, b) => a + (b - m), 0) / fin.length; // correction pass: mean exact enough for tiny spreads
      let m2 = 0, m4 = 0;
      for (const x of fin) { const d = x - m; m2 += d * d; m4 += d ** 4; }
      kurt[t * N + k] = fin.length < 2 || m2 === 0 ? NaN : (fin.length * m4) / (m2 * m2) - 3;
      mean[t * N + k] = fin.length ? m : NaN;
      cnt[t * N + k] = fin.length;
      nonfinite[t * N + k] = v.length - fin.length;
    }
    for (let i = 0; i < N; i++)
      for (let j = 0; j < N; j++) {
        const a = f.values[t]![i]!, b = f.values[t]![j]!;
        let s2 = 0, s1 = 0, mx = 0, dt = 0;
        for (let e = 0; e < a.length; e++) {
          const x = f32(a[e]!), y = f32(b[e]!);
          const d = x - y;
          s2 += d * d; s1 += Math.abs(d); mx = Math.max(mx, Math.abs(d)); dt += x * y;
        }
        const idx = base + i * N + j;
        out.dot[idx] += dt;
        if (i !== j) { out.sumsq[idx] += s2; out.sumabs[idx] += s1; out.maxabs[idx] = Math.max(out.maxabs[idx]!, mx); }
      }
  }
  return { ...out, kurt, mean, cnt, nonfinite };
}

// The pairwise kernel sums float32 lanes over short blocks before flushing to float64 (a few 1e-7
// relative, see native/cpu/pairwise_body.inc); moments are float64 throughout.
const PAIR_REL = 1e-6;

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, rel: number, what: string) {
  expect(actual.length, what).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    if (Number.isNaN(e)) { expect(a, `${what}[${i}]`).toBeNaN(); continue; }
    expect(Math.abs(a - e), `${what}[${i}]: ${a} vs ${e}`).toBeLessThanOrEqual(rel * Math.max(1, Math.abs(e)));
  }
}

const SPECS = [
  { name: 'w.f32', shape: [37, 29], dtypes: ['F32'] as ComputeDType[] },
  { name: 'b.f16', shape: [13], dtypes: ['F16'] as ComputeDType[] },
  { name: 'w.bf16', shape: [3, 5, 7], dtypes: ['BF16'] as ComputeDType[] },
  { name: 'w.f64', shape: [31, 17], dtypes: ['F64'] as ComputeDType[] },
  { name: 'w.mixed', shape: [65], dtypes: ['F32', 'F16', 'BF16', 'F64'] as ComputeDType[] },
  { name: 'one', shape: [1], dtypes: ['F32'] as ComputeDType[] },
];

describe('computeStats vs float64 reference', () => {
  for (const perTensor of [false, true])
    for (const chunkBytes of [undefined, 4 * 5 * 7, 4 * 5 * 64 + 12])
      for (const threads of [1, 3])
        it(`perTensor=${perTensor} chunkBytes=${chunkBytes ?? 'default'} threads=${threads}`, async () => {
          const f = await fixture(`ref-${perTensor}-${chunkBytes}-${threads}`, 5, SPECS, 7);
          const r = await cpuAddon().computeStats(job(f, { perTensor, chunkBytes, threads }), null, null as never);
          const ref = reference(f, perTensor);
          expect(r.backend).toBe('cpu');
          expect(r.threads).toBe(threads);
          expect(r.bytesRead).toBe(f.tensors.reduce((s, t) => s + t.sources.reduce((a, src) => a + t.rows * t.cols * ({ F64: 8, F32: 4, F16: 2, BF16: 2 } as Record<string, number>)[src.dtype]!, 0), 0));
          close(r.sumsq!, ref.sumsq, PAIR_REL, 'sumsq');
          close(r.sumabs!, ref.sumabs, PAIR_REL, 'sumabs');
          // The kernel's SIMD body rounds x - y to float32, its scalar tail does not: allow one float32 ulp.
          close(r.maxabs!, ref.maxabs, 2 ** -23, 'maxabs');
          close(r.dot!, ref.dot, PAIR_REL, 'dot');
          close(r.moments!.kurtosis, ref.kurt, 1e-9, 'kurtosis');
          close(r.moments!.mean, ref.mean, 1e-12, 'mean');
          close(r.moments!.n, ref.cnt, 0, 'n');
          // symmetric with zero diagonals
          const N = 5;
          for (let p = 0; p < (perTensor ? SPECS.length : 1); p++)
            for (let i = 0; i < N; i++) {
              expect(r.sumsq![p * N * N + i * N + i]).toBe(0);
              for (let j = 0; j < N; j++) expect(r.sumsq![p * N * N + i * N + j]).toBe(r.sumsq![p * N * N + j * N + i]);
            }
        });

  it('F64 kurtosis is exact (moments in double, not float32)', async () => {
    // Values whose float32 rounding would change the kurtosis noticeably.
    const f = await fixture('f64exact', 2, [{ name: 'x', shape: [1001], dtypes: ['F64'] }], 3, (_t, k, v) => {
      for (let i = 0; i < v.length; i++) v[i] = 1 + (i % 7 === 0 ? 1e-9 * (k + 1) : 0);
    });
    const r = await cpuAddon().computeStats(job(f, { sumsq: false, sumabs: false, maxabs: false, dot: false }), null, null as never);
    // Two-point distribution with p = 1/7 (143 of 1001 values): excess kurtosis (1 - 6p(1-p)) / (p(1-p)) = 13/6.
    // In float32 every value would round to 1 and the kurtosis would be NaN.
    close(r.moments!.kurtosis, [13 / 6, 13 / 6], 1e-9, 'kurtosis');
    expect(r.sumsq).toBeUndefined();
  });

  it('NaN and Inf: skipped by moments, counted as nonfinite; maxabs is NaN where a difference is NaN', async () => {
    const f = await fixture('nan', 3, [{ name: 'x', shape: [40], dtypes: ['F32', 'F16', 'BF16'] }], 5, (_t, k, v) => {
      if (k === 1) { v[3] = NaN; v[17] = Infinity; }
      if (k === 2) v[39] = -Infinity;
    });
    const r = await cpuAddon().computeStats(job(f, { chunkBytes: 3 * 4 * 8 }), null, null as never);
    const ref = reference(f, false);
    expect([...r.moments!.nonfinite]).toEqual([0, 2, 1]);
    close(r.moments!.n, ref.cnt, 0, 'n');
    close(r.moments!.kurtosis, ref.kurt, 1e-9, 'kurtosis');
    expect(r.maxabs![0 * 3 + 1]).toBeNaN();
    expect(r.maxabs![1 * 3 + 0]).toBeNaN();
    expect(r.maxabs![0 * 3 + 2]).toBe(Infinity);
  });

  it('many small tensors are batched (hundreds of biases) and still exact per tensor', async () => {
    const specs = Array.from({ length: 300 }, (_, i) => ({ name: `b${i}`, shape: [1 + (i % 11)], dtypes: ['F32'] as ComputeDType[] }));
    const f = await fixture('small', 4, specs, 9);
    const r = await cpuAddon().computeStats(job(f, { perTensor: true }), null, null as never);
    const ref = reference(f, true);
    close(r.sumsq!, ref.sumsq, PAIR_REL, 'sumsq');
    close(r.moments!.kurtosis, ref.kurt, 1e-9, 'kurtosis');
  });

  it('rank: numerical rank of the differences (low-rank updates)', async () => {
    const rows = 24, cols = 16;
    const u = randomValues(rows * 3, 11, { normal: true }), w = randomValues(3 * cols, 12, { normal: true });
    const f = await fixture('rank', 3, [{ name: 'q', shape: [rows, cols], dtypes: ['F32'] }, { name: 'b', shape: [cols], dtypes: ['F32'] }], 13, (t, k, v) => {
      if (t !== 0) return;
      const base = randomValues(rows * cols, 99, { normal: true });
      for (let i = 0; i < rows; i++)
        for (let j = 0; j < cols; j++) {
          let d = 0;
          for (let r = 0; r < k; r++) d += u[i * 3 + r]! * w[r * cols + j]!; // model k = base + rank-k update
          v[i * cols + j] = base[i * cols + j]! + d;
        }
    });
    const r = await cpuAddon().computeStats(job(f, { rank: true, perTensor: true }), null, null as never);
    expect([...r.rank!.subarray(0, 9)]).toEqual([0, 1, 2, 1, 0, 1, 2, 1, 0]);
    expect([...r.rank!.subarray(9)].every(Number.isNaN)).toBe(true); // 1-D: not computed
  });
});

describe('computeStats: progress, cancellation, errors', () => {
  it('progress reaches (total, total), throttled', async () => {
    const f = await fixture('progress', 3, [{ name: 'x', shape: [4000], dtypes: ['F32'] }], 2);
    const calls: [number, number][] = [];
    const r = await cpuAddon().computeStats(job(f, { chunkBytes: 3 * 4 * 16 }), (d, t) => calls.push([d, t]), new (cpuAddon().CancelToken)());
    const total = 3 * 4000 * 4;
    expect(calls.at(-1)).toEqual([total, total]);
    expect(calls.every(([d, t]) => t === total && d <= total)).toBe(true);
    expect(calls.length).toBeLessThan(50);
    expect(r.bytesRead).toBe(total);
  });

  it('cancel mid-run -> AbortError after joining; the next call works', async () => {
    const f = await fixture('cancel', 4, [{ name: 'x', shape: [512, 512], dtypes: ['F32'] }], 4);
    const big = { ...job(f, { chunkBytes: 4 * 4 * 64, threads: 2 }), tensors: Array.from({ length: 40 }, () => f.tensors[0]!) };
    const token = new (cpuAddon().CancelToken)();
    expect(token.cancelled).toBe(false);
    let progressCalls = 0;
    const p = cpuAddon().computeStats(big, () => { if (++progressCalls === 1) token.cancel(); }, token);
    setTimeout(() => token.cancel(), 20);
    const err = (await p.catch((e: unknown) => e)) as { name: string; code: string };
    expect(err.name).toBe('AbortError');
    expect(err.code).toBe('ABORT_ERR');
    expect(token.cancelled).toBe(true);
    const ok = await cpuAddon().computeStats(job(f), null, new (cpuAddon().CancelToken)());
    close(ok.sumsq!, reference(f, false).sumsq, PAIR_REL, 'sumsq');
  });

  it('an already-cancelled token rejects at once', async () => {
    const f = await fixture('precancel', 2, [{ name: 'x', shape: [100], dtypes: ['F32'] }], 4);
    const token = new (cpuAddon().CancelToken)();
    token.cancel();
    await expect(cpuAddon().computeStats(job(f), null, token)).rejects.toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
  });

  it('a throwing onProgress rejects with its error', async () => {
    const f = await fixture('throwing', 2, [{ name: 'x', shape: [100], dtypes: ['F32'] }], 4);
    await expect(cpuAddon().computeStats(job(f), () => { throw new Error('boom'); }, null as never)).rejects.toThrow('boom');
  });

  it('a file truncated after openModel -> E_IO_TRUNCATED naming file and tensor; process alive', async () => {
    const paths: string[] = [];
    for (let k = 0; k < 3; k++) {
      const w = await writeSafetensors(join(dir, `trunc-${k}.safetensors`), [
        { name: 'a', dtype: 'F32', shape: [64, 64], data: randomValues(4096, k) },
        { name: 'b', dtype: 'F16', shape: [300], data: randomValues(300, k + 10) },
      ]);
      paths.push(w.path);
    }
    const models = await Promise.all(paths.map((p) => openModel(p)));
    const group = catalogueGroup(models);
    await truncate(paths[1]!, 8 + 100);
    const j: StatsJob = { ...job({ tensors: jobTensors(group), values: [], files: paths }) };
    const err = (await cpuAddon().computeStats(j, null, null as never).catch((e: unknown) => e)) as { code: string; file: string; tensor: string };
    expect(err.code).toBe('E_IO_TRUNCATED');
    expect(err.file).toBe(paths[1]);
    expect(['a', 'b']).toContain(err.tensor);
    // the other files still work
    const ok = await cpuAddon().computeStats({ ...j, models: 2, tensors: j.tensors.map((t) => ({ ...t, sources: [t.sources[0]!, t.sources[2]!] })) }, null, null as never);
    expect(ok.sumsq!.length).toBe(4);
  });

  it('bad jobs reject with E_JOB_* (never a crash or TypeError)', async () => {
    const f = await fixture('badjob', 2, [{ name: 'x', shape: [10], dtypes: ['F32'] }], 4);
    const good = job(f);
    const cases: [unknown, string][] = [
      [null, 'E_JOB_INVALID'],
      [{ ...good, tensors: 'x' }, 'E_JOB_INVALID'],
      [{ ...good, models: 0 }, 'E_JOB_RANGE'],
      [{ ...good, models: 3 }, 'E_JOB_MODELS'],
      [{ ...good, threads: -1 }, 'E_JOB_RANGE'],
      [{ ...good, threads: 1.5 }, 'E_JOB_RANGE'],
      [{ ...good, chunkBytes: 0 }, 'E_JOB_RANGE'],
      [{ ...good, kurtosis: 'yes' }, 'E_JOB_INVALID'],
      [{ ...good, tensors: [{ ...good.tensors[0]!, rows: -1 }] }, 'E_JOB_RANGE'],
      [{ ...good, tensors: [{ ...good.tensors[0]!, sources: [{ ...good.tensors[0]!.sources[0]!, dtype: 'I8' }, good.tensors[0]!.sources[1]] }] }, 'E_JOB_DTYPE'],
      [{ ...good, tensors: [{ ...good.tensors[0]!, sources: [{ ...good.tensors[0]!.sources[0]!, offset: -4 }, good.tensors[0]!.sources[1]] }] }, 'E_JOB_RANGE'],
      [{ ...good, tensors: [{ ...good.tensors[0]!, sources: [{ ...good.tensors[0]!.sources[0]!, file: join(dir, 'none') }, good.tensors[0]!.sources[1]] }] }, 'E_IO_OPEN'],
      [{ ...good, tensors: [{ ...good.tensors[0]!, rows: 1, cols: 1e6 }] }, 'E_IO_TRUNCATED'],
    ];
    for (const [j, code] of cases) {
      const err = (await cpuAddon().computeStats(j as StatsJob, null, null as never).catch((e: unknown) => e)) as { code: string; name: string };
      expect(err?.code, JSON.stringify(j)?.slice(0, 80)).toBe(code);
      expect(err.name).toBe('Error');
    }
    await expect(cpuAddon().computeStats(good, 5 as never, null as never)).rejects.toMatchObject({ code: 'E_JOB_INVALID' });
    await expect(cpuAddon().computeStats(good, null, {} as never)).rejects.toMatchObject({ code: 'E_JOB_INVALID' });
  });
});

void writeFile;
