/**
 * PEFT adapter folders (adapter_config.json + adapter_model.safetensors), compared as
 * base + (lora_alpha / r) · B · A, in the low-rank form: nothing is materialised.
 *
 * Which model is the base is decided from the weights: a trained LoRA update is aligned with its
 * base's weights far more than with an unrelated model's (Hu et al. 2021, section 7), so each
 * candidate W scores ||Q_B' W Q_A||_F / ||W||_F, Q_B and Q_A orthonormal bases of B's columns and
 * A's rows (the r x r block of W in the update's own subspaces). That separates families clearly;
 * inside one family the candidates (a base and its fine-tunes) score alike, and the caller decides
 * there (src/graph/relations.ts placeAdapter). `base_model_name_or_path` is evidence only.
 */
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { ADAPTER_CONFIG, type Model, type TensorInfo } from './model.js';

export interface LoraFactor {
  /** The base model's tensor the update applies to. */
  target: string;
  /** out x r, row-major. */
  B: Float64Array;
  /** r x in, row-major. */
  A: Float64Array;
  r: number;
  rows: number;
  cols: number;
}

export interface Adapter {
  r: number;
  alpha: number;
  /** alpha / r (alpha / sqrt(r) with use_rslora). */
  scale: number;
  targetModules: string[];
  /** base_model_name_or_path: evidence, not truth (often a local path). */
  declaredBase: string | null;
  factors: LoraFactor[];
}

/** `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight` -> `model.layers.0.self_attn.q_proj.weight`. */
export function targetName(loraKey: string): string | null {
  const m = /^(?:base_model\.model\.)?(.*)\.lora_[AB](?:\.[^.]+)?\.weight$/.exec(loraKey);
  return m ? `${m[1]}.weight` : null;
}

function decode(buf: Buffer, dtype: string, numel: number): Float64Array {
  const out = new Float64Array(numel);
  if (dtype === 'F32') for (let i = 0; i < numel; i++) out[i] = buf.readFloatLE(i * 4);
  else if (dtype === 'F64') for (let i = 0; i < numel; i++) out[i] = buf.readDoubleLE(i * 8);
  else if (dtype === 'BF16') {
    const f = new Float32Array(1), u = new Uint32Array(f.buffer);
    for (let i = 0; i < numel; i++) { u[0] = buf.readUInt16LE(i * 2) << 16; out[i] = f[0]!; }
  } else if (dtype === 'F16')
    for (let i = 0; i < numel; i++) {
      const h = buf.readUInt16LE(i * 2), s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
      out[i] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
    }
  else return new Float64Array(0);
  return out;
}

/** A tensor's values (F64/F32/F16/BF16), or null for other dtypes. */
export async function readTensor(info: TensorInfo): Promise<Float64Array | null> {
  if (!['F32', 'F64', 'F16', 'BF16'].includes(info.dtype)) return null;
  const fh = await open(info.file, 'r');
  try {
    const buf = Buffer.alloc(info.byteLength);
    const { bytesRead } = await fh.read(buf, 0, info.byteLength, info.offset);
    if (bytesRead !== info.byteLength) return null;
    return decode(buf, info.dtype, info.numel);
  } finally {
    await fh.close();
  }
}

const FLOAT_SIZE: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2 };

/**
 * `count` consecutive values of each tensor from element `start` (float dtypes; null for a tensor
 * of another dtype or a short read), one file handle per file. Read-only.
 */
export async function readTensorSlices(infos: { info: TensorInfo; start: number; count: number }[]): Promise<{ values: (Float64Array | null)[]; bytesRead: number }> {
  const handles = new Map<string, Awaited<ReturnType<typeof open>>>();
  let bytesRead = 0;
  try {
    const values: (Float64Array | null)[] = [];
    for (const { info, start, count } of infos) {
      const size = FLOAT_SIZE[info.dtype];
      if (!size || start < 0 || start + count > info.numel) { values.push(null); continue; }
      let fh = handles.get(info.file);
      if (!fh) { fh = await open(info.file, 'r'); handles.set(info.file, fh); }
      const buf = Buffer.alloc(count * size);
      const got = (await fh.read(buf, 0, buf.length, info.offset + start * size)).bytesRead;
      bytesRead += got;
      values.push(got === buf.length ? decode(buf, info.dtype, count) : null);
    }
    return { values, bytesRead };
  } finally {
    await Promise.all([...handles.values()].map((h) => h.close()));
  }
}

/** Reads an adapter model's config and factors. */
export async function readAdapter(model: Model): Promise<Adapter> {
  const cfgPath = join(model.path, ADAPTER_CONFIG);
  let cfg: Record<string, unknown>;
  try {
    cfg = JSON.parse(await readFile(cfgPath, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new InputError('E_INPUT_FORMAT', `adapter config ${cfgPath} cannot be read: ${(err as Error).message}`, { file: cfgPath });
  }
  const r = Number(cfg.r), alpha = Number(cfg.lora_alpha ?? cfg.r);
  if (!(r > 0) || !Number.isFinite(alpha))
    throw new InputError('E_INPUT_FORMAT', `adapter config ${cfgPath} has no valid r / lora_alpha`, { file: cfgPath });
  const scale = cfg.use_rslora === true ? alpha / Math.sqrt(r) : alpha / r;
  const byTarget = new Map<string, { A?: TensorInfo; B?: TensorInfo }>();
  for (const t of model.tensors.values()) {
    const target = targetName(t.name);
    if (!target || t.shape.length !== 2) continue;
    const e = byTarget.get(target) ?? {};
    if (/\.lora_A(\.|$)/.test(t.name)) e.A = t; else e.B = t;
    byTarget.set(target, e);
  }
  const factors: LoraFactor[] = [];
  for (const [target, { A, B }] of byTarget) {
    if (!A || !B || A.shape[0] !== B.shape[1]) continue;
    const [a, b] = await Promise.all([readTensor(A), readTensor(B)]);
    if (!a || !b) continue;
    factors.push({ target, A: a, B: b, r: A.shape[0]!, rows: B.shape[0]!, cols: A.shape[1]! });
  }
  const base = cfg.base_model_name_or_path;
  const tm = cfg.target_modules;
  return {
    r, alpha, scale,
    targetModules: Array.isArray(tm) ? tm.filter((x): x is string => typeof x === 'string') : typeof tm === 'string' ? [tm] : [],
    declaredBase: typeof base === 'string' && base ? base : null,
    factors,
  };
}

/** Orthonormal basis (columns, Gram-Schmidt twice) of the n x k column-major set `cols`. */
function orthonormal(cols: Float64Array[]): Float64Array[] {
  const out: Float64Array[] = [];
  for (const c of cols) {
    const v = Float64Array.from(c);
    for (let pass = 0; pass < 2; pass++)
      for (const q of out) {
        let d = 0;
        for (let i = 0; i < v.length; i++) d += q[i]! * v[i]!;
        for (let i = 0; i < v.length; i++) v[i]! -= d * q[i]!;
      }
    let n = 0;
    for (let i = 0; i < v.length; i++) n += v[i]! * v[i]!;
    n = Math.sqrt(n);
    if (n > 1e-12) out.push(v.map((x) => x / n));
  }
  return out;
}

/** ||Q_B' W Q_A||_F / ||W||_F for one factor pair and a base tensor W (rows x cols). */
export function subspaceAlignment(f: LoraFactor, W: Float64Array): number {
  const { r, rows, cols } = f;
  const bCols: Float64Array[] = [], aRows: Float64Array[] = [];
  for (let k = 0; k < r; k++) {
    const c = new Float64Array(rows);
    for (let i = 0; i < rows; i++) c[i] = f.B[i * r + k]!;
    bCols.push(c);
    aRows.push(f.A.subarray(k * cols, (k + 1) * cols));
  }
  const QB = orthonormal(bCols), QA = orthonormal(aRows);
  let num = 0, den = 0;
  for (let i = 0; i < W.length; i++) den += W[i]! * W[i]!;
  // (W QA) for each QA vector, then project on QB.
  for (const qa of QA) {
    const wq = new Float64Array(rows);
    for (let i = 0; i < rows; i++) {
      let s = 0;
      for (let j = 0; j < cols; j++) s += W[i * cols + j]! * qa[j]!;
      wq[i] = s;
    }
    for (const qb of QB) {
      let s = 0;
      for (let i = 0; i < rows; i++) s += qb[i]! * wq[i]!;
      num += s * s;
    }
  }
  return den > 0 ? Math.sqrt(num / den) : 0;
}

/** Most factors scored per candidate (spread over the layers): the score needs no full pass. */
export const MAX_SCORED_FACTORS = 8;

/**
 * Mean subspace alignment of the adapter with a candidate base model, over up to
 * MAX_SCORED_FACTORS targets; null when the candidate lacks a target or its shape or dtype.
 */
export async function alignmentWith(adapter: Adapter, candidate: Model): Promise<number | null> {
  const fs = adapter.factors;
  if (fs.length === 0) return null;
  const step = Math.max(1, fs.length / MAX_SCORED_FACTORS);
  const picked: LoraFactor[] = [];
  for (let x = 0; x < fs.length && picked.length < MAX_SCORED_FACTORS; x += step) picked.push(fs[Math.floor(x)]!);
  let sum = 0;
  for (const f of picked) {
    const info = candidate.tensors.get(f.target);
    if (!info || info.shape.length !== 2 || info.shape[0] !== f.rows || info.shape[1] !== f.cols) return null;
    const W = await readTensor(info);
    if (!W) return null;
    sum += subspaceAlignment(f, W);
  }
  return sum / picked.length;
}
