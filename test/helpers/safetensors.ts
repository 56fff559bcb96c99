/**
 * Test helpers: write valid and deliberately broken safetensors files into temp dirs.
 *
 *   const dir = await makeTempDir();
 *   const file = await writeSafetensors(join(dir, 'a.safetensors'),
 *     [{ name: 'w', dtype: 'F16', shape: [3, 4], data: values }], { metadata: { format: 'pt' } });
 *   await writeRawSafetensors(path, '{"w": ...}', { data, lengthOverride: 12 });   // broken ones
 *   await writeSharded(dir, tensors, [['a', 'b'], ['c']]);                           // + index.json
 *
 * Values are numbers; F16/BF16/F8 are rounded to nearest even like torch does, so reference maths
 * should use `storedValues()` (what the file really holds) rather than the inputs.
 */
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type DType =
  | 'BOOL' | 'U8' | 'I8' | 'U16' | 'I16' | 'F16' | 'BF16' | 'U32' | 'I32' | 'F32' | 'U64' | 'I64' | 'F64'
  | 'F8_E4M3' | 'F8_E5M2';

export const DTYPE_SIZE: Record<DType, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E4M3: 1, F8_E5M2: 1, U16: 2, I16: 2, F16: 2, BF16: 2, U32: 4, I32: 4, F32: 4,
  U64: 8, I64: 8, F64: 8,
};

export interface TensorSpec {
  name: string;
  dtype: DType;
  shape: number[];
  /** Numbers (converted to dtype), or raw little-endian bytes. Default: zeros. */
  data?: ArrayLike<number> | Uint8Array;
}

export interface WrittenFile {
  path: string;
  /** The JSON header as written (without padding). */
  header: Record<string, unknown>;
  headerLength: number;
  dataOffset: number;
  /** Absolute byte offset of each tensor's data in the file. */
  offsets: Record<string, number>;
  size: number;
}

/** A fresh temp dir; remove it with `removeTempDir`. */
export async function makeTempDir(prefix = 'mother-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function removeTempDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float -> IEEE binary16 bits, round to nearest even (handles subnormals, Inf, NaN). */
export function toF16Bits(value: number): number {
  if (Number.isNaN(value)) return 0x7e00;
  const sign = value < 0 || Object.is(value, -0) ? 0x8000 : 0;
  let a = Math.abs(value);
  if (a === Infinity) return sign | 0x7c00;
  // Work from the float64 value directly: exponent and mantissa with exact rounding.
  if (a >= 65520) return sign | 0x7c00; // rounds to Inf
  if (a < 2 ** -14) {
    // Subnormal: units of 2^-24, round half to even.
    const q = a / 2 ** -24;
    let r = Math.round(q);
    if (Math.abs(q - Math.trunc(q) - 0.5) === 0 && r % 2 === 1) r -= 1;
    return sign | r;
  }
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e -= 1;
  if (2 ** (e + 1) <= a) e += 1;
  const q = (a / 2 ** e - 1) * 1024;
  let m = Math.floor(q);
  const frac = q - m;
  if (frac > 0.5 || (frac === 0.5 && m % 2 === 1)) m += 1;
  if (m === 1024) { m = 0; e += 1; }
  if (e > 15) return sign | 0x7c00;
  return sign | ((e + 15) << 10) | m;
}

export function fromF16Bits(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0x1f) return m ? NaN : s * Infinity;
  if (e === 0) return s * m * 2 ** -24;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** float -> bfloat16 bits: round the float32 to nearest even in its top 16 bits. */
export function toBF16Bits(value: number): number {
  f32[0] = value;
  const u = u32[0]!;
  if (Number.isNaN(f32[0])) return 0x7fc0;
  const lsb = (u >>> 16) & 1;
  return ((u + 0x7fff + lsb) >>> 16) & 0xffff;
}

export function fromBF16Bits(h: number): number {
  u32[0] = (h & 0xffff) << 16;
  return f32[0]!;
}

/** Encodes numbers as little-endian `dtype` bytes. */
export function encode(values: ArrayLike<number>, dtype: DType): Uint8Array {
  const n = values.length;
  const out = new Uint8Array(n * DTYPE_SIZE[dtype]);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < n; i++) {
    const v = values[i]!;
    switch (dtype) {
      case 'F64': dv.setFloat64(i * 8, v, true); break;
      case 'F32': dv.setFloat32(i * 4, v, true); break;
      case 'F16': dv.setUint16(i * 2, toF16Bits(v), true); break;
      case 'BF16': dv.setUint16(i * 2, toBF16Bits(v), true); break;
      case 'I8': dv.setInt8(i, v); break;
      case 'U8': case 'F8_E4M3': case 'F8_E5M2': dv.setUint8(i, v); break;
      case 'BOOL': dv.setUint8(i, v ? 1 : 0); break;
      case 'I16': dv.setInt16(i * 2, v, true); break;
      case 'U16': dv.setUint16(i * 2, v, true); break;
      case 'I32': dv.setInt32(i * 4, v, true); break;
      case 'U32': dv.setUint32(i * 4, v, true); break;
      case 'I64': dv.setBigInt64(i * 8, BigInt(Math.trunc(v)), true); break;
      case 'U64': dv.setBigUint64(i * 8, BigInt(Math.trunc(v)), true); break;
    }
  }
  return out;
}

/** The float64 values the file holds for floating dtypes (F64/F32/F16/BF16). */
export function decode(bytes: Uint8Array, dtype: 'F64' | 'F32' | 'F16' | 'BF16'): Float64Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.byteLength / DTYPE_SIZE[dtype];
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    switch (dtype) {
      case 'F64': out[i] = dv.getFloat64(i * 8, true); break;
      case 'F32': out[i] = dv.getFloat32(i * 4, true); break;
      case 'F16': out[i] = fromF16Bits(dv.getUint16(i * 2, true)); break;
      case 'BF16': out[i] = fromBF16Bits(dv.getUint16(i * 2, true)); break;
    }
  }
  return out;
}

/** What a value becomes once stored as dtype (floating dtypes). */
export function storedValues(values: ArrayLike<number>, dtype: 'F64' | 'F32' | 'F16' | 'BF16'): Float64Array {
  return decode(encode(values, dtype), dtype);
}

function tensorBytes(t: TensorSpec): Uint8Array {
  const numel = t.shape.reduce((a, b) => a * b, 1);
  if (t.data instanceof Uint8Array) return t.data;
  if (t.data) {
    if (t.data.length !== numel) throw new Error(`test helper: ${t.name} has ${t.data.length} values, shape needs ${numel}`);
    return encode(t.data, t.dtype);
  }
  return new Uint8Array(numel * DTYPE_SIZE[t.dtype]);
}

export interface BuildOptions {
  metadata?: Record<string, string>;
  /** Pad the JSON with spaces so the data area starts at a multiple of this (spec allows it). Default 8. */
  align?: number;
  /** Bytes between consecutive tensors: a hole, which the reader refuses (E_HEADER_OFFSETS). Default 0. */
  gap?: number;
  /** Extra bytes after the last tensor, which the reader refuses (E_HEADER_TRAILING). */
  trailing?: number;
}

/** A valid safetensors file in memory, tensors laid out in the given order. */
export function buildSafetensors(tensors: TensorSpec[], opts: BuildOptions = {}): { bytes: Uint8Array; info: Omit<WrittenFile, 'path'> } {
  const header: Record<string, unknown> = {};
  if (opts.metadata) header.__metadata__ = opts.metadata;
  const datas: Uint8Array[] = [];
  const rel: Record<string, number> = {};
  let pos = 0;
  for (const t of tensors) {
    const b = tensorBytes(t);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [pos, pos + b.byteLength] };
    rel[t.name] = pos;
    datas.push(b);
    pos += b.byteLength + (opts.gap ?? 0);
  }
  let json = JSON.stringify(header);
  const align = opts.align ?? 8;
  const jsonBytesLen = Buffer.byteLength(json, 'utf8');
  const padded = Math.ceil((8 + jsonBytesLen) / align) * align - 8;
  json += ' '.repeat(padded - jsonBytesLen);
  const hb = Buffer.from(json, 'utf8');
  const dataLen = pos - (tensors.length ? opts.gap ?? 0 : 0) + (opts.trailing ?? 0);
  const bytes = new Uint8Array(8 + hb.byteLength + Math.max(0, dataLen));
  new DataView(bytes.buffer).setBigUint64(0, BigInt(hb.byteLength), true);
  bytes.set(hb, 8);
  const dataOffset = 8 + hb.byteLength;
  const offsets: Record<string, number> = {};
  tensors.forEach((t, i) => {
    bytes.set(datas[i]!, dataOffset + rel[t.name]!);
    offsets[t.name] = dataOffset + rel[t.name]!;
  });
  return { bytes, info: { header, headerLength: hb.byteLength, dataOffset, offsets, size: bytes.byteLength } };
}

export async function writeSafetensors(path: string, tensors: TensorSpec[], opts: BuildOptions = {}): Promise<WrittenFile> {
  const { bytes, info } = buildSafetensors(tensors, opts);
  await writeFile(path, bytes);
  return { path, ...info };
}

export interface RawOptions {
  /** Bytes of the data area after the header. */
  data?: Uint8Array | number;
  /** Write this as the 8-byte length instead of the JSON's real byte length (bigint for huge). */
  lengthOverride?: number | bigint;
}

/** A file with any header text (broken JSON, wrong fields...) and a data area of `data` bytes. */
export function buildRawSafetensors(headerText: string | Uint8Array, opts: RawOptions = {}): Uint8Array {
  const hb = typeof headerText === 'string' ? Buffer.from(headerText, 'utf8') : headerText;
  const data = typeof opts.data === 'number' ? new Uint8Array(opts.data) : opts.data ?? new Uint8Array(0);
  const bytes = new Uint8Array(8 + hb.byteLength + data.byteLength);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(opts.lengthOverride ?? hb.byteLength), true);
  bytes.set(hb, 8);
  bytes.set(data, 8 + hb.byteLength);
  return bytes;
}

export async function writeRawSafetensors(path: string, headerText: string | Uint8Array, opts: RawOptions = {}): Promise<string> {
  await writeFile(path, buildRawSafetensors(headerText, opts));
  return path;
}

export interface ShardedModel {
  dir: string;
  shards: WrittenFile[];
  index: { metadata: Record<string, unknown>; weight_map: Record<string, string> };
}

/**
 * A Hugging Face sharded model in `dir`: model-0000k-of-0000N.safetensors plus
 * model.safetensors.index.json. `groups[k]` names the tensors of shard k. `editIndex` may alter the
 * index before it is written (to make broken ones).
 */
export async function writeSharded(
  dir: string,
  tensors: TensorSpec[],
  groups: string[][],
  editIndex?: (index: ShardedModel['index']) => void,
): Promise<ShardedModel> {
  await mkdir(dir, { recursive: true });
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const n = groups.length;
  const pad = (k: number) => String(k).padStart(5, '0');
  const shards: WrittenFile[] = [];
  const index: ShardedModel['index'] = { metadata: { total_size: 0 }, weight_map: {} };
  let total = 0;
  for (let k = 0; k < n; k++) {
    const file = `model-${pad(k + 1)}-of-${pad(n)}.safetensors`;
    const specs = groups[k]!.map((name) => {
      const t = byName.get(name);
      if (!t) throw new Error(`test helper: no tensor ${name}`);
      return t;
    });
    const w = await writeSafetensors(join(dir, file), specs);
    shards.push(w);
    for (const t of specs) {
      index.weight_map[t.name] = file;
      total += tensorBytes(t).byteLength;
    }
  }
  index.metadata.total_size = total;
  editIndex?.(index);
  await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify(index, null, 2));
  return { dir, shards, index };
}

/** Deterministic pseudo-random numbers (mulberry32), uniform in [-1, 1) or normal with `normal`. */
export function randomValues(n: number, seed: number, opts: { normal?: boolean; scale?: number } = {}): Float64Array {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = new Float64Array(n);
  const scale = opts.scale ?? 1;
  for (let i = 0; i < n; i++) {
    if (opts.normal) {
      const u = Math.max(next(), 1e-12);
      out[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next()) * scale;
    } else out[i] = (next() * 2 - 1) * scale;
  }
  return out;
}

/**
 * Writes N models (one file each, `${tag}-${k}.safetensors` in dir) holding the given tensors, with
 * values from `valueOf(t, k)` stored as `dtypeOf(t, k)`, and describes them as native job tensors
 * (sources[k] belongs to model k; 2-D and up viewed as shape[0] x rest).
 */
export async function writeJobModels(
  dir: string, tag: string, N: number, specs: { name: string; shape: number[] }[],
  valueOf: (t: number, k: number) => Float64Array, dtypeOf: (t: number, k: number) => 'F64' | 'F32' | 'F16' | 'BF16',
): Promise<{ files: string[]; tensors: { name: string; rows: number; cols: number; sources: { file: string; offset: number; dtype: 'F64' | 'F32' | 'F16' | 'BF16' }[] }[] }> {
  const files: string[] = [];
  const offsets: Record<string, number>[] = [];
  for (let k = 0; k < N; k++) {
    const ts = specs.map((s, t) => ({ name: s.name, dtype: dtypeOf(t, k), shape: s.shape, data: valueOf(t, k) }));
    const w = await writeSafetensors(join(dir, `${tag}-${k}.safetensors`), ts, { align: 1 });
    files.push(w.path);
    offsets.push(w.offsets);
  }
  const tensors = specs.map((s, t) => {
    const rows = s.shape.length >= 2 ? s.shape[0]! : 1;
    const numel = s.shape.reduce((a, b) => a * b, 1);
    return {
      name: s.name, rows, cols: rows ? numel / rows : 0,
      sources: files.map((f, k) => ({ file: f, offset: offsets[k]![s.name]!, dtype: dtypeOf(t, k) })),
    };
  });
  return { files, tensors };
}
