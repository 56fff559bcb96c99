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
 * The Hugging Face cache layout (`hub/models--org--name/{refs,snapshots,blobs}`) is understood:
 * a `models--org--name` folder (given, or a child of a folder given, such as the cache's `hub/`)
 * is the model in one of its snapshots, with id `org/name`; so is a snapshot folder given itself.
 * Snapshot files are usually symlinks into `../../blobs/`; they are followed, read-only. Of several
 * revisions the one `refs/main` names is taken, else the newest snapshot, and `onNote` says which.
 *
 * Errors about the inputs as given (a path that does not exist, a folder with no models) always
 * fail. A child of a folder that cannot be read fails too, unless the caller passes `onSkip`:
 * then it is reported there and left out (recover() does so unless `strict`).
 */
import type { Dirent } from 'node:fs';
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { InputError, MotherError } from '../errors.js';
import { idFromFile, INDEX_NAME, inputFsError, openModel, readHeader, SINGLE_NAME, type HeaderReader, type Model } from './model.js';
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
  /** Given: notes worth a look that are not errors (which revision of a cached model was read). */
  onNote?: (note: string) => void;
}

/** `models--org--name` -> `org/name` (hub names have no `--`); null for any other folder name. */
export function hubCacheId(folderName: string): string | null {
  const m = /^models--(.+)$/.exec(folderName);
  if (!m) return null;
  const [org, ...rest] = m[1]!.split('--');
  return rest.length ? `${org}/${rest.join('--')}` : org!;
}

async function isDirectory(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

/**
 * The snapshot to read of a Hugging Face cache folder `models--org--name`, or null when `dir` is
 * not one (no snapshots/ folder, or no snapshot in it). The revision `refs/main` names when it is there, else the most
 * recently modified snapshot (then the last by name); a note says so when there was a choice.
 */
export async function hubCacheSnapshot(dir: string): Promise<{ id: string; snapshot: string; note: string | null } | null> {
  const id = hubCacheId(basename(dir));
  const snapshots = join(dir, 'snapshots');
  if (id === null || !(await isDirectory(snapshots))) return null;
  let revs: string[];
  try {
    revs = (await readdir(snapshots)).sort(byName);
  } catch (err) {
    throw inputFsError(err, snapshots, 'folder');
  }
  const dated: { rev: string; mtime: number }[] = [];
  for (const rev of revs) {
    try {
      const st = await stat(join(snapshots, rev));
      if (st.isDirectory()) dated.push({ rev, mtime: st.mtimeMs });
    } catch {
      /* a dangling entry is no revision */
    }
  }
  if (!dated.length) return null;
  let main: string | null = null;
  try {
    main = (await readFile(join(dir, 'refs', 'main'), 'utf8')).trim() || null;
  } catch {
    main = null;
  }
  const named = dated.find((d) => d.rev === main);
  const pick = named ?? dated.reduce((a, b) => (b.mtime >= a.mtime ? b : a));
  let note: string | null = null;
  if (dated.length > 1)
    note = `${id}: ${dated.length} revisions cached in ${snapshots}; read ${pick.rev} (${named ? 'the one refs/main names' : main ? `the newest; refs/main names ${main}, which is not there` : 'the newest; no refs/main'})`;
  else if (main && !named)
    note = `${id}: refs/main names ${main}, which is not among the cached snapshots; read ${pick.rev}, the only one`;
  return { id, snapshot: join(snapshots, pick.rev), note };
}

/** A snapshot folder given itself (`.../models--org--name/snapshots/<rev>`): its cache id, else null. */
function snapshotId(dir: string): string | null {
  const up = dirname(dir);
  return basename(up) === 'snapshots' ? hubCacheId(basename(dirname(up))) : null;
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

/** What a folder holds: its .safetensors and .gguf files (sorted), whether it has a shard index. */
interface Listing {
  files: string[];
  hasIndex: boolean;
  ggufs: string[];
  /** Names that are regular files, not links: their real path is the folder's plus the name. */
  plain: Set<string>;
}

async function safetensorsIn(dir: string): Promise<Listing> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    throw inputFsError(err, dir, 'folder');
  }
  const files: string[] = [];
  const ggufs: string[] = [];
  const plain = new Set<string>();
  let hasIndex = false;
  for (const e of entries) {
    if (e.isFile()) plain.add(e.name);
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
  return { files: files.sort(), hasIndex, ggufs: ggufs.sort(), plain };
}

/** The name of the file that makes a folder a model (its index, model.safetensors, its one .safetensors file, or its one .gguf). */
function modelFileIn({ files, hasIndex, ggufs }: Listing): string | undefined {
  if (hasIndex) return INDEX_NAME;
  if (files.includes(SINGLE_NAME)) return SINGLE_NAME;
  if (files.length === 0 && ggufs.length === 1) return ggufs[0]!;
  return files.length === 1 ? files[0]! : undefined;
}

/** A folder is itself a model when it has an index, model.safetensors, or exactly one .safetensors file. */
async function folderIsModel(dir: string): Promise<boolean> {
  return (await modelFileOf(dir)) !== undefined;
}

/** The file that makes `dir` a model (modelFileIn), as a path. */
async function modelFileOf(dir: string): Promise<string | undefined> {
  const name = modelFileIn(await safetensorsIn(dir));
  return name === undefined ? undefined : join(dir, name);
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
async function linksBack(child: string, collectionReal: string): Promise<boolean> {
  try {
    const c = await realpath(child);
    return c === collectionReal || collectionReal.startsWith(c.endsWith(sep) ? c : c + sep);
  } catch {
    return false;
  }
}

async function hasWeights(dir: string): Promise<boolean> {
  const { files, ggufs } = await safetensorsIn(dir);
  return files.length > 0 || ggufs.length > 0;
}

/** What a child of a collection is: a model file or folder (with its real path), a hub cache folder to look into, or nothing. */
type Child = { kind: 'file' | 'folder'; real: string } | { kind: 'hub' } | null;

/**
 * Looks at one child of a collection whose real path is `dirReal`: one readdir for a folder, and a
 * stat or realpath only where a symbolic link is involved (the real path of anything else is its
 * parent's plus its name). Errors as discoverModels reports them for a child.
 */
async function lookAt(dir: string, dirReal: string, e: Dirent): Promise<Child> {
  const path = join(dir, e.name);
  const link = e.isSymbolicLink();
  let isFile = e.isFile(), isDir = e.isDirectory();
  if (link) {
    try {
      const st = await stat(path); // follows links; loops give ELOOP
      isFile = st.isFile();
      isDir = st.isDirectory();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ELOOP' || code === 'ENOENT') return null; // broken or looping link among the children: not a model
      throw inputFsError(err, path, 'path');
    }
  }
  const real = async (plain: boolean, ...rel: string[]) => {
    if (plain) return join(dirReal, ...rel);
    try {
      return await realpath(join(dir, ...rel));
    } catch (err) {
      throw inputFsError(err, path, 'model');
    }
  };
  if (isFile && (e.name.endsWith('.safetensors') || e.name.endsWith(GGUF_EXT))) return { kind: 'file', real: await real(!link, e.name) };
  if (!isDir || (link && (await linksBack(path, dirReal)))) return null;
  const listing = await safetensorsIn(path);
  if (listing.files.length || listing.ggufs.length) {
    // A folder is keyed by the file that holds it, so `ft/t0` and `ft/t0/model.safetensors` meet.
    const file = modelFileIn(listing);
    return { kind: 'folder', real: await (file === undefined ? real(!link, e.name) : real(!link && listing.plain.has(file), e.name, file)) };
  }
  return hubCacheId(e.name) !== null ? { kind: 'hub' } : null;
}

/** f over xs with at most `limit` calls in flight; results (or errors) in the order of xs. */
async function mapLimit<T, R>(xs: readonly T[], limit: number, f: (x: T) => Promise<R>): Promise<({ ok: true; value: R } | { ok: false; err: unknown })[]> {
  const out = new Array<{ ok: true; value: R } | { ok: false; err: unknown }>(xs.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < xs.length; i = next++)
      out[i] = await f(xs[i]!).then((value) => ({ ok: true as const, value }), (err: unknown) => ({ ok: false as const, err }));
  };
  await Promise.all(Array.from({ length: Math.min(limit, xs.length) }, worker));
  return out;
}

function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export async function discoverModels(inputs: string[], options: DiscoverOptions = {}): Promise<ModelRef[]> {
  if (!Array.isArray(inputs) || inputs.length === 0)
    throw new InputError('E_INPUT_NO_MODELS', 'Expected at least one model path but received none');
  const found: ModelRef[] = [];
  const seen = new Set<string>();
  /** Adds the model at `path` unless already found (by its real path: `knownReal` where the caller has it). */
  const add = async (path: string, kind: 'file' | 'folder', id?: string, knownReal?: string): Promise<void> => {
    let real: string;
    try {
      // A folder is keyed by the file that holds it, so `ft/t0` and `ft/t0/model.safetensors` meet.
      real = knownReal ?? await realpath(kind === 'file' ? path : ((await modelFileOf(path)) ?? path));
    } catch (err) {
      throw inputFsError(err, path, 'model');
    }
    if (seen.has(real)) return;
    seen.add(real);
    found.push({ id: id ?? (kind === 'file' ? (path.endsWith(GGUF_EXT) ? idFromGguf(path) : idFromFile(path)) : (snapshotId(path) ?? basename(path))), path, realPath: real, kind });
  };
  /**
   * A Hugging Face cache folder: its snapshot, under the hub id. False when `dir` is not one, or
   * (a child of a collection, `weighted`) when the snapshot holds no weights (a tokenizer-only repo).
   */
  const addCached = async (dir: string, weighted = false): Promise<boolean> => {
    const c = await hubCacheSnapshot(dir);
    if (!c || (weighted && !(await hasWeights(c.snapshot)))) return false;
    if (c.note) options.onNote?.(c.note);
    await add(c.snapshot, 'folder', c.id);
    return true;
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
    if (await addCached(path)) continue;
    let entries, dirReal;
    try {
      entries = await readdir(path, { withFileTypes: true });
      dirReal = await realpath(path);
    } catch (err) {
      throw inputFsError(err, path, 'folder');
    }
    entries.sort((a, b) => byName(a.name, b.name));
    // The children are looked at concurrently (one at a time, N model folders cost N times the
    // file system's latency), then added in name order.
    const looks = await mapLimit(entries, 32, (e) => lookAt(path, dirReal, e));
    // Models seen in this folder, found now or before (a folder given twice still holds its models).
    let models = 0;
    for (const [i, e] of entries.entries()) {
      const childPath = join(path, e.name);
      await child(childPath, async () => {
        const look = looks[i]!;
        if (!look.ok) throw look.err;
        const c = look.value;
        if (c === null) return;
        if (c.kind !== 'hub') {
          models++;
          await add(childPath, c.kind, undefined, c.real);
        } else if (await addCached(childPath, true)) models++;
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
 * the same inputs always give the same error. The result keeps the order of `refs`. `read` reads
 * the safetensors headers (openModel).
 */
export async function openModels(
  refs: ModelRef[],
  concurrency = 8,
  onSkip?: (ref: ModelRef, err: MotherError) => void,
  read: HeaderReader = readHeader,
): Promise<Model[]> {
  const out: (Model | undefined)[] = new Array(refs.length);
  const failed: { index: number; err: unknown }[] = [];
  let fatal = false;
  let next = 0;
  const worker = async () => {
    // Indexes are handed out in order, so after a fatal error every earlier model has been tried.
    for (let i = next++; i < refs.length && !fatal; i = next++) {
      try {
        out[i] = await openModel(refs[i]!.path, refs[i]!.id, read);
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
