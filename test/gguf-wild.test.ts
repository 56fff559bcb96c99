/**
 * The wild zoo's GGUF copies (Q8_0 and Q4_0, llama.cpp names, rotary q/k permutation) against
 * their safetensors sources (truth.json): after the name mapping and the un-permutation every
 * tensor has the source's name and shape, and its elements are within the quantiser's error of
 * the source's: Q8_0 |x - y| <= d32/2 + 127 |d32 - d16| per block of 32 (d32 = max|x| / 127, d16
 * the stored half), Q4_0 <= d32 + 8 |d32 - d16| (the clamped end), F16 within half an ulp, F32
 * exact. The JS check dequantises through kernels.dequantize and un-permutes with the README's
 * reshape; the stats runner (computeStats) must then read exactly those values: its maxabs and
 * sumsq against the source equal the JS ones.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { openModel, type Model, type TensorInfo } from '../src/io/index.js';
import { cpuAddon, type SourceDType } from '../src/native.js';
import { halfToNumber } from './helpers/gguf.js';
import { skipWithoutZoo, zooMissing, zooPath } from './helpers/zoo.js';

interface Truth { id: string; path: string; format: string; parents: { id: string; relation: string }[] }
const missing = zooMissing('wild', 'truth.json');
const truth: Truth[] = missing ? [] : (JSON.parse(readFileSync(zooPath('wild', 'truth.json'), 'utf8')) as { models: Truth[] }).models;
const ggufs = truth.filter((t) => t.format === 'gguf');

async function bytes(info: TensorInfo, length = info.byteLength): Promise<Uint8Array> {
  const fh = await open(info.file, 'r');
  try {
    const b = new Uint8Array(length);
    await fh.read(b, 0, length, info.offset);
    return b;
  } finally {
    await fh.close();
  }
}

/** The README's inverse: reshape(n_head, rows / n_head / 2, 2, cols).swapaxes(1, 2). */
function unpermute(w: Float32Array, rows: number, cols: number, nHead: number): Float32Array {
  const out = new Float32Array(w.length), half = rows / nHead / 2;
  for (let h = 0; h < nHead; h++)
    for (let i = 0; i < half; i++)
      for (let two = 0; two < 2; two++) {
        const src = ((h * half + i) * 2 + two) * cols; // index [h, i, two] of the reshaped input
        const dst = ((h * 2 + two) * half + i) * cols; // [h, two, i] after the swap
        out.set(w.subarray(src, src + cols), dst);
      }
  return out;
}

describe.runIf(!missing)('wild GGUF copies vs their safetensors sources', () => {
  it('the zoo has the five GGUF copies truth.json describes', () => {
    expect(ggufs.length).toBe(5);
  });

  for (const g of ggufs) {
    it(`${g.id} (${g.parents[0]!.relation} of ${g.parents[0]!.id})`, async (ctx) => {
      skipWithoutZoo('wild')(ctx);
      const q: Model = await openModel(zooPath('wild', dirname(g.path)), g.id);
      const src: Model = await openModel(zooPath('wild', g.parents[0]!.id));
      try {
        expect(q.gguf).toMatchObject({ version: 3, architecture: 'llama', hfNames: true, unmapped: [] });
        expect([...q.tensors.keys()].sort()).toEqual([...src.tensors.keys()].sort());
        const N = q.tensors.size;
        const names = [...src.tensors.keys()];
        const worst: Record<string, { err: number; perD: number; n: number }> = {};
        const jsMax: number[] = [], jsSum: number[] = [];
        for (const name of names) {
          const s = src.tensors.get(name)!, t = q.tensors.get(name)!;
          expect(t.shape, name).toEqual(s.shape);
          expect(s.dtype).toBe('F32');
          const x = new Float32Array((await bytes(s)).buffer);
          const raw = await bytes(t);
          let y = cpuAddon().kernels.dequantize(raw, t.dtype as SourceDType);
          const rows = t.shape.length === 2 ? t.shape[0]! : 1, cols = x.length / rows;
          if (name.endsWith('q_proj.weight')) expect(t.permuteHeads, name).toBe(4);
          else if (name.endsWith('k_proj.weight')) expect(t.permuteHeads, name).toBe(2);
          else expect(t.permuteHeads, name).toBeUndefined();
          if (t.permuteHeads) y = unpermute(y, rows, cols, t.permuteHeads);
          let max = 0, sum = 0, perD = 0;
          const err = (i: number) => Math.abs(x[i]! - y[i]!);
          for (let i = 0; i < x.length; i++) max = Math.max(max, err(i)), sum += err(i) ** 2;
          jsMax.push(max), jsSum.push(sum);
          if (t.dtype === 'F32') expect(max, name).toBe(0);
          else if (t.dtype === 'F16') for (let i = 0; i < x.length; i++) expect(err(i), name).toBeLessThanOrEqual(Math.abs(x[i]!) * 2 ** -11 + 2 ** -25);
          else {
            expect(['Q8_0', 'Q4_0']).toContain(t.dtype);
            const q8 = t.dtype === 'Q8_0', bb = q8 ? 34 : 18;
            // Blocks in HF order hold the same elements as in GGUF order (whole rows move); the
            // stored scale of HF block b is in GGUF block storedBlock(b).
            const blocksPerRow = cols / 32;
            for (let b = 0; b < x.length / 32; b++) {
              const r = Math.floor(b / blocksPerRow);
              let sr = r;
              if (t.permuteHeads) { const hd = rows / t.permuteHeads, h = Math.floor(r / hd), rem = r % hd; sr = h * hd + 2 * (rem % (hd / 2)) + Math.floor(rem / (hd / 2)); }
              const gb = sr * blocksPerRow + (b % blocksPerRow);
              const d16 = Math.abs(halfToNumber(raw[gb * bb]! | (raw[gb * bb + 1]! << 8)));
              let amax = 0, signed = 0;
              for (let i = 32 * b; i < 32 * b + 32; i++) if (Math.abs(x[i]!) > amax) amax = Math.abs(x[i]!), signed = x[i]!;
              const d32 = q8 ? Math.fround(amax / 127) : Math.abs(Math.fround(signed / -8));
              const lim = (q8 ? 0.5 * d32 + 127 * Math.abs(d32 - d16) : d32 + 8 * Math.abs(d32 - d16)) * (1 + 1e-5) + 1e-12;
              let be = 0;
              for (let i = 32 * b; i < 32 * b + 32; i++) be = Math.max(be, err(i));
              expect(be, `${name} block ${b}`).toBeLessThanOrEqual(lim);
              if (d16 > 0) perD = Math.max(perD, be / d16);
            }
          }
          const w = (worst[t.dtype] ??= { err: 0, perD: 0, n: 0 });
          w.err = Math.max(w.err, max), w.perD = Math.max(w.perD, perD), w.n++;
        }
        // The runner reads the GGUF tensors exactly as dequantised and un-permuted above.
        const job = {
          tensors: names.map((name) => {
            const s = src.tensors.get(name)!, t = q.tensors.get(name)!;
            const { rows, cols } = s.shape.length === 2 ? { rows: s.shape[0]!, cols: s.shape[1]! } : { rows: 1, cols: s.numel };
            return {
              name, rows, cols,
              sources: [
                { file: t.file, offset: t.offset, dtype: t.dtype as SourceDType, ...(t.permuteHeads ? { permuteHeads: t.permuteHeads } : {}) },
                { file: s.file, offset: s.offset, dtype: 'F32' as const },
              ],
            };
          }),
          models: 2, kurtosis: true, sumsq: true, sumabs: false, maxabs: true, dot: false, rank: false, perTensor: true, chunkBytes: 4 * 2 * 1000, threads: 2,
        };
        const r = await cpuAddon().computeStats(job, null, new (cpuAddon().CancelToken)());
        names.forEach((name, i) => {
          expect(r.maxabs![i * 4 + 1], name).toBeCloseTo(jsMax[i]!, 7);
          expect(Math.abs(r.sumsq![i * 4 + 1]! - jsSum[i]!), name).toBeLessThanOrEqual(jsSum[i]! * 1e-5 + 1e-20);
        });
        expect(N).toBe(names.length);
        console.log(`${g.id}: ${Object.entries(worst).map(([k, v]) => `${k} x${v.n} max |err| ${v.err.toExponential(2)}${v.perD ? ` (${v.perD.toFixed(3)} d)` : ''}`).join('; ')}`);
      } finally {
        q.dispose();
        src.dispose();
      }
    });
  }
});

describe.runIf(!missing)('wild: discovery and the catalogue', () => {
  it('each GGUF folder is a model, grouped with its source architecture, every tensor compared', async () => {
    const { discoverModels, openModels, buildCatalogue } = await import('../src/io/index.js');
    const refs = await discoverModels([zooPath('wild')]);
    for (const g of ggufs) expect(refs.map((r) => r.id)).toContain(g.id);
    const pair = refs.filter((r) => r.id === ggufs[0]!.id || r.id === ggufs[0]!.parents[0]!.id);
    const models = await openModels(pair);
    const groups = buildCatalogue(models);
    expect(groups.length).toBe(1);
    expect(groups[0]!.skipped).toEqual([]);
    expect(groups[0]!.tensors.length).toBe(models[0]!.tensors.size);
    for (const m of models) m.dispose();
  });
});
