/**
 * Inputs (files and folders) -> the models to compare.
 *   - an input that is a model (a .safetensors file, or a folder that is one: see model.ts) is one model;
 *   - any other folder is a collection: each child that is a .safetensors or .gguf file, or a folder
 *     holding .safetensors files (or .gguf files), is one model; other children (truth.json, READMEs, empty folders) are ignored.
 * The same model reached twice counts once, under the id it was first found with: repeated inputs,
 * symlinks, and a model given both as its folder and as its weight file (`ft ft/t0/model.safetensors`)
 * are recognised by the real path of the file that holds the model (the index of a sharded model).
 * A folder given twice is still a folder of models, not an empty one.
 * Ids clashing across folders are made unique by prefixing the parent folder's name
 * ('a/model', 'b/model'), then by a '~2', '~3' suffix. Order: inputs as given, children sorted.
 *
 * Errors about the inputs as given (a path that does not exist, a folder with no models) always
 * fail. A child of a folder that cannot be read fails too, unless the caller passes `onSkip`:
 * then it is reported there and left out (recover() does so unless `strict`).
 */
import { readdir, realpath, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { InputError, MotherError } from '../errors.js';
import { idFromFile, INDEX_NAME, inputFsError, openModel, SINGLE_NAME, type Model } from './model.js';
import { GGUF_EXT, idFromGguf } from './gguf.js';

export interface ModelRef {
  id: string;
  /** The path as found (resolved, symlinks not followed). */
  path: string;
  /** The real path of the file that holds the model, used to notice the same model twice. */
  realPath: string;
  kind: 'file' | 'folder';
}

export interface DiscoverOptions {
  /**
   * Given: a child of an input folder that cannot be read is passed here and left out, instead of
   * failing the discovery. Errors about the inputs themselves still throw.
   */
  onSkip?: (path: string, err: MotherError) => void;
}

/**
 * Errors that make one model unreadable without saying anything about the others: a bad header,
 * an I/O failure, inconsistent shards, a folder that is unreadable or ambiguous, a file gone
 * between discovery and reading. Never cancellation, never a bug.
 */
export function isModelReadError(err: unknown): err is MotherError {
  if (!(err instanceof MotherError)) return false;
  const c = err.code;
  return c.startsWith('E_HEADER_') || c.startsWith('E_GGUF_') || c.startsWith('E_IO_') || c.startsWith('E_SHARD_') ||
    c === 'E_INPUT_AMBIGUOUS' || c === 'E_INPUT_UNREADABLE' || c === 'E_INPUT_NOT_FOUND' || c === 'E_INPUT_NO_MODELS';
}

async function safetensorsIn(dir: string): Promise<{ files: string[]; hasIndex: boolean; ggufs: string[] }> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    throw inputFsError(err, dir, 'folder');
  }
  const files: string[] = [];
  const ggufs: string[] = [];
  let hasIndex = false;
  for (const e of entries) {
    if (e.name === INDEX_NAME) hasIndex = true;
    const list = e.name.endsWith('.safetensors') ? files : e.name.endsWith(GGUF_EXT) ? ggufs : null;
    if (!list) continue;
    if (e.isFile()) list.push(e.name);
    else if (e.isSymbolicLink()) {
      try {
        if ((await stat(join(dir, e.name))).isFile()) list.push(e.name);
      } catch {
        /* dangling or looping link: ignored */
      }
    }
  }
  return { files: files.sort(), hasIndex, ggufs: ggufs.sort() };
}

/** A folder is itself a model when it has an index, model.safetensors, or exactly one .safetensors file. */
async function folderIsModel(dir: string): Promise<boolean> {
  return (await modelFileOf(dir)) !== undefined;
}

/** The file that makes `dir` a model (its index, model.safetensors, its one .safetensors file, or its one .gguf). */
async function modelFileOf(dir: string): Promise<string | undefined> {
  const { files, hasIndex, ggufs } = await safetensorsIn(dir);
  if (hasIndex) return join(dir, INDEX_NAME);
  if (files.includes(SINGLE_NAME)) return join(dir, SINGLE_NAME);
  if (files.length === 0 && ggufs.length === 1) return join(dir, ggufs[0]!);
  return files.length === 1 ? join(dir, files[0]!) : undefined;
}

/** What a folder is, for messages: a model, a folder of models (their paths), or neither. */
export async function describeFolder(dir: string): Promise<{ kind: 'model' } | { kind: 'collection'; models: string[] } | { kind: 'empty' }> {
  if (await folderIsModel(dir)) return { kind: 'model' };
  try {
    return { kind: 'collection', models: (await discoverModels([dir])).map((r) => r.path) };
  } catch (err) {
    if (err instanceof InputError && err.code === 'E_INPUT_NO_MODELS') return { kind: 'empty' };
    throw err;
  }
}

/** A child folder that is (a link to) the collection itself or one of its ancestors: a loop, not a model. */
async function linksBack(child: string, collection: string): Promise<boolean> {
  try {
    const [c, p] = await Promise.all([realpath(child), realpath(collection)]);
    return c === p || p.startsWith(c.endsWith(sep) ? c : c + sep);
  } catch {
    return false;
  }
}

async function hasWeights(dir: string): Promise<boolean> {
  const { files, ggufs } = await safetensorsIn(dir);
  return files.length > 0 || ggufs.length > 0;
}

function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export async function discoverModels(inputs: string[], options: DiscoverOptions = {}): Promise<ModelRef[]> {
  if (!Array.isArray(inputs) || inputs.length === 0)
    throw new InputError('E_INPUT_NO_MODELS', 'Expected at least one model path but received none');
  const found: ModelRef[] = [];
  const seen = new Set<string>();
  /** Adds the model at `path` unless already found; false when it is a duplicate. */
  const add = async (path: string, kind: 'file' | 'folder'): Promise<void> => {
    let real: string;
    try {
      // A folder is keyed by the file that holds it, so `ft/t0` and `ft/t0/model.safetensors` meet.
      real = await realpath(kind === 'file' ? path : ((await modelFileOf(path)) ?? path));
    } catch (err) {
      throw inputFsError(err, path, 'model');
    }
    if (seen.has(real)) return;
    seen.add(real);
    found.push({ id: kind === 'file' ? (path.endsWith(GGUF_EXT) ? idFromGguf(path) : idFromFile(path)) : basename(path), path, realPath: real, kind });
  };
  /** A child of a collection: skipped through onSkip when it cannot be read, else the error. */
  const child = async (path: string, run: () => Promise<void>): Promise<void> => {
    try {
      await run();
    } catch (err) {
      if (!options.onSkip || !isModelReadError(err)) throw err;
      options.onSkip(path, err);
    }
  };

  for (const input of inputs) {
    if (typeof input !== 'string' || input === '')
      throw new InputError('E_INPUT_PATH', `Expected a path string for a model input but received ${JSON.stringify(input)}`);
    const path = resolve(input);
    let st;
    try {
      st = await stat(path);
    } catch (err) {
      throw inputFsError(err, path, 'input');
    }
    if (st.isFile()) {
      await add(path, 'file');
      continue;
    }
    if (!st.isDirectory()) throw new InputError('E_INPUT_UNREADABLE', `input ${path} is neither a file nor a folder`, { file: path });
    if (await folderIsModel(path)) {
      await add(path, 'folder');
      continue;
    }
    let entries;
    try {
      entries = await readdir(path, { withFileTypes: true });
    } catch (err) {
      throw inputFsError(err, path, 'folder');
    }
    // Models seen in this folder, found now or before (a folder given twice still holds its models).
    let models = 0;
    for (const e of entries.sort((a, b) => byName(a.name, b.name))) {
      const childPath = join(path, e.name);
      await child(childPath, async () => {
        let cst;
        try {
          cst = await stat(childPath); // follows links; loops give ELOOP
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'ELOOP' || code === 'ENOENT') return; // broken or looping link among the children: not a model
          throw inputFsError(err, childPath, 'path');
        }
        if (cst.isFile() && (e.name.endsWith('.safetensors') || e.name.endsWith(GGUF_EXT))) {
          models++;
          await add(childPath, 'file');
        } else if (cst.isDirectory() && !(await linksBack(childPath, path)) && (await hasWeights(childPath))) {
          models++;
          await add(childPath, 'folder');
        }
      });
    }
    if (models === 0)
      throw new InputError('E_INPUT_NO_MODELS', `folder ${path} holds no models (no .safetensors files or model folders)`, { file: path });
  }
  return uniqueIds(found);
}

function uniqueIds(refs: ModelRef[]): ModelRef[] {
  const count = new Map<string, number>();
  for (const r of refs) count.set(r.id, (count.get(r.id) ?? 0) + 1);
  const renamed = refs.map((r) => (count.get(r.id)! > 1 ? { ...r, id: `${basename(dirname(r.path))}/${r.id}` } : r));
  const used = new Map<string, number>();
  return renamed.map((r) => {
    const k = (used.get(r.id) ?? 0) + 1;
    used.set(r.id, k);
    return k === 1 ? r : { ...r, id: `${r.id}~${k}` };
  });
}

/**
 * Opens every discovered model (a few headers at a time). With `onSkip`, a model that cannot be
 * read (isModelReadError) is passed there and left out; any other error, or any error without
 * `onSkip`, fails the whole call: with the error of the first failing model in `refs` order, so
 * the same inputs always give the same error. The result keeps the order of `refs`.
 */
export async function openModels(
  refs: ModelRef[],
  concurrency = 8,
  onSkip?: (ref: ModelRef, err: MotherError) => void,
): Promise<Model[]> {
  const out: (Model | undefined)[] = new Array(refs.length);
  const failed: { index: number; err: unknown }[] = [];
  let fatal = false;
  let next = 0;
  const worker = async () => {
    // Indexes are handed out in order, so after a fatal error every earlier model has been tried.
    for (let i = next++; i < refs.length && !fatal; i = next++) {
      try {
        out[i] = await openModel(refs[i]!.path, refs[i]!.id);
      } catch (err) {
        failed.push({ index: i, err });
        if (!onSkip || !isModelReadError(err)) fatal = true;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, refs.length) }, worker));
  failed.sort((a, b) => a.index - b.index);
  const first = failed.find((f) => fatal && (!onSkip || !isModelReadError(f.err)));
  if (first) {
    for (const m of out) m?.dispose();
    throw first.err;
  }
  // Reported in discovery order, whatever order the reads finished in.
  for (const f of failed) onSkip!(refs[f.index]!, f.err as MotherError);
  return out.filter((m): m is Model => m !== undefined);
}
