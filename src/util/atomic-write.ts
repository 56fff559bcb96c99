/**
 * Atomic file output for `--out`: readers see either the old file or the complete new one, never a
 * half-written file. Temp file in the same directory (rename is only atomic within one filesystem),
 * fsync before rename (else a crash can leave a renamed but empty file), temp removed on failure.
 */
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
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
