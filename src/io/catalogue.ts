/**
 * The tensor catalogue across models: which models can be compared, on which tensors.
 *
 * Architecture groups: models whose tensors (name + shape) mostly coincide form one group; models
 * of different architectures are never compared. "Mostly": classes of identical signatures are
 * merged when the (name, shape) pairs they share hold at least half the elements of each, so
 * fine-tuned children with a different classifier head stay with their parent, while a ViT and a
 * ResNet do not. A base model saved without its head class's prefix (GPT2Model's `h.0.attn.c_attn`
 * against GPT2LMHeadModel's `transformer.h.0.attn.c_attn`) joins the prefixed class when the names
 * coincide once prefixed, and its tensors take the prefixed names. Inside a group a tensor is used when every model holds it with the same shape
 * and a computable dtype (F64, F32, F16, BF16; dtypes may differ across models) and the selection
 * options keep it; every other tensor is reported in `skipped` with the reason.
 */
import { createHash } from 'node:crypto';
import { InputError, UnsupportedDTypeError } from '../errors.js';
import type { JobTensor, SourceDType } from '../native.js';
import type { SkippedTensor } from '../types.js';
import type { Model, TensorInfo } from './model.js';

export interface SelectOptions {
  /** Glob patterns (`*` any run of characters, `?` one character) a tensor name must match (any). */
  include?: string[];
  /** Glob patterns that drop a tensor. */
  exclude?: string[];
  /** Only 2-D square tensors (the paper's choice). Default false. */
  squareOnly?: boolean;
  /** Skip tensors with fewer elements. Default 1. */
  minElements?: number;
}

export interface CatalogueTensor {
  name: string;
  shape: number[];
  numel: number;
  rows: number;
  cols: number;
  /** dtype per model, in group order (GGUF block types are dequantised by the reader). */
  dtypes: SourceDType[];
}

export interface ArchitectureGroup {
  /** Hash of the shared (name, shape) list: the Family.architecture string. */
  architecture: string;
  models: Model[];
  /** Selected tensors, in the first model's file order. */
  tensors: CatalogueTensor[];
  skipped: SkippedTensor[];
}

const COMPUTABLE = new Set(['F64', 'F32', 'F16', 'BF16', 'Q8_0', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q4_K', 'Q5_K', 'Q6_K']);

/** Glob -> RegExp matching the whole name. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (const ch of glob) {
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else re += ch.replace(/[.+^${}()|[\]\\/-]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 's');
}

function key(t: TensorInfo): string {
  return `${t.name}\u0000${t.shape.join(',')}`;
}

/** rows x cols view for the rank kernel: 2-D as is, 1-D/0-D as one row, N-D as shape[0] x rest. */
export function matrixView(shape: number[]): { rows: number; cols: number } {
  if (shape.length === 0) return { rows: 1, cols: 1 };
  if (shape.length === 1) return { rows: 1, cols: shape[0]! };
  return { rows: shape[0]!, cols: shape.slice(1).reduce((a, b) => a * b, 1) };
}

function validateOptions(opts: SelectOptions): void {
  for (const k of ['include', 'exclude'] as const) {
    const v = opts[k];
    if (v !== undefined && (!Array.isArray(v) || v.some((p) => typeof p !== 'string')))
      throw new InputError('E_INPUT_OPTION', `Expected an array of glob strings for ${k} but received ${JSON.stringify(v)}`);
  }
  if (opts.squareOnly !== undefined && typeof opts.squareOnly !== 'boolean')
    throw new InputError('E_INPUT_OPTION', `Expected a boolean for squareOnly but received ${JSON.stringify(opts.squareOnly)}`);
  const m = opts.minElements;
  if (m !== undefined && (typeof m !== 'number' || !Number.isInteger(m) || m < 0))
    throw new InputError('E_INPUT_OPTION', `Expected a non-negative integer for minElements but received ${JSON.stringify(m)}`);
}

/** Groups models by architecture (see the file comment). Deterministic: groups in order of first model. */
export function groupByArchitecture(models: Model[]): Model[][] {
  // Classes of identical signatures first.
  const classes: { sig: string; models: Model[]; keys: Map<string, number>; elements: number }[] = [];
  const bySig = new Map<string, number>();
  const classOf = new Map<Model, number>();
  // A table in an order seen before is that class without the sort (most models of a big zoo).
  const byTable = new Map<string, number>();
  for (const m of models) {
    let table = '';
    for (const t of m.tensors.values()) table += `${key(t)}\n`;
    let c = byTable.get(table);
    if (c === undefined) {
      const keys = new Map<string, number>();
      for (const t of m.tensors.values()) keys.set(key(t), t.numel);
      const sig = [...keys.keys()].sort().join('\n');
      c = bySig.get(sig);
      if (c === undefined) {
        c = classes.length;
        bySig.set(sig, c);
        let elements = 0;
        for (const n of keys.values()) elements += n;
        classes.push({ sig, models: [], keys, elements });
      }
      byTable.set(table, c);
    }
    classes[c]!.models.push(m);
    classOf.set(m, c);
  }
  // Union-find over classes: merge when shared (name, shape) elements are >= half of each.
  const parent = classes.map((_, i) => i);
  const find = (i: number): number => (parent[i] === i ? i : (parent[i] = find(parent[i]!)));
  const enough = (shared: number, total: number) => (total === 0 ? shared === 0 : shared * 2 >= total);
  const sharedWith = (A: (typeof classes)[number], B: (typeof classes)[number], prefix = '') => {
    let shared = 0;
    for (const [k, n] of B.keys) if (A.keys.has(prefix + k)) shared += n;
    return shared;
  };
  const unaligned: [number, number][] = [];
  for (let a = 0; a < classes.length; a++)
    for (let b = a + 1; b < classes.length; b++) {
      const A = classes[a]!, B = classes[b]!;
      const shared = sharedWith(A, B);
      if (shared > 0 && enough(shared, A.elements) && enough(shared, B.elements)) parent[find(b)] = find(a);
      else unaligned.push([a, b]);
    }
  // A head class saves the base model under a prefix (GPT2LMHeadModel's `transformer.`,
  // BertForSequenceClassification's `bert.`) that the base class saved alone lacks (GPT2Model,
  // BertModel). Classes that mostly coincide once one's names take the other's prefix are one
  // architecture; the unprefixed class's matching names are renamed to the prefixed form.
  const prefixOf = classes.map((c) => basePrefix(c.keys, c.elements));
  const renamed = new Map<number, { prefix: string; keys: Set<string> }>();
  for (const [a, b] of unaligned) {
    if (find(a) === find(b)) continue;
    for (const [P, U] of [[a, b], [b, a]] as const) {
      const prefix = prefixOf[P];
      if (!prefix || renamed.has(U)) continue;
      const shared = sharedWith(classes[P]!, classes[U]!, prefix);
      if (!(shared > 0 && enough(shared, classes[P]!.elements) && enough(shared, classes[U]!.elements))) continue;
      const keys = new Set([...classes[U]!.keys.keys()].filter((k) => classes[P]!.keys.has(prefix + k) && !classes[U]!.keys.has(prefix + k)));
      renamed.set(U, { prefix, keys });
      parent[find(U)] = find(P);
      break;
    }
  }
  for (const [c, { prefix, keys }] of renamed)
    for (const m of classes[c]!.models) {
      const tensors = new Map<string, TensorInfo>();
      for (const [name, info] of m.tensors) {
        if (keys.has(key(info))) tensors.set(prefix + name, { ...info, name: prefix + info.name });
        else tensors.set(name, info);
      }
      m.tensors = tensors;
    }
  const groups = new Map<number, Model[]>();
  for (const m of models) {
    const root = find(classOf.get(m)!);
    if (!groups.has(root)) groups.set(root, []);
    groups.get(root)!.push(m);
  }
  return [...groups.values()];
}

/** The first name component holding at least half of a class's elements, with its dot ('transformer.'). */
function basePrefix(keys: Map<string, number>, elements: number): string | null {
  const under = new Map<string, number>();
  for (const [k, n] of keys) {
    const dot = k.indexOf('.');
    if (dot > 0) under.set(k.slice(0, dot + 1), (under.get(k.slice(0, dot + 1)) ?? 0) + n);
  }
  for (const [p, n] of under) if (elements > 0 && n * 2 >= elements) return p;
  return null;
}

/** Selects the tensors one group's models are compared on. */
export function catalogueGroup(models: Model[], opts: SelectOptions = {}): ArchitectureGroup {
  validateOptions(opts);
  if (models.length === 0) throw new InputError('E_INPUT_NO_MODELS', 'Expected at least one model in the group');
  const include = (opts.include ?? []).map(globToRegExp);
  const exclude = (opts.exclude ?? []).map(globToRegExp);
  const minElements = opts.minElements ?? 1;
  const ids = models.map((m) => m.id);
  const skipped: SkippedTensor[] = [];
  const tensors: CatalogueTensor[] = [];
  const sharedKeys: string[] = [];

  // Every name any model holds, in the first holder's file order, with its column of infos (one
  // pass over each model's table: 10,000 models x 100 names by per-name lookups cost ~1 s).
  const names: string[] = [];
  const columns: (TensorInfo | undefined)[][] = [];
  const column = new Map<string, number>();
  models.forEach((m, k) => {
    for (const [n, info] of m.tensors) {
      let c = column.get(n);
      if (c === undefined) {
        c = names.length;
        column.set(n, c);
        names.push(n);
        columns.push(new Array<TensorInfo | undefined>(models.length));
      }
      columns[c]![k] = info;
    }
  });

  for (const [c, name] of names.entries()) {
    const infos = columns[c]!;
    const missing: string[] = [];
    for (let k = 0; k < models.length; k++) if (!infos[k]) missing.push(ids[k]!);
    if (missing.length) {
      skipped.push({ name, reason: `missing from ${missing.length} of ${models.length} models`, models: missing });
      continue;
    }
    const all = infos as TensorInfo[];
    const shape = all[0]!.shape;
    let sameShape = true;
    for (let k = 0; k < all.length && sameShape; k++) {
      const sh = all[k]!.shape;
      sameShape = sh.length === shape.length;
      for (let i = 0; i < sh.length && sameShape; i++) sameShape = sh[i] === shape[i];
    }
    if (!sameShape) {
      const shapes = [...new Set(all.map((t) => `[${t.shape.join(', ')}]`))];
      skipped.push({ name, reason: `shape differs across models (${shapes.slice(0, 4).join(', ')}${shapes.length > 4 ? ', ...' : ''})` });
      continue;
    }
    sharedKeys.push(key(all[0]!));
    const bad: (readonly [string, string])[] = [];
    for (let k = 0; k < all.length; k++) if (!COMPUTABLE.has(all[k]!.dtype)) bad.push([all[k]!.dtype, ids[k]!]);
    if (bad.length) {
      const dts = [...new Set(bad.map(([d]) => d))];
      if (opts.include?.includes(name))
        throw new UnsupportedDTypeError(
          'E_DTYPE_UNSUPPORTED',
          `tensor "${name}" was asked for by name but has dtype ${dts.join('/')} in ${bad.map(([, id]) => id).join(', ')}; ` +
            'only F64, F32, F16, BF16 and the GGUF types Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K can be compared',
          { tensor: name, file: all[models.findIndex((m) => m.id === bad[0]![1])]!.file },
        );
      skipped.push({ name, reason: `dtype ${dts.join('/')} not supported`, models: bad.map(([, id]) => id) });
      continue;
    }
    if (include.length && !include.some((r) => r.test(name))) {
      skipped.push({ name, reason: 'not matched by the include patterns' });
      continue;
    }
    if (exclude.some((r) => r.test(name))) {
      skipped.push({ name, reason: 'excluded by pattern' });
      continue;
    }
    if (opts.squareOnly && !(shape.length === 2 && shape[0] === shape[1])) {
      skipped.push({ name, reason: 'not square' });
      continue;
    }
    const numel = all[0]!.numel;
    // Empty tensors always go, whatever minElements: they have no moments and no rank view.
    if (numel === 0 || numel < minElements) {
      skipped.push({ name, reason: numel === 0 ? 'empty tensor' : `fewer than ${minElements} elements` });
      continue;
    }
    tensors.push({ name, shape, numel, ...matrixView(shape), dtypes: all.map((t) => t.dtype as SourceDType) });
  }
  const architecture = createHash('sha256').update(sharedKeys.sort().join('\n')).digest('hex').slice(0, 16);
  return { architecture, models, tensors, skipped };
}

/** Groups the models by architecture and selects each group's tensors. */
export function buildCatalogue(models: Model[], opts: SelectOptions = {}): ArchitectureGroup[] {
  validateOptions(opts);
  return groupByArchitecture(models).map((g) => catalogueGroup(g, opts));
}

/**
 * The group's selected tensors as native job tensors: sources[k] belongs to group.models[k], or
 * with `members` (indices into the group) to group.models[members[k]] (a batch costs its size, not N).
 */
export function jobTensors(group: ArchitectureGroup, members?: readonly number[]): JobTensor[] {
  const ks = members ?? group.models.map((_, k) => k);
  return group.tensors.map((t) => ({
    name: t.name,
    rows: t.rows,
    cols: t.cols,
    sources: ks.map((k) => {
      const m = group.models[k]!;
      const info = m.tensors.get(t.name)!;
      return { file: info.file, offset: info.offset, dtype: t.dtypes[k]!, ...(info.permuteHeads ? { permuteHeads: info.permuteHeads } : {}) };
    }),
  }));
}
