// Shared by the kernels tests: seeded random data, exact dtype rounding in JS, float64 references.
import { cpuAddon, type ComputeDType, type KernelExports } from '../src/native.js';

/** kernels.pairwise as built: options (metrics, row range) beyond src/native.ts's declaration. */
export type Kernels = KernelExports & {
  pairwise(data: Uint8Array[], dtype: ComputeDType, isa?: string,
           options?: { metrics?: string[]; rowBegin?: number; rowEnd?: number }): ReturnType<KernelExports['pairwise']>;
  rank(a: Uint8Array, b: Uint8Array, rows: number, cols: number, dtype: ComputeDType,
       options?: { noise?: number; exactLimit?: number; maxRank?: number; seed?: number; isa?: string }): number;
  readBandwidth(bytes: number, threads?: number, passes?: number): number;
};

// Through the loader, so MOTHER_CPU_ADDON (e.g. tools/asan-build.sh's sanitizer build) applies here too.
export const addon = cpuAddon();
export const kernels = addon.kernels as Kernels;

/** Every ISA this CPU runs, weakest first. */
export function isas(): string[] {
  const order = addon.capabilities().arch === 'x64' ? ['scalar', 'sse2', 'avx2', 'avx512'] : ['scalar', 'neon'];
  return order.slice(0, order.indexOf(addon.capabilities().detectedIsa) + 1);
}

/** mulberry32 + Box-Muller: reproducible data. */
export function rng(seed: number) {
  let s = seed >>> 0;
  const uniform = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
  const gauss = () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
  return { uniform, gauss };
}

function roundHalfEven(y: number): number {
  const f = Math.floor(y), d = y - f;
  return d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
}

/** double -> IEEE binary16 bits, round to nearest even (checked against Python's struct 'e'). */
export function toHalfBits(v: number): number {
  if (Number.isNaN(v)) return 0x7e00;
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  if (a === Infinity) return sign | 0x7c00;
  if (a < 2 ** -14) return sign | roundHalfEven(a / 2 ** -24);  // 1024 rolls into the min normal
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e -= 1;
  if (2 ** (e + 1) <= a) e += 1;
  let q = roundHalfEven((a / 2 ** e - 1) * 1024);
  if (q === 1024) { q = 0; e += 1; }
  if (e > 15) return sign | 0x7c00;
  return sign | ((e + 15) << 10) | q;
}

export function fromHalfBits(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 31) return m ? NaN : s * Infinity;
  if (e === 0) return s * m * 2 ** -24;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

const f32 = new Float32Array(1), u32 = new Uint32Array(f32.buffer);
export function toBf16Bits(v: number): number {
  f32[0] = v;
  const b = u32[0];
  if (Number.isNaN(f32[0])) return 0x7fc0;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}
export function fromBf16Bits(h: number): number {
  u32[0] = h << 16;
  return f32[0];
}

/** Stores values as `dtype` (rounding) and returns the bytes and the values they decode to. */
export function encode(values: ArrayLike<number>, dtype: ComputeDType): { bytes: Uint8Array; decoded: Float64Array } {
  const n = values.length, decoded = new Float64Array(n);
  if (dtype === 'F64') {
    const a = Float64Array.from(values);
    decoded.set(a);
    return { bytes: new Uint8Array(a.buffer), decoded };
  }
  if (dtype === 'F32') {
    const a = Float32Array.from(values);
    decoded.set(a);
    return { bytes: new Uint8Array(a.buffer), decoded };
  }
  const a = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    a[i] = dtype === 'F16' ? toHalfBits(values[i]) : toBf16Bits(values[i]);
    decoded[i] = dtype === 'F16' ? fromHalfBits(a[i]) : fromBf16Bits(a[i]);
  }
  return { bytes: new Uint8Array(a.buffer), decoded };
}

/** Two-pass float64 reference of the moments of the finite values (scipy's biased kurtosis). */
export function refMoments(x: ArrayLike<number>) {
  let n = 0, nonfinite = 0, sum = 0;
  for (let i = 0; i < x.length; i++) {
    if (Number.isFinite(x[i])) { n++; sum += x[i]; } else nonfinite++;
  }
  // The mean is refined once with the residual of a second pass (a naive sum of 1e5 values near
  // 1e4 is off by ~1e-10, enough to move m3 by 3 * 1e-10 * m2), then the moments are summed.
  let mean = n ? sum / n : 0, c = 0;
  for (let i = 0; i < x.length; i++) if (Number.isFinite(x[i])) c += x[i] - mean;
  if (n) mean += c / n;
  let m2 = 0, m3 = 0, m4 = 0;
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i])) continue;
    const d = x[i] - mean, d2 = d * d;
    m2 += d2; m3 += d2 * d; m4 += d2 * d2;
  }
  const kurtosis = n < 2 || !(m2 > 0) ? NaN : (n * m4) / (m2 * m2) - 3;
  return { n, nonfinite, mean, m2, m3, m4, kurtosis };
}

/** float64 reference of the pairwise sums on decoded values (full symmetric N x N). */
export function refPairwise(xs: Float64Array[]) {
  const N = xs.length, len = N ? xs[0].length : 0;
  const sumsq = new Float64Array(N * N), sumabs = new Float64Array(N * N), maxabs = new Float64Array(N * N);
  const dot = new Float64Array(N * N);
  for (let i = 0; i < N; i++) {
    for (let j = i; j < N; j++) {
      let sq = 0, ab = 0, mx = 0, dt = 0;
      const a = xs[i], b = xs[j];
      for (let k = 0; k < len; k++) {
        const d = a[k] - b[k], ad = Math.abs(d);
        sq += d * d; ab += ad; mx = Math.max(mx, ad); dt += a[k] * b[k];
      }
      dot[i * N + j] = dot[j * N + i] = dt;
      if (i === j) continue;
      sumsq[i * N + j] = sumsq[j * N + i] = sq;
      sumabs[i * N + j] = sumabs[j * N + i] = ab;
      maxabs[i * N + j] = maxabs[j * N + i] = mx;
    }
  }
  return { sumsq, sumabs, maxabs, dot };
}

/** |got - want| <= rel * scale (+ abs), with NaN/Inf matched exactly. */
export function close(got: number, want: number, rel: number, scale = Math.abs(want), abs = 0): boolean {
  if (!Number.isFinite(want) || !Number.isFinite(got)) return Object.is(got, want) || (Number.isNaN(got) && Number.isNaN(want));
  return Math.abs(got - want) <= rel * scale + abs;
}
