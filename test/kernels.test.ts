// CPU kernels against float64 JS references, for every ISA this CPU runs and every dtype.
import { describe, expect, it } from 'vitest';
import { zooMissing, zooPath } from './helpers/zoo.js';
import { readFileSync } from 'node:fs';
import type { ComputeDType } from '../src/native.js';
import {
  addon, close, encode, fromBf16Bits, fromHalfBits, isas, kernels, refMoments, refPairwise, rng, toHalfBits,
} from './kernels-helpers.js';

const DTYPES: ComputeDType[] = ['F32', 'F64', 'F16', 'BF16'];
const LENGTHS = [0, 1, 2, 3, 7, 15, 16, 17, 31, 33, 1000, 4099, 65537];
const ISAS = isas();

function expectMoments(got: ReturnType<typeof kernels.moments>, x: ArrayLike<number>, rel = 1e-10) {
  const want = refMoments(x);
  expect(got.n).toBe(want.n);
  expect(got.nonfinite).toBe(want.nonfinite);
  if (want.n === 0) { expect(got.kurtosis).toBeNaN(); return; }
  const sd = Math.sqrt(want.m2 / want.n);
  expect(close(got.mean, want.mean, 1e-13, Math.abs(want.mean) + sd)).toBe(true);
  expect(close(got.m2, want.m2, 1e-11, want.m2, 1e-300)).toBe(true);
  // m3 is near 0 for symmetric data: compare on the scale of n sd^3.
  expect(close(got.m3, want.m3, 1e-10, want.n * sd ** 3, 1e-300)).toBe(true);
  expect(close(got.m4, want.m4, 1e-10, want.m4, 1e-300)).toBe(true);
  if (Number.isNaN(want.kurtosis)) expect(got.kurtosis).toBeNaN();
  else expect(Math.abs(got.kurtosis - want.kurtosis)).toBeLessThanOrEqual(rel * (Math.abs(want.kurtosis) + 3));
}

describe('capabilities', () => {
  it('reports the ISA and the CPU features', () => {
    const c = addon.capabilities();
    expect(c.backend).toBe('cpu');
    expect(['x64', 'arm64']).toContain(c.arch);
    expect(c.isa).toBe(c.detectedIsa);
    expect(c.hardwareThreads).toBeGreaterThanOrEqual(1);
    if (c.arch === 'x64') expect(c.features.split(' ')).toContain('sse2');
    if (c.detectedIsa === 'avx512') expect(c.features).toMatch(/avx512f.*avx512bw/);
  });
});

describe('convert', () => {
  it('decodes every binary16 bit pattern exactly (subnormals, Inf, NaN)', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const bytes = new Uint8Array(all.buffer);
    for (const to of ['f32', 'f64'] as const) {
      const got = kernels.convert(bytes, 'F16', to);
      for (let i = 0; i < 65536; i++) {
        const want = fromHalfBits(i);
        if (Number.isNaN(want)) expect(got[i]).toBeNaN();
        else if (!Object.is(got[i], want)) expect.fail(`F16 0x${i.toString(16)} -> ${got[i]}, want ${want}`);
      }
    }
  });

  it('BF16 is the top half of a float32', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const got = kernels.convert(new Uint8Array(all.buffer), 'BF16', 'f32');
    for (let i = 0; i < 65536; i++) {
      const want = fromBf16Bits(i);
      if (Number.isNaN(want)) expect(got[i]).toBeNaN();
      else if (!Object.is(got[i], want)) expect.fail(`BF16 0x${i.toString(16)}`);
    }
  });

  it('reads any alignment, F32 <-> F64 exactly (F64 -> f32 rounds)', () => {
    const r = rng(1);
    const vals = Array.from({ length: 37 }, () => r.gauss() * 1e3);
    for (const dtype of DTYPES) {
      const { bytes, decoded } = encode(vals, dtype);
      for (const offset of [0, 1, 3]) {
        const buf = new Uint8Array(bytes.length + 8);
        buf.set(bytes, offset);
        const view = buf.subarray(offset, offset + bytes.length);
        expect(Array.from(kernels.convert(view, dtype, 'f64'))).toEqual(Array.from(decoded));
        expect(Array.from(kernels.convert(view, dtype, 'f32'))).toEqual(Array.from(decoded, Math.fround));
      }
    }
  });

  it('JS half rounding helper agrees with Python struct (spot values)', () => {
    // python3 -c "import struct; print([hex(struct.unpack('<H', struct.pack('<e', v))[0]) for v in (...)])"
    expect([1, 65504, 65520, 6e-8, 2 ** -24 * 0.5, 2 ** -24 * 1.5, 0.1, -2.5].map(toHalfBits))
      .toEqual([0x3c00, 0x7bff, 0x7c00, 0x1, 0x0, 0x2, 0x2e66, 0xc100]);
  });

  it('rejects bad arguments with clear errors', () => {
    expect(() => kernels.convert(new Uint8Array(3), 'F16', 'f32')).toThrow(/not a multiple of 2/);
    expect(() => kernels.convert(new Uint8Array(4), 'I8' as ComputeDType, 'f32')).toThrow(TypeError);
    expect(() => kernels.convert(new Uint8Array(4), 'F32', 'f16' as 'f32')).toThrow(/'f32' or 'f64'/);
    expect(() => kernels.convert([1, 2] as unknown as Uint8Array, 'F32', 'f32')).toThrow(/Uint8Array/);
  });
});

describe('moments', () => {
  for (const dtype of DTYPES) {
    it(`${dtype}: every length and ISA vs float64 reference`, () => {
      const r = rng(7);
      for (const len of LENGTHS) {
        const vals = Array.from({ length: len }, () => 0.5 + r.gauss() * 0.02 + (r.uniform() < 0.01 ? r.gauss() : 0));
        const { bytes, decoded } = encode(vals, dtype);
        for (const isa of ISAS) expectMoments(kernels.moments(bytes, dtype, isa), decoded);
      }
    });
  }

  it('skips and counts NaN/Inf (policy), in every lane position', () => {
    const r = rng(3);
    for (const dtype of DTYPES) {
      for (const len of [5, 17, 33, 4099, 8193]) {
        const vals = Array.from({ length: len }, () => r.gauss());
        for (let i = 0; i < len; i += 1 + Math.floor(r.uniform() * 7)) vals[i] = [NaN, Infinity, -Infinity][i % 3];
        const { bytes, decoded } = encode(vals, dtype);
        for (const isa of ISAS) {
          const m = kernels.moments(bytes, dtype, isa);
          expect(m.nonfinite).toBeGreaterThan(0);
          expectMoments(m, decoded);
        }
      }
    }
  });

  it('F32 at both register widths of the AVX-512 body (256 and 512), NaN/Inf in every lane position', () => {
    const r = rng(13);
    const before = kernels.momentsWidth();
    expect([256, 512]).toContain(before);
    try {
      for (const width of [256, 512] as const) {
        kernels.momentsWidth(width);
        expect(kernels.momentsWidth()).toBe(width);
        for (const len of [...LENGTHS, 4096 * 3 + 29]) {
          const vals = Array.from({ length: len }, () => 1e4 + r.gauss() * (r.uniform() < 0.01 ? 10 : 1));
          if (len > 40) for (let i = len % 7; i < len; i += 37) vals[i] = [NaN, Infinity, -Infinity][i % 3]!;
          const { bytes, decoded } = encode(vals, 'F32');
          for (const isa of ISAS) expectMoments(kernels.moments(bytes, 'F32', isa), decoded);
        }
      }
    } finally {
      kernels.momentsWidth(0);
    }
    expect(kernels.momentsWidth()).toBe(before);
    expect(() => kernels.momentsWidth(128 as 256)).toThrow(/256, 512 or 0/);
  });

  it('constant data and too few values give kurtosis NaN', () => {
    for (const isa of ISAS) {
      for (const dtype of DTYPES) {
        for (const len of [0, 1, 2, 17, 5000]) {
          const m = kernels.moments(encode(new Array(len).fill(0.3), dtype).bytes, dtype, isa);
          expect(m.n).toBe(len);
          expect(m.m2).toBe(0);
          expect(m.kurtosis).toBeNaN();
        }
      }
      const allNan = kernels.moments(encode([NaN, Infinity, NaN], 'F32').bytes, 'F32', isa);
      expect(allNan).toMatchObject({ n: 0, nonfinite: 3 });
      expect(allNan.kurtosis).toBeNaN();
    }
  });

  it('large mean (1e4 + N(0,1)) stays accurate to 1e-10', () => {
    const r = rng(11);
    const vals = Array.from({ length: 100_003 }, () => 1e4 + r.gauss());
    for (const dtype of ['F64', 'F32'] as ComputeDType[]) {
      const { bytes, decoded } = encode(vals, dtype);
      for (const isa of ISAS) expectMoments(kernels.moments(bytes, dtype, isa), decoded, 1e-10);
    }
    // Drifting data (sorted): the running-mean shift keeps cancellation small.
    const sorted = Float64Array.from(vals).sort();
    for (const isa of ISAS) expectMoments(kernels.moments(new Uint8Array(sorted.buffer), 'F64', isa), sorted, 1e-10);
  });

  it('denormals are values like any other', () => {
    const r = rng(5);
    const vals = Array.from({ length: 1001 }, () => r.gauss() * 1e-40);  // float32 subnormals
    const { bytes, decoded } = encode(vals, 'F32');
    expect(decoded.some((v) => v !== 0 && Math.abs(v) < 1.1754943508222875e-38)).toBe(true);
    for (const isa of ISAS) expectMoments(kernels.moments(bytes, 'F32', isa), decoded, 1e-10);
    const half = encode(Array.from({ length: 999 }, () => r.gauss() * 1e-6), 'F16');  // F16 subnormals
    for (const isa of ISAS) expectMoments(kernels.moments(half.bytes, 'F16', isa), half.decoded, 1e-10);
  });

  it('matches scipy.stats.kurtosis on zoo tensors', (ctx) => {
    // Expected values: python3, numpy 2.4.6 + scipy 1.17.1, on the F32 tensor widened to float64:
    //   scipy.stats.kurtosis(x) (fisher=True, bias=True), x = np.frombuffer(..., '<f4').astype(np.float64)
    const expected: Record<string, number> = {
      'encoder.layer.0.attention.attention.query.weight': 1.0117478595526963,
      'encoder.layer.3.output.dense.weight': 1.6929460758774537,
      'embeddings.patch_embeddings.projection.weight': -0.5287753763750067,
    };
    const missing = zooMissing('ft', 't0', 'model.safetensors');
    if (missing) return ctx.skip(missing);
    const file = readFileSync(zooPath('ft', 't0', 'model.safetensors'));
    const hlen = Number(file.readBigUInt64LE(0));
    const header = JSON.parse(file.subarray(8, 8 + hlen).toString('utf8'));
    for (const [name, want] of Object.entries(expected)) {
      const [b, e] = header[name].data_offsets as [number, number];
      const bytes = file.subarray(8 + hlen + b, 8 + hlen + e);  // unaligned on purpose
      for (const isa of ISAS) {
        const got = kernels.moments(bytes, 'F32', isa).kurtosis;
        expect(Math.abs(got - want) / Math.abs(want)).toBeLessThan(1e-10);
      }
    }
  });

  it('rejects bad arguments', () => {
    expect(() => kernels.moments(new Uint8Array(6), 'F32')).toThrow(/byte length 6 is not a multiple of 4/);
    expect(() => kernels.moments(new Uint8Array(8), 'F32', 'mmx')).toThrow(/isa must be/);
    expect(() => kernels.moments(new Float32Array(2) as unknown as Uint8Array, 'F32')).toThrow(/Uint8Array/);
  });
});

describe('pairwise', () => {
  function check(got: ReturnType<typeof kernels.pairwise>, xs: Float64Array[], what: string, metrics = ['sumsq', 'sumabs', 'maxabs', 'dot']) {
    const want = refPairwise(xs);
    const N = xs.length;
    const norms = xs.map((x) => Math.sqrt(x.reduce((s, v) => s + v * v, 0)));
    for (const m of metrics as (keyof typeof want)[]) {
      expect(got[m].length, `${what} ${m}`).toBe(N * N);
      for (let i = 0; i < N; i++) {
        for (let j = 0; j < N; j++) {
          const g = got[m][i * N + j], w = want[m][i * N + j];
          // Float32 lanes: ~1e-7 per block; dot may cancel, so it is judged against |x_i||x_j|.
          const scale = m === 'dot' ? norms[i] * norms[j] : Math.abs(w);
          if (!close(g, w, m === 'maxabs' ? 1e-7 : 2e-6, scale, 1e-300))
            expect.fail(`${what} ${m}[${i},${j}] = ${g}, want ${w}`);
        }
      }
    }
  }

  for (const dtype of DTYPES) {
    it(`${dtype}: every length, N and ISA vs float64 reference`, () => {
      const r = rng(21);
      for (const len of LENGTHS) {
        for (const N of [1, 2, 3, 5, 9]) {
          if (len === 65537 && N === 9 && dtype !== 'F32') continue;  // keeps the JS reference quick
          const base = Array.from({ length: len }, () => r.gauss() * 0.05);
          const models = Array.from({ length: N }, (_, k) => encode(base.map((v) => v + (k ? r.gauss() * 0.01 * k : 0)), dtype));
          const bytes = models.map((m) => m.bytes), xs = models.map((m) => Float64Array.from(m.decoded, Math.fround));
          for (const isa of ISAS) check(kernels.pairwise(bytes, dtype, isa), xs, `${dtype} len=${len} N=${N} ${isa}`);
        }
      }
    });
  }

  it('each metric alone and every combination (template specialisations)', () => {
    const r = rng(4);
    const all = ['sumsq', 'sumabs', 'maxabs', 'dot'];
    const models = Array.from({ length: 6 }, () => encode(Array.from({ length: 2077 }, () => r.gauss()), 'F32'));
    const xs = models.map((m) => m.decoded);
    for (let set = 1; set < 16; set++) {
      const metrics = all.filter((_, b) => set & (1 << b));
      for (const isa of ISAS) {
        const got = kernels.pairwise(models.map((m) => m.bytes), 'F32', isa, { metrics });
        check(got, xs, `set=${metrics} ${isa}`, metrics);
        for (const m of all) if (!metrics.includes(m)) expect(got[m as 'dot'].length).toBe(0);
      }
    }
  });

  it('row ranges fill only their rows and add up to the whole', () => {
    const r = rng(8);
    const models = Array.from({ length: 7 }, () => encode(Array.from({ length: 333 }, () => r.gauss()), 'F32'));
    const bytes = models.map((m) => m.bytes);
    for (const isa of ISAS) {
      const full = kernels.pairwise(bytes, 'F32', isa);
      const a = kernels.pairwise(bytes, 'F32', isa, { rowBegin: 0, rowEnd: 3 });
      const b = kernels.pairwise(bytes, 'F32', isa, { rowBegin: 3, rowEnd: 7 });
      for (const m of ['sumsq', 'sumabs', 'maxabs', 'dot'] as const)
        expect(Array.from(a[m], (v, i) => v + b[m][i])).toEqual(Array.from(full[m]));
      expect(a.sumsq[5 * 7 + 6]).toBe(0);
    }
  });

  it('NaN makes the affected pairs NaN (max too); Inf gives Inf', () => {
    const r = rng(9);
    for (const len of [1, 17, 1000, 4099]) {
      const vals = Array.from({ length: 5 }, () => Array.from({ length: len }, () => r.gauss()));
      vals[1][len - 1] = NaN;  // in the tail / last lane
      vals[3][Math.floor(len / 2)] = Infinity;
      for (const dtype of DTYPES) {
        const models = vals.map((v) => encode(v, dtype));
        const xs = models.map((m) => Float64Array.from(m.decoded, Math.fround));
        for (const isa of ISAS) {
          const got = kernels.pairwise(models.map((m) => m.bytes), dtype, isa);
          check(got, xs, `nonfinite ${dtype} len=${len} ${isa}`);
          expect(got.maxabs[1 * 5 + 2]).toBeNaN();
          expect(got.maxabs[0 * 5 + 3]).toBe(Infinity);
          expect(got.sumsq[4 * 5 + 3]).toBe(Infinity);
          expect(got.maxabs[0 * 5 + 2]).not.toBeNaN();
        }
      }
    }
  });

  it('maxabs alone (integer max on |d| bits where SIMD allows): NaN anywhere, Inf - Inf, -0, denormals, every ISA', () => {
    const r = rng(21);
    for (const len of [1, 15, 16, 17, 1000, 1024, 1025, 4099]) {
      for (const where of [0, len - 1, Math.floor(len / 2)]) {
        const vals = Array.from({ length: 6 }, () => Array.from({ length: len }, () => r.gauss()));
        vals[1][where] = NaN;
        vals[2][where] = Infinity;
        vals[3][where] = Infinity;  // 2 vs 3: Inf - Inf = NaN
        vals[4][where] = -0;
        vals[5][where] = 1e-42;     // denormal next to -0 in model 4
        const bytes = vals.map((v) => new Uint8Array(Float32Array.from(v).buffer));
        const xs = vals.map((v) => Float64Array.from(v, Math.fround));
        for (const isa of ISAS) {
          const got = kernels.pairwise(bytes, 'F32', isa, { metrics: ['maxabs'] });
          for (let i = 0; i < 6; i++)
            for (let j = i + 1; j < 6; j++) {
              let want = 0;
              for (let k = 0; k < len; k++) want = Math.max(want, Math.abs(xs[i][k] - xs[j][k]));  // Math.max keeps NaN
              const g = got.maxabs[i * 6 + j];
              const label = `len ${len} at ${where} ${isa} (${i},${j})`;
              if (Number.isNaN(want)) expect(g, label).toBeNaN();
              else if (want === Infinity) expect(g, label).toBe(Infinity);
              else expect(Math.abs(g - want), label).toBeLessThanOrEqual(2 ** -23 * want);  // x - y rounded to float32
            }
          expect(got.maxabs[1 * 6 + 0]).toBeNaN();  // mirrored
          expect(got.maxabs[2 * 6 + 3]).toBeNaN();
          expect(got.maxabs[0 * 6 + 2]).toBe(Infinity);
        }
      }
    }
  });

  it('float32 accumulation stays within 1e-6 of float64 for n = 1e7 nearly identical models', () => {
    const n = 10_000_000, r = rng(12);
    const a = new Float32Array(n), b = new Float32Array(n);
    for (let i = 0; i < n; i++) { a[i] = r.gauss() * 0.02; b[i] = a[i] + r.gauss() * 1e-5; }
    let sq = 0, ab = 0;
    for (let i = 0; i < n; i++) { const d = a[i] - b[i]; sq += d * d; ab += Math.abs(d); }
    for (const isa of ISAS) {
      const got = kernels.pairwise([new Uint8Array(a.buffer), new Uint8Array(b.buffer)], 'F32', isa, { metrics: ['sumsq', 'sumabs'] });
      expect(Math.abs(got.sumsq[1] - sq) / sq).toBeLessThanOrEqual(1e-6);
      expect(Math.abs(got.sumabs[1] - ab) / ab).toBeLessThanOrEqual(1e-6);
    }
  });

  it('denormal differences: L1 and max exact, squares underflow in float32 lanes (documented)', () => {
    const x = new Float32Array(64).fill(1e-39), y = new Float32Array(64);
    for (const isa of ISAS) {
      const got = kernels.pairwise([new Uint8Array(x.buffer), new Uint8Array(y.buffer)], 'F32', isa);
      expect(got.maxabs[1]).toBe(Math.fround(1e-39));
      expect(close(got.sumabs[1], 64 * Math.fround(1e-39), 1e-6)).toBe(true);
      expect(got.sumsq[1]).toBeLessThan(1e-70);
    }
  });

  it('rejects bad arguments', () => {
    expect(() => kernels.pairwise([new Uint8Array(4), new Uint8Array(8)], 'F32')).toThrow(/data\[1\] has 2 elements, data\[0\] has 1/);
    expect(() => kernels.pairwise([new Uint8Array(3)], 'F16')).toThrow(/data\[0\]: byte length 3/);
    expect(() => kernels.pairwise([new Uint8Array(4)], 'F32', undefined, { metrics: ['l7'] })).toThrow(/unknown metric 'l7'/);
    expect(() => kernels.pairwise([new Uint8Array(4)], 'F32', undefined, { rowEnd: 5 })).toThrow(/rowEnd/);
    // An empty row range reversed would silently return all-zero distances.
    expect(() => kernels.pairwise([new Uint8Array(4), new Uint8Array(4)], 'F32', undefined, { rowBegin: 2, rowEnd: 1 }))
      .toThrow(/rowBegin 2 > rowEnd 1/);
    expect(() => kernels.pairwise('x' as unknown as Uint8Array[], 'F32')).toThrow(TypeError);
  });
});

describe('readBandwidth (the bench yardstick)', () => {
  it('is a finite positive rate for 1..3 threads, odd sizes and a single pass', () => {
    for (const [bytes, threads, passes] of [[1 << 20, 1, 3], [(1 << 20) + 24, 2, 2], [8200, 3, 1], [1, 1, 1]] as const) {
      const r = kernels.readBandwidth(bytes, threads, passes);
      expect(Number.isFinite(r) && r > 0, `${bytes} bytes, ${threads} threads`).toBe(true);
    }
  });
});
