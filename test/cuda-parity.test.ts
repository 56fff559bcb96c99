// CUDA computeStats against the CPU addon on the same jobs: every metric, every dtype (and mixed
// dtypes per model), odd sizes, chunk boundaries, perTensor, NaN/Inf, rank, cancellation, errors.
// Skips (describe.skipIf) where the CUDA addon is not built or no device is usable -- the case
// on machines without a GPU and in CI; bench/gpu-check.sh runs it on a GPU machine.
// Tolerances (docs/cuda.md): counts and maxabs exact; mean 1e-12, m2 1e-10, kurtosis 1e-9
// relative; sumsq / sumabs 1e-5 relative (float partial sums); dot 1e-5 of sqrt(|x_i|^2 |x_j|^2).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { truncate } from 'node:fs/promises';
import { cpuAddon, cudaAddon, type ComputeDType, type JobTensor, type StatsJob, type StatsResult } from '../src/native.js';
import { makeTempDir, randomValues, removeTempDir, writeSafetensors } from './helpers/safetensors.js';

function usableCuda(): string | null {
  const cuda = cudaAddon();
  if (!cuda) return 'CUDA addon not built';
  try {
    return cuda.devices().length > 0 ? null : 'no CUDA device';
  } catch (err) {
    return (err as Error).message;
  }
}
const skipReason = usableCuda();

let dir: string;
beforeAll(async () => {
  if (!skipReason) dir = await makeTempDir('mother-cuda-parity-');
});
afterAll(async () => {
  if (dir) await removeTempDir(dir);
});

interface Spec { name: string; shape: number[]; dtypes: ComputeDType[] }

/** N model files holding `specs` (dtype of model k: dtypes[k % length]); returns the job tensors. */
async function fixture(tag: string, N: number, specs: Spec[], seed: number,
                       edit?: (t: number, k: number, v: Float64Array) => void): Promise<{ tensors: JobTensor[]; files: string[] }> {
  const files: string[] = [];
  const offsets: Record<string, number>[] = [];
  for (let k = 0; k < N; k++) {
    const ts = specs.map((s, t) => {
      const numel = s.shape.reduce((a, b) => a * b, 1);
      const base = randomValues(numel, seed * 1000 + t, { normal: true, scale: 0.05 });
      const own = randomValues(numel, seed * 1000 + 100 * (k + 1) + t, { normal: true, scale: 0.01 * (k + 1) });
      const v = base.map((b, i) => b + own[i]!);
      edit?.(t, k, v);
      return { name: s.name, dtype: s.dtypes[k % s.dtypes.length]!, shape: s.shape, data: v };
    });
    const w = await writeSafetensors(join(dir, `${tag}-${k}.safetensors`), ts, { align: 1 });
    files.push(w.path);
    offsets.push(w.offsets);
  }
  const tensors = specs.map((s) => {
    const rows = s.shape.length >= 2 ? s.shape[0]! : 1;
    const numel = s.shape.reduce((a, b) => a * b, 1);
    return {
      name: s.name, rows, cols: rows ? numel / rows : 0,
      sources: files.map((file, k) => ({ file, offset: offsets[k]![s.name]!, dtype: s.dtypes[k % s.dtypes.length]! })),
    };
  });
  return { tensors, files };
}

function job(f: { tensors: JobTensor[]; files: string[] }, extra: Partial<StatsJob> = {}): StatsJob {
  return {
    tensors: f.tensors, models: f.files.length, kurtosis: true, sumsq: true, sumabs: true, maxabs: true, dot: true,
    rank: false, perTensor: false, threads: 2, ...extra,
  };
}

function near(got: ArrayLike<number>, want: ArrayLike<number>, tol: (i: number, w: number) => number, what: string) {
  expect(got.length, what).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!, w = want[i]!;
    if (Number.isNaN(w)) { expect(g, `${what}[${i}]`).toBeNaN(); continue; }
    if (!Number.isFinite(w)) { expect(g, `${what}[${i}]`).toBe(w); continue; }
    expect(Math.abs(g - w), `${what}[${i}]: cuda ${g} vs cpu ${w}`).toBeLessThanOrEqual(tol(i, w));
  }
}
const rel = (r: number) => (_i: number, w: number) => r * Math.abs(w) + 1e-300;

/** Compares a CUDA result with the CPU's for the same job, within the documented tolerances. */
function compare(gpu: StatsResult, cpu: StatsResult, N: number) {
  expect(gpu.backend).toBe('cuda');
  expect(typeof gpu.isa).toBe('string');
  expect(gpu.bytesRead).toBe(cpu.bytesRead);
  if (cpu.moments) {
    const g = gpu.moments!, c = cpu.moments;
    near(g.n, c.n, () => 0, 'n');
    near(g.nonfinite, c.nonfinite, () => 0, 'nonfinite');
    near(g.mean, c.mean, (i, w) => 1e-12 * Math.max(Math.abs(w), Math.sqrt(c.m2[i]! / Math.max(1, c.n[i]!))) + 1e-300, 'mean');
    near(g.m2, c.m2, rel(1e-10), 'm2');
    near(g.kurtosis, c.kurtosis, (_i, w) => 1e-9 * Math.max(1, Math.abs(w)), 'kurtosis');
  }
  if (cpu.sumsq) near(gpu.sumsq!, cpu.sumsq, rel(1e-5), 'sumsq');
  if (cpu.sumabs) near(gpu.sumabs!, cpu.sumabs, rel(1e-5), 'sumabs');
  if (cpu.maxabs) near(gpu.maxabs!, cpu.maxabs, () => 0, 'maxabs');
  if (cpu.dot) {
    const d = cpu.dot;
    // |error| <= 1e-5 * sum |x_i x_j| <= 1e-5 * sqrt(|x_i|^2 |x_j|^2) (Cauchy-Schwarz).
    near(gpu.dot!, d, (idx) => {
      const base = idx - (idx % (N * N)), i = Math.floor((idx % (N * N)) / N), j = idx % N;
      return 1e-5 * Math.sqrt(Math.abs(d[base + i * N + i]! * d[base + j * N + j]!)) + 1e-300;
    }, 'dot');
  }
  if (cpu.rank) near(gpu.rank!, cpu.rank, () => 0, 'rank');
  // Jacobi on the GPU, Householder + QL on the CPU, both in float64: entropies agree to the
  // eigenvalue noise of rank-deficient blocks (~n * 1e-8 * 18 = 1.2e-5 nats at n = 64 on either
  // side, spectrum.cc); full-rank blocks agree far closer.
  if (cpu.spectrum) near(gpu.spectrum!, cpu.spectrum, () => 5e-5, 'spectrum');
  if (cpu.weightSpectrum) near(gpu.weightSpectrum!, cpu.weightSpectrum, () => 5e-5, 'weightSpectrum');
  if (cpu.spectrumNoise) near(gpu.spectrumNoise!, cpu.spectrumNoise, () => 0, 'spectrumNoise');
}

async function both(j: StatsJob): Promise<[StatsResult, StatsResult]> {
  const cuda = cudaAddon()!;
  const gpu = await cuda.computeStats(j, null, new cuda.CancelToken());
  const cpu = await cpuAddon().computeStats(j, null, new (cpuAddon().CancelToken)());
  return [gpu, cpu];
}

const DTYPES: ComputeDType[] = ['F32', 'F16', 'BF16', 'F64'];

describe.skipIf(skipReason !== null)(`CUDA computeStats matches the CPU (${skipReason ?? 'device found'})`, () => {
  for (const dtype of DTYPES)
    for (const N of [1, 2, 3, 5, 9])
      it(`${dtype} N=${N}: odd sizes, all metrics`, async () => {
        const specs: Spec[] = [
          { name: 'w', shape: [37, 29], dtypes: [dtype] },
          { name: 'b', shape: [13], dtypes: [dtype] },
          { name: 'one', shape: [1], dtypes: [dtype] },
          { name: 'big', shape: [4099, 7], dtypes: [dtype] },
        ];
        const f = await fixture(`${dtype}-${N}`, N, specs, N);
        for (const perTensor of [false, true]) {
          const [g, c] = await both(job(f, { perTensor }));
          compare(g, c, N);
        }
      });

  it('chunk boundaries: tiny and odd chunkBytes, mixed dtypes per model', async () => {
    const specs: Spec[] = [
      { name: 'mixed', shape: [513, 3], dtypes: ['F32', 'F16', 'BF16', 'F64'] },
      { name: 'f16', shape: [77], dtypes: ['F16'] },
      { name: 'f32', shape: [1000], dtypes: ['F32'] },
    ];
    const f = await fixture('chunks', 6, specs, 11);
    for (const chunkBytes of [4 * 6 * 5, 4 * 6 * 64 + 12, 1 << 20])
      for (const perTensor of [false, true]) {
        const [g, c] = await both(job(f, { chunkBytes, perTensor }));
        compare(g, c, 6);
      }
  });

  it('NaN and Inf: counted, skipped by moments, NaN maxabs', async () => {
    const f = await fixture('nonfinite', 4, [{ name: 'w', shape: [300, 11], dtypes: ['F32'] }, { name: 'h', shape: [99], dtypes: ['F16'] }], 3,
      (t, k, v) => { if (k === 1) { v[5] = NaN; v[77] = Infinity; } if (k === 2) v[9] = -Infinity; });
    const [g, c] = await both(job(f, { perTensor: true }));
    compare(g, c, 4);
    expect(g.moments!.nonfinite[1]).toBe(2);
    expect(g.maxabs![0 * 16 + 0 * 4 + 1]).toBeNaN();
  });

  it('many models (several tile groups) and nearly identical models', async () => {
    const f = await fixture('many', 37, [{ name: 'w', shape: [257, 3], dtypes: ['F32'] }], 5);
    const [g, c] = await both(job(f));
    compare(g, c, 37);
    const near = await fixture('near', 3, [{ name: 'w', shape: [20000], dtypes: ['F32'] }], 6,
      (_t, k, v) => { for (let i = 0; i < v.length; i++) v[i] = 0.5 + (i % 97) * 1e-3 + k * 1e-7 * ((i * 7919) % 13); });
    const [g2, c2] = await both(job(near));
    compare(g2, c2, 3);
  });

  it('rank runs on the CPU kernel and matches exactly', async () => {
    const f = await fixture('rank', 3, [{ name: 'w', shape: [24, 16], dtypes: ['F32'] }, { name: 'b', shape: [16], dtypes: ['F32'] }], 8);
    const [g, c] = await both(job(f, { rank: true }));
    compare(g, c, 3);
  });

  it('spectral entropies on the GPU match the CPU: tall, wide, odd and sampled blocks, candidate pairs, low rank, NaN, equal models', async () => {
    const specs: Spec[] = [
      { name: 'tall', shape: [37, 11], dtypes: ['F32', 'BF16'] },
      { name: 'wide', shape: [9, 300], dtypes: ['F16'] },
      { name: 'big', shape: [130, 600], dtypes: ['F32'] }, // sampled to 64 x 256
      { name: 'square', shape: [64, 64], dtypes: ['F64', 'F32'] },
      { name: 'bias', shape: [64], dtypes: ['F32'] },
    ];
    const f = await fixture('spec', 5, specs, 21, (t, k, v) => {
      if (t === 3 && k === 4) for (let i = 0; i < v.length; i++) v[i] = (Math.floor(i / 64) % 3) * 0.01 + (i % 64) * 1e-3; // rank 2
      if (t === 0 && k === 2) v[17] = NaN;
    });
    const [g, c] = await both(job(f, { sumsq: false, sumabs: false, maxabs: false, dot: false, kurtosis: false, spectrum: true }));
    compare(g, c, 5);
    expect(c.spectrum!.some((x) => Number.isFinite(x))).toBe(true);
    const pairs = await both(job(f, { sumsq: false, sumabs: false, maxabs: false, dot: false, kurtosis: false, spectrum: true, spectrumPairs: [0, 1, 1, 4, 2, 3] }));
    compare(pairs[0], pairs[1], 5);
    const same = await fixture('spec-same', 3, [{ name: 'w', shape: [20, 30], dtypes: ['F32'] }], 22, (_t, k, v) => { if (k === 1) v.fill(0.5); if (k === 2) v.fill(0.5); });
    const [g2, c2] = await both(job(same, { sumsq: false, sumabs: false, maxabs: false, dot: false, kurtosis: false, spectrum: true }));
    compare(g2, c2, 3);
    expect(g2.spectrum![1 * 3 + 2]).toBeNaN(); // equal models: an all-zero difference has no spectrum
  });

  it('progress reaches total; cancel rejects with AbortError; truncated file names file and tensor', async () => {
    const cuda = cudaAddon()!;
    const f = await fixture('misc', 3, [{ name: 'w', shape: [2000, 50], dtypes: ['F32'] }], 9);
    const seen: number[][] = [];
    const r = await cuda.computeStats(job(f, { chunkBytes: 4096 }), (d, t) => seen.push([d, t]), new cuda.CancelToken());
    expect(seen.at(-1)).toEqual([r.bytesRead, r.bytesRead]);
    const token = new cuda.CancelToken();
    token.cancel();
    await expect(cuda.computeStats(job(f), null, token)).rejects.toMatchObject({ name: 'AbortError' });
    await truncate(f.files[2]!, 100);
    await expect(cuda.computeStats(job(f), null, new cuda.CancelToken())).rejects.toMatchObject({ code: 'E_IO_TRUNCATED', tensor: 'w' });
  });

  it('capabilities and devices describe the GPU', () => {
    const cuda = cudaAddon()!;
    const d = cuda.devices();
    expect(d[0]!.index).toBe(0);
    expect(d[0]!.memoryBytes).toBeGreaterThan(0);
    expect(d[0]!.computeCapability).toMatch(/^\d+\.\d+$/);
    const cap = cuda.capabilities(0);
    expect(cap.backend).toBe('cuda');
    expect(cap.isa).toBe(d[0]!.name);
    expect(() => cuda.capabilities(d.length)).toThrow(expect.objectContaining({ code: 'E_CUDA_NO_DEVICE' }));
  });
});
