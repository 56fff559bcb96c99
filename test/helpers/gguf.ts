/**
 * Test helpers for GGUF: a small writer laid out as gguf-py's GGUFWriter writes files (magic,
 * version, counts, KV pairs, tensor infos, padding to the alignment, tensor data each padded),
 * IEEE half conversions, and the ggml block sizes.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const GGML: Record<string, { id: number; elems: number; bytes: number }> = {
  F32: { id: 0, elems: 1, bytes: 4 },
  F16: { id: 1, elems: 1, bytes: 2 },
  Q4_0: { id: 2, elems: 32, bytes: 18 },
  Q4_1: { id: 3, elems: 32, bytes: 20 },
  Q5_0: { id: 6, elems: 32, bytes: 22 },
  Q5_1: { id: 7, elems: 32, bytes: 24 },
  Q8_0: { id: 8, elems: 32, bytes: 34 },
  Q2_K: { id: 10, elems: 256, bytes: 84 },
  Q4_K: { id: 12, elems: 256, bytes: 144 },
  Q5_K: { id: 13, elems: 256, bytes: 176 },
  Q6_K: { id: 14, elems: 256, bytes: 210 },
  IQ2_XXS: { id: 16, elems: 256, bytes: 66 },
  F64: { id: 28, elems: 1, bytes: 8 },
  BF16: { id: 30, elems: 1, bytes: 2 },
};

/** binary16 bits -> number (exact). */
export function halfToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0x1f) return m ? NaN : s * Infinity;
  if (e === 0) return s * m * 2 ** -24;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

export type KV =
  | { key: string; type: 'STRING'; value: string }
  | { key: string; type: 'UINT32' | 'INT32' | 'FLOAT32' | 'UINT8' | 'BOOL' | 'UINT64'; value: number }
  | { key: string; type: 'ARRAY'; itemType: 'STRING' | 'UINT32'; value: (string | number)[] }
  /** Any value type id followed by raw bytes (malformed files). */
  | { key: string; type: 'RAW'; vt: number; raw: Uint8Array };

export interface GgufTensorSpec {
  name: string;
  /** ne[0] first. */
  ne: number[];
  type: string | number;
  data: Uint8Array;
  /** Data offset to write (default: the next aligned one). */
  offset?: number;
  /** Dimension count to write (default ne.length). */
  nDims?: number;
}

export interface GgufOptions {
  version?: number;
  tensorCount?: number | bigint;
  kvCount?: number | bigint;
}

const VT: Record<string, number> = { UINT8: 0, INT8: 1, UINT16: 2, INT16: 3, UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7, STRING: 8, ARRAY: 9, UINT64: 10, INT64: 11, FLOAT64: 12 };

class Buf {
  parts: Buffer[] = [];
  length = 0;
  push(b: Buffer): void {
    this.parts.push(b);
    this.length += b.length;
  }
  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0);
    this.push(b);
  }
  u64(v: number | bigint): void {
    if (typeof v === 'number' && v > Number.MAX_SAFE_INTEGER) throw new Error('pass a bigint');
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  str(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.push(b);
  }
  value(type: string, v: string | number): void {
    if (type === 'STRING') return this.str(String(v));
    const b = Buffer.alloc({ UINT8: 1, BOOL: 1, UINT32: 4, INT32: 4, FLOAT32: 4, UINT64: 8 }[type] ?? 4);
    if (type === 'UINT8' || type === 'BOOL') b.writeUInt8(Number(v));
    else if (type === 'UINT32') b.writeUInt32LE(Number(v));
    else if (type === 'INT32') b.writeInt32LE(Number(v));
    else if (type === 'FLOAT32') b.writeFloatLE(Number(v));
    else if (type === 'UINT64') b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

const pad = (n: number, a: number) => Math.ceil(n / a) * a;

/** The bytes of a GGUF v3 file (or `version`), alignment 32 unless general.alignment says otherwise. */
export function ggufBytes(kvs: KV[], tensors: GgufTensorSpec[], opts: GgufOptions = {}): Buffer {
  const found = kvs.find((k) => k.key === 'general.alignment' && k.type === 'UINT32');
  const a = found && found.type === 'UINT32' ? found.value : undefined;
  const align = a && (a & (a - 1)) === 0 ? a : 32;
  const b = new Buf();
  b.push(Buffer.from('GGUF'));
  b.u32(opts.version ?? 3);
  b.u64(opts.tensorCount ?? tensors.length);
  b.u64(opts.kvCount ?? kvs.length);
  for (const kv of kvs) {
    b.str(kv.key);
    if (kv.type === 'RAW') {
      b.u32(kv.vt);
      b.push(Buffer.from(kv.raw));
      continue;
    }
    b.u32(VT[kv.type]!);
    if (kv.type === 'ARRAY') {
      b.u32(VT[kv.itemType]!);
      b.u64(kv.value.length);
      for (const x of kv.value) b.value(kv.itemType, x);
    } else b.value(kv.type, kv.value);
  }
  let off = 0;
  for (const t of tensors) {
    b.str(t.name);
    b.u32(t.nDims ?? t.ne.length);
    for (const n of t.ne) b.u64(n);
    b.u32(typeof t.type === 'number' ? t.type : GGML[t.type]!.id);
    b.u64(t.offset ?? off);
    off += pad(t.data.length, align);
  }
  b.push(Buffer.alloc(pad(b.length, align) - b.length));
  for (const t of tensors) {
    b.push(Buffer.from(t.data));
    b.push(Buffer.alloc(pad(t.data.length, align) - t.data.length));
  }
  return b.bytes();
}

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `mother-${prefix}-`));
}

export async function writeGguf(path: string, kvs: KV[], tensors: GgufTensorSpec[], opts: GgufOptions = {}): Promise<string> {
  await writeFile(path, ggufBytes(kvs, tensors, opts));
  return path;
}

/** The KV pairs of a llama GGUF (as the wild zoo writes them), with the given head counts. */
export function llamaKvs(heads: number, headsKv: number, extra: KV[] = []): KV[] {
  return [
    { key: 'general.architecture', type: 'STRING', value: 'llama' },
    { key: 'general.name', type: 'STRING', value: 'Test' },
    { key: 'llama.attention.head_count', type: 'UINT32', value: heads },
    { key: 'llama.attention.head_count_kv', type: 'UINT32', value: headsKv },
    ...extra,
    { key: 'general.alignment', type: 'UINT32', value: 32 },
  ];
}
