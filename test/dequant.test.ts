/**
 * The ggml dequantisers (native/cpu/dequant.cc) against float64 reference dequantisers written
 * here from the block layouts (ggml's dequantize_row_*), on random blocks of every type (finite,
 * subnormal, zero, NaN and Inf scales), then the stats runner's GGUF read path: stretches that
 * start and end inside blocks (tiny chunks, threads), permuted q/k rows, the rank and spectrum
 * passes, and bytesRead.
 */
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cpuAddon } from '../src/native.js';
import type { JobTensor, SourceDType } from '../src/native.js';
import { mulberry32 } from '../src/graph/confidence.js';
import { GGML, halfToNumber, tempDir } from './helpers/gguf.js';

const QUANT = ['Q8_0', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q4_K', 'Q5_K', 'Q6_K'] as const;
type Q = (typeof QUANT)[number];

const h16 = (b: Uint8Array, o: number) => halfToNumber(b[o]! | (b[o + 1]! << 8));
const u32 = (b: Uint8Array, o: number) => (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
const i8 = (v: number) => (v > 127 ? v - 256 : v);

/** ggml's get_scale_min_k4. */
function scaleMin(j: number, s: Uint8Array, o: number): [number, number] {
  if (j < 4) return [s[o + j]! & 63, s[o + j + 4]! & 63];
  return [(s[o + j + 4]! & 15) | ((s[o + j - 4]! >> 6) << 4), (s[o + j + 4]! >> 4) | ((s[o + j]! >> 6) << 4)];
}

/**
 * Reference dequantisation of one block at b[o..], in float64. Each ggml float32 operation whose
 * operands are exact is evaluated exactly here; ggml rounds once per element where we round once
 * (Math.fround at the comparison), so the results must agree bit for bit.
 */
function refBlock(type: Q, b: Uint8Array, o: number): number[] {
  const y: number[] = [];
  switch (type) {
    case 'Q8_0': {
      const d = h16(b, o);
      for (let j = 0; j < 32; j++) y.push(i8(b[o + 2 + j]!) * d);
      return y;
    }
    case 'Q4_0': {
      const d = h16(b, o);
      for (let j = 0; j < 16; j++) y[j] = ((b[o + 2 + j]! & 15) - 8) * d, y[j + 16] = ((b[o + 2 + j]! >> 4) - 8) * d;
      return y;
    }
    case 'Q4_1': {
      const d = h16(b, o), m = h16(b, o + 2);
      for (let j = 0; j < 16; j++) y[j] = (b[o + 4 + j]! & 15) * d + m, y[j + 16] = (b[o + 4 + j]! >> 4) * d + m;
      return y;
    }
    case 'Q5_0':
    case 'Q5_1': {
      const one = type === 'Q5_1';
      const d = h16(b, o), m = one ? h16(b, o + 2) : 0;
      const qh = u32(b, o + (one ? 4 : 2)), qs = o + (one ? 8 : 6);
      for (let j = 0; j < 16; j++) {
        const x0 = (b[qs + j]! & 15) | (((qh >>> j) & 1) << 4);
        const x1 = (b[qs + j]! >> 4) | (((qh >>> (j + 16)) & 1) << 4);
        y[j] = one ? x0 * d + m : (x0 - 16) * d;
        y[j + 16] = one ? x1 * d + m : (x1 - 16) * d;
      }
      return y;
    }
    case 'Q4_K':
    case 'Q5_K': {
      const five = type === 'Q5_K';
      const d = h16(b, o), dmin = h16(b, o + 2);
      const qh = o + 16, ql = o + (five ? 48 : 16);
      for (let g = 0; g < 4; g++) {
        const [s1, m1] = scaleMin(2 * g, b, o + 4), [s2, m2] = scaleMin(2 * g + 1, b, o + 4);
        // ggml: d1 = d * sc and m1 = dmin * m are float32 products (exact: 11 x 6 bits), then d1 * q - m1.
        const d1 = Math.fround(d * s1), mm1 = Math.fround(dmin * m1), d2 = Math.fround(d * s2), mm2 = Math.fround(dmin * m2);
        for (let l = 0; l < 32; l++) {
          const q = b[ql + 32 * g + l]!;
          const hi1 = five && b[qh + l]! & (1 << (2 * g)) ? 16 : 0, hi2 = five && b[qh + l]! & (2 << (2 * g)) ? 16 : 0;
          y[64 * g + l] = d1 * ((q & 15) + hi1) - mm1;
          y[64 * g + 32 + l] = d2 * ((q >> 4) + hi2) - mm2;
        }
      }
      return y;
    }
    case 'Q6_K': {
      const d = h16(b, o + 208);
      for (let n = 0; n < 2; n++) {
        const ql = o + 64 * n, qh = o + 128 + 32 * n, sc = o + 192 + 8 * n;
        for (let l = 0; l < 32; l++) {
          const is = Math.floor(l / 16), h = b[qh + l]!;
          const q1 = ((b[ql + l]! & 15) | (((h >> 0) & 3) << 4)) - 32;
          const q2 = ((b[ql + l + 32]! & 15) | (((h >> 2) & 3) << 4)) - 32;
          const q3 = ((b[ql + l]! >> 4) | (((h >> 4) & 3) << 4)) - 32;
          const q4 = ((b[ql + l + 32]! >> 4) | (((h >> 6) & 3) << 4)) - 32;
          // ggml: (d * sc) * q, the first product exact in float32.
          y[128 * n + l] = Math.fround(d * i8(b[sc + is]!)) * q1;
          y[128 * n + l + 32] = Math.fround(d * i8(b[sc + is + 2]!)) * q2;
          y[128 * n + l + 64] = Math.fround(d * i8(b[sc + is + 4]!)) * q3;
          y[128 * n + l + 96] = Math.fround(d * i8(b[sc + is + 6]!)) * q4;
        }
      }
      return y;
    }
  }
}

/** Byte offsets of the f16 scale fields of a block. */
const SCALES: Record<Q, number[]> = {
  Q8_0: [0], Q4_0: [0], Q4_1: [0, 2], Q5_0: [0], Q5_1: [0, 2], Q4_K: [0, 2], Q5_K: [0, 2], Q6_K: [208],
};

/**
 * `n` random blocks: random bytes, scales set to finite halves of moderate size (weights-like),
 * or, with `special`, some blocks get zero, subnormal, NaN and +-Inf scales.
 */
function randomBlocks(type: Q, n: number, seed: number, special = false): Uint8Array {
  const rand = mulberry32(seed);
  const { bytes } = GGML[type]!;
  const b = new Uint8Array(n * bytes);
  for (let i = 0; i < b.length; i++) b[i] = Math.floor(rand() * 256);
  const specials = [0x0000, 0x8000, 0x0001, 0x83ff, 0x7c00, 0xfc00, 0x7e00, 0x7bff];
  for (let k = 0; k < n; k++)
    for (const so of SCALES[type]) {
      let h = ((Math.floor(rand() * 12) + 4) << 10) | Math.floor(rand() * 1024) | (rand() < 0.5 ? 0x8000 : 0);
      if (special && k % 3 === 1) h = specials[(k + so) % specials.length]!;
      b[k * bytes + so] = h & 255;
      b[k * bytes + so + 1] = h >> 8;
    }
  return b;
}

function reference(type: Q, b: Uint8Array): Float64Array {
  const { bytes, elems } = GGML[type]!;
  const out = new Float64Array((b.length / bytes) * elems);
  for (let k = 0; k < b.length / bytes; k++) out.set(refBlock(type, b, k * bytes), k * elems);
  return out;
}

function expectSameF32(got: Float32Array, want: Float64Array, label: string): void {
  expect(got.length, label).toBe(want.length);
  let bad = 0, first = -1;
  for (let i = 0; i < got.length; i++) {
    const w = Math.fround(want[i]!);
    if (!(Object.is(got[i], w) || (Number.isNaN(got[i]) && Number.isNaN(w)) || (got[i] === 0 && w === 0))) {
      if (first < 0) first = i;
      bad++;
    }
  }
  expect(bad, `${label}: ${bad} elements differ, first at ${first}: ${got[first]} vs ${want[first]}`).toBe(0);
}

const k = () => cpuAddon().kernels;

describe('dequantize kernels vs float64 reference', () => {
  for (const type of QUANT) {
    it(`${type}: random blocks, bit-identical to ggml's formula`, () => {
      const b = randomBlocks(type, 97, 11 + type.length);
      expectSameF32(k().dequantize(b, type), reference(type, b), type);
    });
    it(`${type}: zero, subnormal, NaN and Inf scales`, () => {
      const b = randomBlocks(type, 48, 7, true);
      const got = k().dequantize(b, type), want = reference(type, b);
      expectSameF32(got, want, type);
      expect(got.some((v) => !Number.isFinite(v)), 'special scales give non-finite values').toBe(true);
    });
  }
  it('the plain types F32, F16, BF16, F64 go through the converters (one-element blocks)', () => {
    const rand = mulberry32(3);
    const raw = new Uint8Array(64);
    for (let i = 0; i < raw.length; i++) raw[i] = Math.floor(rand() * 256);
    const dv = new DataView(raw.buffer);
    const f16 = k().dequantize(raw, 'F16'), bf = k().dequantize(raw, 'BF16'), f32 = k().dequantize(raw, 'F32'), f64 = k().dequantize(raw, 'F64');
    for (let i = 0; i < 32; i++) {
      const h = dv.getUint16(2 * i, true);
      expect(Object.is(f16[i], Math.fround(halfToNumber(h))) || Number.isNaN(f16[i]!)).toBe(true);
      const bfv = new Float32Array(new Uint32Array([h << 16]).buffer)[0]!;
      expect(Object.is(bf[i], bfv) || (Number.isNaN(bf[i]!) && Number.isNaN(bfv))).toBe(true);
    }
    for (let i = 0; i < 16; i++) {
      const v = dv.getFloat32(4 * i, true);
      expect(Object.is(f32[i], v) || (Number.isNaN(f32[i]!) && Number.isNaN(v))).toBe(true);
    }
    for (let i = 0; i < 8; i++) {
      const v = Math.fround(dv.getFloat64(8 * i, true));
      expect(Object.is(f64[i], v) || (Number.isNaN(f64[i]!) && Number.isNaN(v))).toBe(true);
    }
  });
  it('rejects a byte length that is not whole blocks, and unknown types', () => {
    expect(() => k().dequantize(new Uint8Array(35), 'Q8_0')).toThrow(/block size 34/);
    expect(() => k().dequantize(new Uint8Array(34), 'IQ2_XXS' as SourceDType)).toThrow(/type must be/);
    expect(k().dequantize(new Uint8Array(0), 'Q4_K').length).toBe(0);
  });
});

// ---- the stats runner's read path ----------------------------------------------------------------

/** convert_hf_to_gguf's permute: HF row h*hd + half*hd/2 + i is stored at h*hd + 2*i + half. */
function storedRow(r: number, rows: number, heads: number): number {
  const hd = rows / heads, half = hd / 2, h = Math.floor(r / hd), rem = r % hd;
  return h * hd + 2 * (rem % half) + Math.floor(rem / half);
}

interface Case { type: Q; rows: number; cols: number; heads?: number; special?: boolean }
const CASES: Case[] = [
  { type: 'Q8_0', rows: 6, cols: 48 }, // rows straddle blocks
  { type: 'Q8_0', rows: 8, cols: 64, heads: 2 },
  { type: 'Q4_0', rows: 3, cols: 96 },
  { type: 'Q4_0', rows: 16, cols: 32, heads: 4 },
  { type: 'Q4_1', rows: 5, cols: 160 },
  { type: 'Q5_0', rows: 9, cols: 32 },
  { type: 'Q5_1', rows: 1, cols: 224 },
  { type: 'Q4_K', rows: 4, cols: 192 },
  { type: 'Q4_K', rows: 16, cols: 64, heads: 4 },
  { type: 'Q5_K', rows: 2, cols: 384 },
  { type: 'Q6_K', rows: 3, cols: 256 },
  { type: 'Q6_K', rows: 8, cols: 96, heads: 2 },
];

describe('computeStats reads GGUF block types (stretches inside blocks, permuted rows)', () => {
  let dir: string;
  const tensors: JobTensor[] = [];
  let quantBytes = 0, f32Bytes = 0;
  beforeAll(async () => {
    dir = await tempDir('dequant');
    const qParts: Buffer[] = [], fParts: Buffer[] = [];
    let qOff = 0, fOff = 0;
    CASES.forEach((c, i) => {
      const { elems, bytes } = GGML[c.type]!;
      const n = c.rows * c.cols;
      const blocks = randomBlocks(c.type, n / elems, 100 + i, c.special);
      const stored = reference(c.type, blocks);
      // The F32 twin holds the HF-order rows: logical row r is stored row storedRow(r).
      const logical = new Float32Array(n);
      for (let r = 0; r < c.rows; r++) {
        const s = c.heads ? storedRow(r, c.rows, c.heads) : r;
        for (let j = 0; j < c.cols; j++) logical[r * c.cols + j] = stored[s * c.cols + j]!;
      }
      // Odd, unaligned offsets: the reader may not assume alignment.
      qParts.push(Buffer.alloc(3)), qOff += 3;
      fParts.push(Buffer.alloc(1)), fOff += 1;
      tensors.push({
        name: `t${i}.${c.type}`,
        rows: c.rows,
        cols: c.cols,
        sources: [
          { file: join(dir, 'q.bin'), offset: qOff, dtype: c.type, ...(c.heads ? { permuteHeads: c.heads } : {}) },
          { file: join(dir, 'f.bin'), offset: fOff, dtype: 'F32' },
        ],
      });
      qParts.push(Buffer.from(blocks)), qOff += blocks.length, quantBytes += blocks.length;
      fParts.push(Buffer.from(logical.buffer)), fOff += 4 * n, f32Bytes += 4 * n;
      expect(blocks.length).toBe((n / elems) * bytes);
    });
    await writeFile(join(dir, 'q.bin'), Buffer.concat(qParts));
    await writeFile(join(dir, 'f.bin'), Buffer.concat(fParts));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  for (const chunkBytes of [undefined, 4 * 2 * 37, 4 * 2 * 5])
    for (const threads of [1, 2])
      it(`chunkBytes=${chunkBytes ?? 'default'} threads=${threads}: every tensor equals its F32 reference`, async () => {
        const r = await cpuAddon().computeStats(
          { tensors, models: 2, kurtosis: true, sumsq: true, sumabs: false, maxabs: true, dot: false, rank: false, perTensor: true, threads, ...(chunkBytes ? { chunkBytes } : {}) },
          null, new (cpuAddon().CancelToken)(),
        );
        tensors.forEach((t, i) => {
          expect(r.sumsq![i * 4 + 1], t.name).toBe(0);
          expect(r.maxabs![i * 4 + 1], t.name).toBe(0);
          expect(r.moments!.n[i * 2], t.name).toBe(t.rows * t.cols);
          expect(r.moments!.mean[i * 2], t.name).toBeCloseTo(r.moments!.mean[i * 2 + 1]!, 12);
        });
        expect(r.bytesRead).toBe(quantBytes + f32Bytes);
      });

  it('the rank and spectrum passes read the same values (rank 0, equal own spectra)', async () => {
    const r = await cpuAddon().computeStats(
      { tensors, models: 2, kurtosis: false, sumsq: false, sumabs: false, maxabs: false, dot: false, rank: true, spectrum: true, spectrumShort: 4, spectrumLong: 40, perTensor: true, threads: 2 },
      null, new (cpuAddon().CancelToken)(),
    );
    tensors.forEach((t, i) => {
      if (t.rows < 2) return;
      expect(r.rank![i * 4 + 1], t.name).toBe(0);
      expect(r.weightSpectrum![i * 2], t.name).toBeCloseTo(r.weightSpectrum![i * 2 + 1]!, 10);
    });
  });

  it('non-finite scales: both copies hold the same NaN/Inf elements', async () => {
    const b = randomBlocks('Q8_0', 8, 5, true);
    const ref = Float32Array.from(reference('Q8_0', b));
    await writeFile(join(dir, 'sq.bin'), b);
    await writeFile(join(dir, 'sf.bin'), Buffer.from(ref.buffer));
    const r = await cpuAddon().computeStats(
      { tensors: [{ name: 'nan', rows: 4, cols: 64, sources: [{ file: join(dir, 'sq.bin'), offset: 0, dtype: 'Q8_0' }, { file: join(dir, 'sf.bin'), offset: 0, dtype: 'F32' }] }],
        models: 2, kurtosis: true, sumsq: false, sumabs: false, maxabs: false, dot: false, rank: false, perTensor: false, chunkBytes: 4 * 2 * 7, threads: 1 },
      null, new (cpuAddon().CancelToken)(),
    );
    expect(r.moments!.nonfinite[0]).toBeGreaterThan(0);
    expect(r.moments!.nonfinite[0]).toBe(r.moments!.nonfinite[1]);
    expect(r.moments!.mean[0]).toBe(r.moments!.mean[1]);
  });

  it('job validation: whole blocks, permuteHeads dividing the rows, known types', async () => {
    const src = (over: object) => ({ tensors: [{ name: 'x', rows: 2, cols: 40, sources: [{ file: join(dir, 'q.bin'), offset: 0, dtype: 'Q8_0', ...over }] }], models: 1, kurtosis: true, sumsq: false, sumabs: false, maxabs: false, dot: false, rank: false });
    const run = (job: object) => cpuAddon().computeStats(job as never, null, new (cpuAddon().CancelToken)());
    await expect(run(src({}))).rejects.toMatchObject({ code: 'E_JOB_RANGE', message: expect.stringMatching(/blocks of 32 elements/) });
    const ok = (over: object) => ({ ...src(over), tensors: [{ ...src(over).tensors[0]!, cols: 48, rows: 6 }] });
    await expect(run(ok({ permuteHeads: 2 }))).rejects.toMatchObject({ code: 'E_JOB_RANGE', message: expect.stringMatching(/permuteHeads/) });
    await expect(run(ok({ dtype: 'IQ2_XXS' }))).rejects.toMatchObject({ code: 'E_JOB_DTYPE' });
    await expect(run(ok({ permuteHeads: 3 }))).resolves.toBeTruthy();
  });
});
