/**
 * GGUF (llama.cpp) files as Models. A `.gguf` file, or a folder holding exactly one `.gguf` file
 * (and no safetensors), is one model. Its header is parsed and validated natively (io/gguf.cc);
 * tensor data is dequantised on the fly by the stats runner, never here.
 *
 * So that a GGUF copy lines up element for element with its safetensors source:
 *   - names: llama.cpp's tensor names become Hugging Face names for the architectures in
 *     HF_NAMES' scope (llama, granite, mistral, qwen2, qwen3: `token_embd` -> `model.embed_tokens`,
 *     `blk.N.attn_q` -> `model.layers.N.self_attn.q_proj`, ...). Other architectures, and names
 *     without an HF counterpart (rope_freqs), keep their llama.cpp names: two GGUF files of one
 *     architecture still compare with each other;
 *   - shapes: GGUF lists ne[0] (the fastest-varying dimension) first, so the shape is ne reversed;
 *   - the rotary permutation: convert_hf_to_gguf.py reorders the rows of q_proj / k_proj for
 *     llama-style models (PERMUTED); the tensor gets `permuteHeads` (head_count for q,
 *     head_count_kv for k) and the reader returns the rows in Hugging Face order.
 * Tensor types the kernels cannot dequantise (Q2_K, IQ*, ..., or a ggml type newer than this
 * reader) stay in the table with their type name as dtype: the catalogue skips them with a reason.
 */
import { basename } from 'node:path';
import { withCallerStack } from '../errors.js';
import { cpuAddon, type GgufValue, type RawGguf } from '../native.js';
import type { Model, TensorInfo } from './model.js';

export const GGUF_EXT = '.gguf';

/** ggml types the stats runner reads (cpu/dequant.cc). */
export const GGUF_READABLE = new Set(['F64', 'F32', 'F16', 'BF16', 'Q8_0', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q4_K', 'Q5_K', 'Q6_K']);

/** Architectures (general.architecture) whose tensors get Hugging Face names. */
export const HF_NAMES = new Set(['llama', 'granite', 'mistral', 'qwen2', 'qwen3']);
/** Of those, the ones convert_hf_to_gguf.py writes with q/k rows permuted for GGML's rotary layout. */
export const PERMUTED = new Set(['llama', 'granite', 'mistral']);

/** What a GGUF model adds to a Model. */
export interface GgufModelInfo {
  version: number;
  architecture: string | null;
  /** general.file_type (llama_ftype), when present. */
  fileType: number | null;
  /** Tensors per ggml type name, e.g. { F32: 9, Q8_0: 29 }. */
  types: Record<string, number>;
  /** True when the tensor names were mapped to Hugging Face names. */
  hfNames: boolean;
  /** Tensor names (llama.cpp) that kept their name because no mapping applies. */
  unmapped: string[];
}

const LAYER_SUB: Record<string, string> = {
  attn_q: 'self_attn.q_proj',
  attn_k: 'self_attn.k_proj',
  attn_v: 'self_attn.v_proj',
  attn_output: 'self_attn.o_proj',
  attn_q_norm: 'self_attn.q_norm',
  attn_k_norm: 'self_attn.k_norm',
  ffn_gate: 'mlp.gate_proj',
  ffn_up: 'mlp.up_proj',
  ffn_down: 'mlp.down_proj',
  attn_norm: 'input_layernorm',
  ffn_norm: 'post_attention_layernorm',
};
const TOP: Record<string, string> = {
  token_embd: 'model.embed_tokens',
  output_norm: 'model.norm',
  output: 'lm_head',
};

/** llama.cpp tensor name -> Hugging Face name (llama-family), or null when there is none. */
export function hfName(gguf: string): string | null {
  const m = /^blk\.(\d+)\.([a-z_]+)\.(weight|bias)$/.exec(gguf);
  if (m) {
    const sub = LAYER_SUB[m[2]!];
    return sub ? `model.layers.${m[1]}.${sub}.${m[3]}` : null;
  }
  const t = /^([a-z_]+)\.(weight|bias)$/.exec(gguf);
  if (t && TOP[t[1]!]) return `${TOP[t[1]!]}.${t[2]}`;
  return null;
}

export function idFromGguf(file: string): string {
  const b = basename(file);
  return b.toLowerCase().endsWith(GGUF_EXT) ? b.slice(0, -GGUF_EXT.length) : b;
}

/** Reads one GGUF header natively (async, validated). */
export function readGguf(file: string): Promise<RawGguf> {
  const addon = cpuAddon();
  return withCallerStack(() => addon.readGguf!(file));
}

/** A metadata value as a string (Model.metadata): arrays of up to 64 items as JSON, longer ones summarised. */
function metaString(v: GgufValue): string {
  if (typeof v !== 'object') return String(v);
  if (v.length <= 64 && v.items.length === v.length) return JSON.stringify(v.items);
  return `[${v.length} x ${v.itemType}]`;
}

/** The Model of a parsed GGUF header (see the file comment). */
export function ggufModel(id: string, path: string, g: RawGguf): Model {
  const kv = new Map(g.kv.map((e) => [e.key, e.value]));
  const archValue = kv.get('general.architecture');
  const arch = typeof archValue === 'string' ? archValue : null;
  const mapNames = arch !== null && HF_NAMES.has(arch);
  const permute = arch !== null && PERMUTED.has(arch);
  const num = (key: string): number | null => {
    const v = kv.get(key);
    return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : null;
  };
  const heads = arch ? num(`${arch}.attention.head_count`) : null;
  const headsKv = (arch ? num(`${arch}.attention.head_count_kv`) : null) ?? heads;
  const fileType = kv.get('general.file_type');
  const types: Record<string, number> = {};
  const unmapped: string[] = [];
  const tensors = new Map<string, TensorInfo>();
  for (const t of g.tensors) {
    const dtype = t.type ?? `ggml type ${t.ggmlType}`;
    types[dtype] = (types[dtype] ?? 0) + 1;
    const mapped = mapNames ? hfName(t.name) : null;
    if (mapNames && mapped === null) unmapped.push(t.name);
    let name = mapped ?? t.name;
    // Two llama.cpp names can never map to one HF name, but keep the table honest if a file tries.
    if (tensors.has(name)) name = t.name;
    const shape = [...t.ne].reverse();
    const info: TensorInfo = {
      name,
      dtype,
      shape,
      numel: t.ne.reduce((a, b) => a * b, 1),
      file: g.path,
      offset: t.offset,
      byteLength: t.byteLength ?? 0,
    };
    if (permute && mapped !== null && shape.length === 2) {
      const h = /\.self_attn\.q_proj\.weight$/.test(mapped) ? heads : /\.self_attn\.k_proj\.weight$/.test(mapped) ? headsKv : null;
      if (h !== null && shape[0]! % (2 * h) === 0) info.permuteHeads = h;
    }
    tensors.set(name, info);
  }
  const metadata: Record<string, string> = {};
  for (const e of g.kv) Object.defineProperty(metadata, e.key, { value: metaString(e.value), enumerable: true, writable: true, configurable: true });
  const model: Model = {
    id,
    path,
    format: 'gguf',
    files: [g.path],
    tensors,
    metadata,
    gguf: {
      version: g.version,
      architecture: arch,
      fileType: typeof fileType === 'number' ? fileType : null,
      types,
      hfNames: mapNames,
      unmapped,
    },
    dispose() {
      model.tensors.clear();
    },
  };
  return model;
}

/** Opens one .gguf file as a Model. Errors: E_GGUF_* (a malformed file), E_IO_*. */
export async function openGguf(file: string, id: string, path = file): Promise<Model> {
  return ggufModel(id, path, await readGguf(file));
}
