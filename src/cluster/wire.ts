/**
 * What travels through Redis between the coordinator and the workers (src/cluster), as JSON:
 *   - a unit's models: the catalogue entries of its subgroup (tensor names, shapes, dtypes, and per
 *     model the file and byte offset of each selected tensor), so a worker reads exactly the bytes
 *     the coordinator would, without parsing headers or choosing tensors itself;
 *   - results: typed arrays as base64 of their bytes (bit-exact, NaN payloads included; JSON has
 *     no NaN).
 */
import type { ArchitectureGroup, CatalogueTensor } from '../io/catalogue.js';
import type { Model, TensorInfo } from '../io/model.js';

export interface WireModel {
  id: string;
  path: string;
  files: string[];
  format: Model['format'];
  /** Only the group's selected tensors, in the group's order. */
  tensors: TensorInfo[];
}

export interface WireGroup {
  architecture: string;
  tensors: CatalogueTensor[];
  models: WireModel[];
}

export function toWire(group: ArchitectureGroup): WireGroup {
  return {
    architecture: group.architecture,
    tensors: group.tensors,
    models: group.models.map((m) => ({
      id: m.id, path: m.path, files: m.files, format: m.format,
      tensors: group.tensors.map((t) => m.tensors.get(t.name)!),
    })),
  };
}

/** Rewrites a path for this machine: the first prefix of `map` that matches (FROM=TO mounts). */
export function mapPath(path: string, map: readonly (readonly [string, string])[]): string {
  for (const [from, to] of map) if (path === from || path.startsWith(from.endsWith('/') ? from : `${from}/`)) return to + path.slice(from.length);
  return path;
}

/** The subgroup a worker computes on; files rewritten by the worker's path map. */
export function fromWire(w: WireGroup, map: readonly (readonly [string, string])[] = []): ArchitectureGroup {
  const mp = (p: string) => mapPath(p, map);
  return {
    architecture: w.architecture, tensors: w.tensors, skipped: [],
    models: w.models.map((m): Model => ({
      id: m.id, path: mp(m.path), files: m.files.map(mp), format: m.format, metadata: null,
      tensors: new Map(m.tensors.map((t) => [t.name, { ...t, file: mp(t.file) }])),
      dispose: () => {},
    })),
  };
}

type Typed = Float64Array | Float32Array | Int32Array;
const KINDS = { f64: Float64Array, f32: Float32Array, i32: Int32Array } as const;

function kindOf(v: unknown): keyof typeof KINDS | undefined {
  if (v instanceof Float64Array) return 'f64';
  if (v instanceof Float32Array) return 'f32';
  if (v instanceof Int32Array) return 'i32';
  return undefined;
}

/** Typed arrays (anywhere in plain objects and arrays) to { $typed, b64 }. */
export function pack(v: unknown): unknown {
  const kind = kindOf(v);
  if (kind) { const a = v as Typed; return { $typed: kind, b64: Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64') }; }
  if (Array.isArray(v)) return v.map(pack);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, pack(x)]));
  return v;
}

export function unpack<T>(v: unknown): T {
  if (Array.isArray(v)) return v.map((x) => unpack(x)) as T;
  if (v && typeof v === 'object') {
    const o = v as { $typed?: keyof typeof KINDS; b64?: string };
    if (o.$typed && typeof o.b64 === 'string' && KINDS[o.$typed]) {
      const bytes = Buffer.from(o.b64, 'base64');
      const C = KINDS[o.$typed];
      // A fresh, aligned buffer (a Buffer's offset need not be a multiple of 8).
      const out = new C(bytes.byteLength / C.BYTES_PER_ELEMENT);
      new Uint8Array(out.buffer).set(bytes);
      return out as T;
    }
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unpack(x)])) as T;
  }
  return v as T;
}
