/**
 * Atomic file output for `--out`: readers see either the old file or the complete new one, never a
 * half-written file. Temp file in the same directory (rename is only atomic within one filesystem),
 * fsync before rename (else a crash can leave a renamed but empty file), temp removed on failure.
 * Atomic replacement is only right for a regular file or a new path: `resolveOutputTarget` and
 * `writeOutput` below decide, for `--out`, between stdout, writing a device or FIFO in place, and
 * the atomic replacement of a file (through symlinks, which are kept).
 */
import { constants } from 'node:fs';
import { access, lstat, open, readlink, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { InputError } from '../errors.js';
import { basename, dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';

function tempPathFor(target: string): string {
  const abs = resolve(target);
  // Hidden, unique per process and call, so parallel writers never share a temp file.
  return join(dirname(abs), `.${basename(abs)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/**
 * Runs `writer` on a fresh temp file next to `target`, then fsyncs and renames it over `target`.
 * If `writer` (or anything else) throws, the temp file is removed and `target` is left untouched.
 */
export async function withAtomicFile(
  target: string,
  writer: (file: FileHandle) => Promise<void>,
  options: { mode?: number } = {},
): Promise<void> {
  const abs = resolve(target);
  const tmp = tempPathFor(abs);
  // 'wx': never follow or clobber an existing path under the temp name.
  const fh = await open(tmp, 'wx', options.mode ?? 0o644);
  let closed = false;
  try {
    await writer(fh);
    await fh.sync();
    await fh.close();
    closed = true;
    await rename(tmp, abs);
  } catch (err) {
    if (!closed) await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw err;
  }
  await syncDir(dirname(abs));
}

/** Writes `data` to `target` atomically (see withAtomicFile). */
export async function writeFileAtomic(
  target: string,
  data: string | Uint8Array,
  options: { mode?: number } = {},
): Promise<void> {
  await withAtomicFile(
    target,
    async (fh) => {
      await fh.writeFile(data);
    },
    options,
  );
}

/** Makes the rename itself durable; best effort, since some platforms cannot open directories. */
async function syncDir(dir: string): Promise<void> {
  let dh: FileHandle | undefined;
  try {
    dh = await open(dir, 'r');
    await dh.sync();
  } catch {
    // Windows and some filesystems refuse fsync on a directory; the data itself is already synced.
  } finally {
    await dh?.close().catch(() => {});
  }
}

/**
 * Where a report goes, decided before any work (see resolveOutputTarget):
 *   stdout  `-`
 *   atomic  a regular file or a new path: temp file + rename, so readers never see half a report;
 *           `path` is the final target with symlinks resolved (the link itself is kept)
 *   direct  a character or block device or a FIFO (/dev/null, /dev/stdout, a named pipe): written
 *           in place, never replaced (renaming over /dev/null would destroy it)
 */
export type OutputTarget =
  | { kind: 'stdout' }
  | { kind: 'atomic'; path: string; given: string; exists: boolean; mode?: number }
  | { kind: 'direct'; path: string; given: string; what: string };

/** The output path cannot be written: bad input (exit 2), said before the work starts. */
export class OutputPathError extends InputError {
  constructor(message: string, file: string, cause?: unknown) {
    super('E_INPUT_OUTPUT', message, { file, cause });
  }
}

function fsReason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'ENOENT') return 'it does not exist';
  if (code === 'ENOTDIR') return 'a part of the path is not a folder';
  if (code === 'ELOOP') return 'a symbolic link loop';
  return (err as Error)?.message ?? String(err);
}

/** Follows symlinks, also dangling ones (whose target is then created): the path to write. */
async function finalTarget(path: string): Promise<string> {
  let p = path;
  for (let hops = 0; hops < 40; hops++) {
    let st;
    try {
      st = await lstat(p);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return p;
      throw err;
    }
    if (!st.isSymbolicLink()) return p;
    p = resolve(dirname(p), await readlink(p));
  }
  throw Object.assign(new Error('too many symbolic links'), { code: 'ELOOP' });
}

/**
 * Decides how `given` will be written and checks that it can be, without writing anything:
 * `-` is stdout; a folder, a socket, a missing or unwritable output folder are OutputPathErrors.
 */
export async function resolveOutputTarget(given: string): Promise<OutputTarget> {
  if (given === '-') return { kind: 'stdout' };
  const abs = resolve(given);
  let path: string;
  try {
    path = await finalTarget(abs);
  } catch (err) {
    throw new OutputPathError(`cannot write the report to ${abs}: ${fsReason(err)}`, abs, err);
  }
  const via = path === abs ? '' : ` (the target of the symbolic link ${abs})`;
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new OutputPathError(`cannot write the report to ${path}${via}: ${fsReason(err)}`, abs, err);
  }
  if (st?.isDirectory()) throw new OutputPathError(`cannot write the report to ${path}${via}: it is a folder`, abs);
  if (st?.isSocket()) throw new OutputPathError(`cannot write the report to ${path}${via}: it is a socket`, abs);
  if (st && !st.isFile()) {
    const what = st.isFIFO() ? 'FIFO' : st.isCharacterDevice() ? 'character device' : st.isBlockDevice() ? 'block device' : 'special file';
    try {
      await access(path, constants.W_OK);
    } catch (err) {
      throw new OutputPathError(`cannot write the report to the ${what} ${path}${via}: ${fsReason(err)}`, abs, err);
    }
    return { kind: 'direct', path, given: abs, what };
  }
  // A regular file or a new one: the temp file and the rename need a writable folder.
  const dir = dirname(path);
  let dst;
  try {
    dst = await stat(dir);
  } catch (err) {
    throw new OutputPathError(`cannot write the report to ${path}${via}: the folder ${dir} ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : `cannot be used (${fsReason(err)})`}`, abs, err);
  }
  if (!dst.isDirectory()) throw new OutputPathError(`cannot write the report to ${path}${via}: ${dir} is not a folder`, abs);
  try {
    await access(dir, constants.W_OK | constants.X_OK);
  } catch (err) {
    throw new OutputPathError(`cannot write the report to ${path}${via}: the folder ${dir} is not writable (${fsReason(err)})`, abs, err);
  }
  return st ? { kind: 'atomic', path, given: abs, exists: true, mode: st.mode & 0o7777 } : { kind: 'atomic', path, given: abs, exists: false };
}

/**
 * Writes `data` to a target from resolveOutputTarget: stdout through `stdout`, a special file in
 * place (opened for writing, never created, truncated or replaced), a regular or new file
 * atomically (an existing file keeps its permission bits).
 */
export async function writeOutput(target: OutputTarget, data: string, stdout: { write(s: string): unknown }): Promise<void> {
  if (target.kind === 'stdout') {
    stdout.write(data);
    return;
  }
  if (target.kind === 'direct') {
    const fh = await open(target.path, constants.O_WRONLY | (constants.O_NOCTTY ?? 0));
    try {
      await fh.writeFile(data);
    } finally {
      await fh.close();
    }
    return;
  }
  const mode = target.mode;
  await withAtomicFile(target.path, async (fh) => {
    // open() applies the umask; the replacement keeps exactly the bits the old file had.
    if (mode !== undefined) await fh.chmod(mode).catch(() => {});
    await fh.writeFile(data);
  });
}
