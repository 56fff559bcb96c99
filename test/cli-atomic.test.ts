import { mkdtemp, readdir, readFile, rm, writeFile, stat, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withAtomicFile, writeFileAtomic } from '../src/util/atomic-write.js';

let dir: string;
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'mother-atomic-')); });
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

describe('atomic write', () => {
  it('creates and replaces a file, leaving no temp file', async () => {
    const f = join(dir, 'out.json');
    await writeFileAtomic(f, '{"a":1}\n');
    expect(await readFile(f, 'utf8')).toBe('{"a":1}\n');
    await writeFileAtomic(f, new Uint8Array([104, 105]));
    expect(await readFile(f, 'utf8')).toBe('hi');
    expect(await readdir(dir)).toEqual(['out.json']);
    expect((await stat(f)).mode & 0o777).toBe(0o644 & ~process.umask());
  });

  it('a writer that throws halfway leaves the old file intact and no partial file', async () => {
    const sub = await mkdtemp(join(dir, 'fail-'));
    const f = join(sub, 'report.txt');
    await writeFile(f, 'previous complete report\n');
    const boom = new Error('writer failed');
    await expect(
      withAtomicFile(f, async (fh) => {
        await fh.write('half of the new rep');
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(await readFile(f, 'utf8')).toBe('previous complete report\n');
    expect(await readdir(sub)).toEqual(['report.txt']);

    // and with no previous file, nothing at all is left behind
    const g = join(sub, 'new.txt');
    await expect(withAtomicFile(g, async (fh) => { await fh.write('partial'); throw boom; })).rejects.toBe(boom);
    expect(await readdir(sub)).toEqual(['report.txt']);
  });

  it('fails clearly for a missing directory or an unwritable one', async () => {
    await expect(writeFileAtomic(join(dir, 'no', 'such', 'x'), 'x')).rejects.toMatchObject({ code: 'ENOENT' });
    if (process.getuid?.() === 0) return; // root writes anywhere
    const ro = await mkdtemp(join(dir, 'ro-'));
    await chmod(ro, 0o500);
    await expect(writeFileAtomic(join(ro, 'x'), 'x')).rejects.toMatchObject({ code: 'EACCES' });
    await chmod(ro, 0o700);
  });

  it('renaming onto a directory fails and cleans up the temp file', async () => {
    const sub = await mkdtemp(join(dir, 'dir-'));
    await expect(writeFileAtomic(sub, 'x')).rejects.toBeTruthy();
    expect((await readdir(dir)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });
});
