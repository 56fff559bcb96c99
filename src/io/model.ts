/**
 * One model on disk -> its tensors (name, dtype, shape, where the bytes are). A model is:
 *   - a `.safetensors` file (id: the file name without `.safetensors`);
 *   - a folder holding `model.safetensors`;
 *   - a folder holding a sharded checkpoint: `model.safetensors.index.json` + the shards its
 *     weight_map names (model-0000k-of-0000N.safetensors);
 *   - a folder holding a single other `*.safetensors` file;
 *   - a `.gguf` file, or a folder holding no safetensors and exactly one `.gguf` file (gguf.ts).
 * A folder's id is its whole name (`stable-diffusion-v1.5` keeps its dots).
 * Headers are read and validated natively, off the main thread. No file stays open: the stats
 * runner opens files itself, and checks they still hold the bytes the header promised.
 *
 * Shard index decisions: every tensor the index lists must be in the shard it names
 * (E_SHARD_MISSING otherwise), a tensor in two shards is E_SHARD_DUPLICATE, and a tensor a shard
 * holds that the index does not list (or places elsewhere) is E_SHARD_UNLISTED: an error, because
 * index and shards disagree about what the model is, and guessing would compare different weights.
 */
import { readFile, readdir, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { InputError, ShardError, withCallerStack } from '../errors.js';
import { cpuAddon, type RawHeader } from '../native.js';
import { GGUF_EXT, idFromGguf, openGguf, type GgufModelInfo } from './gguf.js';

export interface TensorInfo {
  name: string;
  /** The header's dtype string ('F32', 'BF16', 'I8', ...; for GGUF the ggml type: 'Q8_0', 'Q4_K', ...). */
  dtype: string;
  shape: number[];
  numel: number;
  /** The file holding it (a shard for sharded models). */
  file: string;
  /** Absolute byte offset of the data in `file`. */
  offset: number;
  byteLength: number;
  /** GGUF q/k projections stored in llama.cpp's rotary row order (see gguf.ts): the head count to undo it with. */
  permuteHeads?: number;
}

/** How a model is stored: a safetensors model, a PEFT adapter folder (src/io/peft.ts), a GGUF file. */
export type ModelFormat = 'safetensors' | 'peft-adapter' | 'gguf';

export interface Model {
  id: string;
  format: ModelFormat;
  /** The path given (file or folder), resolved. */
  path: string;
  /** The safetensors files read. */
  files: string[];
  /** In file order (shard order for sharded models). */
  tensors: Map<string, TensorInfo>;
  /** __metadata__ of the (first) file, if any; for GGUF its KV pairs as strings. */
  metadata: Record<string, string> | null;
  /** Set for a GGUF model (gguf.ts). */
  gguf?: GgufModelInfo;
  /** Drops the tensor table; no file handles are held. */
  dispose(): void;
}

export const INDEX_NAME = 'model.safetensors.index.json';
/** A PEFT adapter folder: its config and its factors (see src/io/peft.ts). */
export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';

async function isFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}
export const SINGLE_NAME = 'model.safetensors';

/** Error codes of stat/readdir failures -> input errors that name the path. */
export function inputFsError(err: unknown, path: string, what = 'path'): InputError {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT' || code === 'ENOTDIR')
    return new InputError('E_INPUT_NOT_FOUND', `${what} ${path} does not exist`, { file: path, cause: err });
  if (code === 'ELOOP')
    return new InputError('E_INPUT_UNREADABLE', `${what} ${path} is a symbolic link loop`, { file: path, cause: err });
  if (code === 'EACCES' || code === 'EPERM')
    return new InputError('E_INPUT_UNREADABLE', `${what} ${path} cannot be read (permission denied)`, { file: path, cause: err });
  return new InputError('E_INPUT_UNREADABLE', `${what} ${path} cannot be read: ${(err as Error)?.message ?? err}`, {
    file: path,
    cause: err,
  });
}

export function idFromFile(file: string): string {
  const b = basename(file);
  return b.endsWith('.safetensors') ? b.slice(0, -'.safetensors'.length) : b;
}

/** Reads one safetensors header natively (async, validated). */
export function readHeader(file: string): Promise<RawHeader> {
  return withCallerStack(() => cpuAddon().readHeader(file));
}

function addTensors(tensors: Map<string, TensorInfo>, h: RawHeader): void {
  for (const t of h.tensors) {
    tensors.set(t.name, {
      name: t.name,
      dtype: t.dtype,
      shape: t.shape,
      numel: t.shape.reduce((a, b) => a * b, 1),
      file: h.path,
      offset: h.dataOffset + t.begin,
      byteLength: t.end - t.begin,
    });
  }
}

function makeModel(id: string, path: string, headers: RawHeader[], tensors: Map<string, TensorInfo>, format: ModelFormat = 'safetensors'): Model {
  const model: Model = {
    id,
    format,
    path,
    files: headers.map((h) => h.path),
    tensors,
    metadata: headers[0]?.metadata ?? null,
    dispose() {
      model.tensors.clear();
    },
  };
  return model;
}

/** The files of a folder ending in `ext` (links followed), sorted, and every name the folder holds. */
async function listSafetensors(dir: string, ext = '.safetensors'): Promise<{ files: string[]; names: Set<string> }> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    throw inputFsError(err, dir, 'folder');
  }
  const out: string[] = [];
  for (const e of entries) {
    if (!e.name.endsWith(ext)) continue;
    if (e.isFile()) out.push(e.name);
    else if (e.isSymbolicLink()) {
      try {
        if ((await stat(join(dir, e.name))).isFile()) out.push(e.name);
      } catch {
        /* dangling link: not a model file */
      }
    }
  }
  return { files: out.sort(), names: new Set(entries.map((e) => e.name)) };
}

/** Reads one safetensors header: readHeader, or a cache's (src/store/cache.ts). */
export type HeaderReader = (file: string) => Promise<RawHeader>;

async function openSharded(id: string, dir: string, read: HeaderReader): Promise<Model> {
  const indexPath = join(dir, INDEX_NAME);
  let index: unknown;
  try {
    index = JSON.parse(await readFile(indexPath, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code) throw inputFsError(err, indexPath, 'shard index');
    throw new ShardError('E_SHARD_INDEX', `shard index ${indexPath} is not valid JSON: ${(err as Error).message}`, { file: indexPath });
  }
  const map = (index as { weight_map?: unknown } | null)?.weight_map;
  if (!map || typeof map !== 'object' || Array.isArray(map))
    throw new ShardError('E_SHARD_INDEX', `shard index ${indexPath} has no "weight_map" object`, { file: indexPath });
  const weightMap = map as Record<string, unknown>;
  const shardNames: string[] = [];
  for (const [tensor, shard] of Object.entries(weightMap)) {
    if (typeof shard !== 'string' || shard === '' || shard.includes('/') || shard.includes('\\') || shard === '..' || shard === '.')
      throw new ShardError('E_SHARD_INDEX', `shard index ${indexPath} maps tensor "${tensor}" to an invalid shard name ${JSON.stringify(shard)}`, {
        file: indexPath,
        tensor,
      });
    if (!shardNames.includes(shard)) shardNames.push(shard);
  }
  if (shardNames.length === 0)
    throw new ShardError('E_SHARD_INDEX', `shard index ${indexPath} lists no tensors`, { file: indexPath });
  shardNames.sort();
  const paths = shardNames.map((s) => join(dir, s));
  await Promise.all(
    paths.map(async (p) => {
      try {
        if (!(await stat(p)).isFile()) throw Object.assign(new Error('not a file'), { code: 'ENOENT' });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR')
          throw new ShardError('E_SHARD_MISSING', `shard ${p} named by ${indexPath} does not exist`, { file: p });
        throw inputFsError(err, p, 'shard');
      }
    }),
  );
  const headers = await Promise.all(paths.map((p) => read(p)));
  // Duplicates first (over all shards), then agreement with the index, so each error says the root cause.
  const holder = new Map<string, string>();
  headers.forEach((h, k) => {
    for (const t of h.tensors) {
      const other = holder.get(t.name);
      if (other !== undefined)
        throw new ShardError('E_SHARD_DUPLICATE', `tensor "${t.name}" is in two shards of ${dir}: ${other} and ${shardNames[k]!}`, {
          file: h.path,
          tensor: t.name,
        });
      holder.set(t.name, shardNames[k]!);
    }
  });
  const tensors = new Map<string, TensorInfo>();
  headers.forEach((h, k) => {
    const shard = shardNames[k]!;
    for (const t of h.tensors) {
      const listed = weightMap[t.name];
      if (listed !== shard)
        throw new ShardError(
          'E_SHARD_UNLISTED',
          listed === undefined
            ? `shard ${h.path} holds tensor "${t.name}" which ${indexPath} does not list`
            : `shard ${h.path} holds tensor "${t.name}" which ${indexPath} places in ${String(listed)}`,
          { file: h.path, tensor: t.name },
        );
    }
    addTensors(tensors, h);
  });
  for (const [tensor, shard] of Object.entries(weightMap))
    if (!holder.has(tensor))
      throw new ShardError('E_SHARD_MISSING', `tensor "${tensor}" listed by ${indexPath} is not in shard ${String(shard)}`, {
        file: join(dir, String(shard)),
        tensor,
      });
  return makeModel(id, dir, headers, tensors);
}

/**
 * Opens a model (see the file comment for what a model is). `id` overrides the derived id; `read`
 * reads the safetensors headers (a cache's reader skips unchanged files).
 * Errors: E_INPUT_NOT_FOUND, E_INPUT_UNREADABLE, E_INPUT_NO_MODELS (folder without safetensors),
 * E_INPUT_AMBIGUOUS (folder with several safetensors files and no index), E_SHARD_*, E_HEADER_*, E_IO_*.
 */
export async function openModel(path: string, id?: string, read: HeaderReader = readHeader): Promise<Model> {
  const full = resolve(path);
  let st;
  try {
    st = await stat(full);
  } catch (err) {
    throw inputFsError(err, full, 'model');
  }
  if (st.isFile()) {
    if (full.endsWith(GGUF_EXT)) return openGguf(full, id ?? idFromGguf(full));
    const h = await read(full);
    const tensors = new Map<string, TensorInfo>();
    addTensors(tensors, h);
    return makeModel(id ?? idFromFile(full), full, [h], tensors);
  }
  if (!st.isDirectory()) throw new InputError('E_INPUT_UNREADABLE', `model ${full} is neither a file nor a folder`, { file: full });
  const modelId = id ?? basename(full);
  const { files, names } = await listSafetensors(full);
  let hasIndex = false;
  try {
    // Only where the listing has one: a stat that fails costs an exception, per model folder.
    hasIndex = names.has(INDEX_NAME) && (await stat(join(full, INDEX_NAME))).isFile();
  } catch {
    hasIndex = false;
  }
  if (hasIndex) return openSharded(modelId, full, read);
  const single = files.includes(SINGLE_NAME) ? SINGLE_NAME : files.length === 1 ? files[0]! : undefined;
  if (single) {
    const h = await read(join(full, single));
    const tensors = new Map<string, TensorInfo>();
    addTensors(tensors, h);
    const adapter = single === ADAPTER_WEIGHTS && (await isFile(join(full, ADAPTER_CONFIG)));
    return makeModel(modelId, full, [h], tensors, adapter ? 'peft-adapter' : 'safetensors');
  }
  if (files.length === 0) {
    const ggufs = (await listSafetensors(full, GGUF_EXT)).files;
    if (ggufs.length === 1) return openGguf(join(full, ggufs[0]!), modelId, full);
    if (ggufs.length > 1)
      throw new InputError('E_INPUT_AMBIGUOUS', `folder ${full} holds ${ggufs.length} .gguf files (${ggufs.slice(0, 4).join(', ')}): pass the files themselves`, { file: full });
    throw new InputError('E_INPUT_NO_MODELS', `folder ${full} holds no .safetensors or .gguf file`, { file: full });
  }
  throw new InputError(
    'E_INPUT_AMBIGUOUS',
    `folder ${full} holds ${files.length} .safetensors files (${files.slice(0, 4).join(', ')}${files.length > 4 ? ', ...' : ''}) ` +
      `but no ${SINGLE_NAME} or ${INDEX_NAME}: pass the files themselves, or add the shard index`,
    { file: full },
  );
}
