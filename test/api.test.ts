/**
 * The public API end to end on the real zoo (../shared/zoo): kurtosis and distances against a
 * float64 reference computed here from the raw bytes, and recover() against the truth with the
 * accuracy bars of the project (one configuration for every split, no oracle input).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { distanceMatrices, kurtosis, recover, edgeAccuracy, adjustedRandIndex, inspectModel, availableBackends } from '../src/index.js';

import { skipWithoutZoo, ZOO } from './helpers/zoo.js';

/** Reads one float32 tensor of a safetensors file in plain JS (independent of the native parser). */
function tensorOf(file: string, name: string): Float64Array {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  const [b, e] = header[name].data_offsets;
  const f32 = new Float32Array(buf.buffer.slice(buf.byteOffset + 8 + n + b, buf.byteOffset + 8 + n + e));
  return Float64Array.from(f32);
}

function kurtosisRef(x: Float64Array): number {
  const n = x.length;
  const mean = x.reduce((a, v) => a + v, 0) / n;
  let m2 = 0, m4 = 0;
  for (const v of x) { const d = v - mean; m2 += d * d; m4 += d * d * d * d; }
  return (n * m4) / (m2 * m2) - 3;
}

function accuracy(split: string, result: Awaited<ReturnType<typeof recover>>) {
  const truth = JSON.parse(readFileSync(join(ZOO, split, 'truth.json'), 'utf8')).models as { id: string; parent: string | null }[];
  const index = new Map(truth.map((m, i) => [m.id, i]));
  const byId = new Map(result.models.map((m) => [m.id, m]));
  const tp = truth.map((m) => (m.parent === null ? null : index.get(m.parent)!));
  const pp = truth.map((m) => { const p = byId.get(m.id)!.parent; return p === null ? null : index.get(p)!; });
  const rootOf = (i: number): number => (tp[i] === null ? i : rootOf(tp[i]!));
  return {
    edge: edgeAccuracy(tp, pp),
    ari: adjustedRandIndex(truth.map((_, i) => rootOf(i)), truth.map((m) => byId.get(m.id)!.family)),
  };
}

describe('public API on the zoo', () => {
  beforeEach(skipWithoutZoo('ft', 'truth.json'));
  const models = ['t0', 't0-c0', 't0-c0-g0', 't1'].map((id) => join(ZOO, 'ft', id));
  const q = 'encoder.layer.1.attention.attention.query.weight';

  it('kurtosis() matches a float64 reference on real tensors', async () => {
    const r = await kurtosis(models, { include: [q], backend: 'cpu' });
    expect(r.ids).toEqual(['t0', 't0-c0', 't0-c0-g0', 't1']);
    expect(r.tensors).toEqual([q]);
    models.forEach((m, k) => {
      const ref = kurtosisRef(tensorOf(join(m, 'model.safetensors'), q));
      expect(r.values[k]).toBeCloseTo(ref, 9);
    });
  });

  it('distanceMatrices() gives l2, l1, linf and cosine as defined', async () => {
    const r = await distanceMatrices(models, { include: [q], metrics: ['l2', 'l1', 'linf', 'cosine'], backend: 'cpu' });
    const w = models.map((m) => tensorOf(join(m, 'model.safetensors'), q));
    const N = models.length;
    for (let i = 0; i < N; i++)
      for (let j = 0; j < N; j++) {
        let sq = 0, ab = 0, mx = 0, dot = 0, ni = 0, nj = 0;
        for (let e = 0; e < w[i]!.length; e++) {
          const d = w[i]![e]! - w[j]![e]!;
          sq += d * d; ab += Math.abs(d); mx = Math.max(mx, Math.abs(d));
          dot += w[i]![e]! * w[j]![e]!; ni += w[i]![e]! ** 2; nj += w[j]![e]! ** 2;
        }
        const k = i * N + j;
        expect(r.matrices.l2![k]).toBeCloseTo(Math.sqrt(sq), 6);
        expect(r.matrices.l1![k]).toBeCloseTo(ab / w[i]!.length, 8);
        expect(r.matrices.linf![k]).toBeCloseTo(mx, 7);
        expect(r.matrices.cosine![k]).toBeCloseTo(i === j ? 0 : 1 - dot / Math.sqrt(ni * nj), 6);
      }
    // Relatives are far closer than unrelated roots.
    expect(r.matrices.l2![0 * N + 1]).toBeLessThan(r.matrices.l2![0 * N + 3]! / 2);
  });

  it('inspectModel() lists tensors with their kurtosis', async () => {
    const r = await inspectModel(models[0]!, { backend: 'cpu' });
    expect(r.id).toBe('t0');
    const t = r.tensors.find((x) => x.name === q)!;
    expect(t.shape).toEqual([64, 64]);
    expect(t.dtype).toBe('F32');
    expect(t.kurtosis).toBeCloseTo(kurtosisRef(tensorOf(join(models[0]!, 'model.safetensors'), q)), 9);
    expect(r.parameters).toBe(r.tensors.reduce((a, x) => a + x.numel, 0));
  });

  it('availableBackends() says the CPU is usable', () => {
    const b = availableBackends();
    expect(b.find((x) => x.name === 'cpu')!.usable).toBe(true);
    expect(b.find((x) => x.name === 'cuda')).toBeDefined();
  });

  // The project's accuracy bars, with one configuration for every split.
  const bars: Record<string, number> = { ft: 0.97, lora: 0.95, chain: 0.8 };
  for (const split of ['ft', 'lora', 'chain'])
    it(`recover() on ${split}: edge accuracy >= ${bars[split]} and ARI 1`, async () => {
      const r = await recover([join(ZOO, split)], { backend: 'cpu' });
      const a = accuracy(split, r);
      expect(a.edge).toBeGreaterThanOrEqual(bars[split]!);
      expect(a.ari).toBeCloseTo(1, 12);
      expect(r.models.every((m) => m.confidence >= 0 && m.confidence <= 1)).toBe(true);
      if (split === 'lora') expect(r.families.every((f) => f.distance === 'lora')).toBe(true);
      else expect(r.families.every((f) => f.distance === 'ft')).toBe(true);
    });
});
