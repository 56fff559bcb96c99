/**
 * Inputs (files and folders) -> the models to compare.
 *   - an input that is a model (a .safetensors file, or a folder that is one: see model.ts) is one model;
 *   - any other folder is a collection: each child that is a .safetensors file or a folder holding
 *     .safetensors files is one model; other children (truth.json, READMEs, empty folders) are ignored.
 * The same model reached twice (symlinks, repeated inputs) counts once: real paths are compared.
 * Ids clashing across folders are made unique by prefixing the parent folder's name
 * ('a/model', 'b/model'), then by a '~2', '~3' suffix. Order: inputs as given, children sorted.
 */
import { readdir, realpath, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { InputError } from '../errors.js';
import { idFromFile, INDEX_NAME, inputFsError, openModel, SINGLE_NAME, type Model } from './model.js';

export interface ModelRef {
  id: string;
  /** The path as found (resolved, symlinks not followed). */
  path: string;
  /** The real path, used to notice the same model twice. */
  realPath: string;
  kind: 'file' | 'folder';
}

async function safetensorsIn(dir: string): Promise<{ files: string[]; hasIndex: boolean }> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    throw inputFsError(err, dir, 'folder');
  }
  const files: string[] = [];
  let hasIndex = false;
  for (const e of entries) {
    if (e.name === INDEX_NAME) hasIndex = true;
    if (!e.name.endsWith('.safetensors')) continue;
    if (e.isFile()) files.push(e.name);
    else if (e.isSymbolicLink()) {
      try {
        if ((await stat(join(dir, e.name))).isFile()) files.push(e.name);
      } catch {
        /* dangling or looping link: ignored */
      }
    }
  }
  return { files: files.sort(), hasIndex };
}

/** A folder is itself a model when it has an index, model.safetensors, or exactly one .safetensors file. */
async function folderIsModel(dir: string): Promise<boolean> {
  const { files, hasIndex } = await safetensorsIn(dir);
  return hasIndex || files.includes(SINGLE_NAME) || files.length === 1;
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

function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export async function discoverModels(inputs: string[]): Promise<ModelRef[]> {
  if (!Array.isArray(inputs) || inputs.length === 0)
    throw new InputError('E_INPUT_NO_MODELS', 'Expected at least one model path but received none');
  const found: ModelRef[] = [];
  const seen = new Set<string>();
  const add = async (path: string, kind: 'file' | 'folder') => {
    let real: string;
    try {
      real = await realpath(path);
    } catch (err) {
      throw inputFsError(err, path, 'model');
    }
    if (seen.has(real)) return;
    seen.add(real);
    found.push({ id: kind === 'file' ? idFromFile(path) : basename(path), path, realPath: real, kind });
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
    const before = found.length;
    for (const e of entries.sort((a, b) => byName(a.name, b.name))) {
      const child = join(path, e.name);
      let cst;
      try {
        cst = await stat(child); // follows links; loops give ELOOP
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ELOOP' || code === 'ENOENT') continue; // broken or looping link among the children: not a model
        throw inputFsError(err, child, 'path');
      }
      if (cst.isFile() && e.name.endsWith('.safetensors')) await add(child, 'file');
      else if (cst.isDirectory() && !(await linksBack(child, path)) && (await safetensorsIn(child)).files.length > 0)
        await add(child, 'folder');
    }
    if (found.length === before)
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

/** Opens every discovered model (a few headers at a time). */
export async function openModels(refs: ModelRef[], concurrency = 8): Promise<Model[]> {
  const out: Model[] = new Array(refs.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < refs.length; i = next++) out[i] = await openModel(refs[i]!.path, refs[i]!.id);
  };
  try {
    await Promise.all(Array.from({ length: Math.min(concurrency, refs.length) }, worker));
  } catch (err) {
    for (const m of out) m?.dispose();
    throw err;
  }
  return out;
}
