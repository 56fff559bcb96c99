// The Hugging Face cache layout (hub/models--org--name/{refs,snapshots,blobs}): ids org/name,
// snapshot files that are symlinks into ../../blobs (followed, never written), the revision
// refs/main names (else the newest), and a note in diagnostics when there was a choice.
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { discoverModels, recover } from '../src/index.js';
import { hubCacheId } from '../src/io/discover.js';
import { makeTempDir, removeTempDir } from './helpers/safetensors.js';
import { writeTree } from './helpers/tree.js';

let dir: string;
let hub: string;
const parents = [null, 0, 0, 1, 1, 2];
const fast = { backend: 'cpu' as const, bootstrap: 0, threads: 2 };

/** Content-addressed like the hub: blobs/<sha256>. */
async function blob(repo: string, file: string): Promise<string> {
  const sha = createHash('sha256').update(await readFile(file)).digest('hex');
  await mkdir(join(repo, 'blobs'), { recursive: true });
  await copyFile(file, join(repo, 'blobs', sha));
  return sha;
}

/** One snapshot of `repo`: each file a relative symlink to its blob; `mtime` (s) dates the revision. */
async function snapshot(repo: string, rev: string, files: Record<string, string>, mtime?: number): Promise<void> {
  const snap = join(repo, 'snapshots', rev);
  await mkdir(snap, { recursive: true });
  for (const [name, src] of Object.entries(files)) await symlink(join('..', '..', 'blobs', await blob(repo, src)), join(snap, name));
  if (mtime !== undefined) await utimes(snap, mtime, mtime);
}

/** Every file under `root` (links not followed) with its hash and mtime, to show nothing was written. */
async function fingerprint(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) out.push(`${p} ${(await stat(p)).mtimeMs} ${createHash('sha256').update(await readFile(p)).digest('hex')}`);
    }
  };
  await walk(root);
  return out.sort();
}

const REV = (c: string) => c.repeat(40);

beforeAll(async () => {
  dir = await makeTempDir('mother-hfcache-');
  const src = join(dir, 'src');
  await writeTree(src, parents, 11, { folders: true });
  const w = (k: number) => join(src, `m${k}`, 'model.safetensors');
  hub = join(dir, 'hub');
  for (const k of [0, 1, 2, 5]) {
    const repo = join(hub, `models--acme--m${k}`);
    await snapshot(repo, REV('a'), { 'model.safetensors': w(k) });
    await mkdir(join(repo, 'refs'), { recursive: true });
    await writeFile(join(repo, 'refs', 'main'), REV('a'));
  }
  // m5's card, a symlink into blobs like the weights.
  const card = join(dir, 'README.md');
  await writeFile(card, '---\nbase_model: acme/m2\nbase_model_relation: finetune\n---\n# m5\n');
  await symlink(join('..', '..', 'blobs', await blob(join(hub, 'models--acme--m5'), card)), join(hub, 'models--acme--m5', 'snapshots', REV('a'), 'README.md'));
  // m3: refs/main names the older revision; the newer one holds other weights (m0's).
  const m3 = join(hub, 'models--acme--m3');
  await snapshot(m3, REV('c'), { 'model.safetensors': w(3) }, 1_600_000_000);
  await snapshot(m3, REV('d'), { 'model.safetensors': w(0) }, 1_700_000_000);
  await mkdir(join(m3, 'refs'), { recursive: true });
  await writeFile(join(m3, 'refs', 'main'), REV('c') + '\n');
  // m4: no organisation, no refs: the newest snapshot (named first, so not by name order).
  const m4 = join(hub, 'models--m4');
  await snapshot(m4, REV('b'), { 'model.safetensors': w(0) }, 1_600_000_000);
  await snapshot(m4, REV('0'), { 'model.safetensors': w(4) }, 1_700_000_000);
  // What else a cache holds: a dataset, locks, a repo with a config but no weights.
  await mkdir(join(hub, 'datasets--acme--data', 'snapshots', REV('e')), { recursive: true });
  await mkdir(join(hub, '.locks', 'models--acme--m0'), { recursive: true });
  await writeFile(join(hub, 'version.txt'), '1');
  const tok = join(dir, 'tokenizer.json');
  await writeFile(tok, '{}');
  await snapshot(join(hub, 'models--acme--tokenizer-only'), REV('f'), { 'tokenizer.json': tok });
});
afterAll(async () => { await removeTempDir(dir); });

describe('Hugging Face cache layout', () => {
  it('hub ids from cache folder names', () => {
    expect(hubCacheId('models--acme--m0')).toBe('acme/m0');
    expect(hubCacheId('models--gpt2')).toBe('gpt2');
    expect(hubCacheId('models--org--name-with-dash')).toBe('org/name-with-dash');
    expect(hubCacheId('datasets--acme--data')).toBeNull();
    expect(hubCacheId('acme--m0')).toBeNull();
  });

  it('the cache folder is a collection of org/name models, each in the revision chosen', async () => {
    const notes: string[] = [];
    const refs = await discoverModels([hub], { onNote: (n) => notes.push(n) });
    expect(refs.map((r) => r.id)).toEqual(['acme/m0', 'acme/m1', 'acme/m2', 'acme/m3', 'acme/m5', 'm4']);
    expect(refs.find((r) => r.id === 'acme/m3')!.path).toBe(join(hub, 'models--acme--m3', 'snapshots', REV('c')));
    expect(refs.find((r) => r.id === 'm4')!.path).toBe(join(hub, 'models--m4', 'snapshots', REV('0')));
    // The file that holds the model is the blob (the same blob twice is one model).
    expect(refs[0]!.realPath.startsWith(join(hub, 'models--acme--m0', 'blobs'))).toBe(true);
    expect(notes).toHaveLength(2);
    expect(notes[0]).toMatch(/^acme\/m3: 2 revisions .* read c{40} \(the one refs\/main names\)/);
    expect(notes[1]).toMatch(/^m4: 2 revisions .* read 0{40} \(the newest; no refs\/main\)/);
  });

  it('a cache folder or a snapshot given itself has the hub id', async () => {
    const one = await discoverModels([join(hub, 'models--acme--m2')]);
    expect(one.map((r) => [r.id, r.path])).toEqual([['acme/m2', join(hub, 'models--acme--m2', 'snapshots', REV('a'))]]);
    const snap = await discoverModels([join(hub, 'models--acme--m1', 'snapshots', REV('a'))]);
    expect(snap.map((r) => r.id)).toEqual(['acme/m1']);
  });

  it('recover() reads through the blob links, judges the card, notes the revisions, and writes nothing', async () => {
    const before = await fingerprint(hub);
    const r = await recover(hub, fast);
    const byId = new Map(r.models.map((m) => [m.id, m]));
    // The true tree [null, 0, 0, 1, 1, 2]: m3 and m4 are read in the revisions holding their own weights.
    expect([...byId.keys()].sort()).toEqual(['acme/m0', 'acme/m1', 'acme/m2', 'acme/m3', 'acme/m5', 'm4']);
    expect(byId.get('acme/m0')!.parent).toBeNull();
    expect(byId.get('acme/m1')!.parent).toBe('acme/m0');
    expect(byId.get('acme/m2')!.parent).toBe('acme/m0');
    expect(byId.get('acme/m3')!.parent).toBe('acme/m1');
    expect(byId.get('m4')!.parent).toBe('acme/m1');
    expect(byId.get('acme/m5')!.parent).toBe('acme/m2');
    expect(byId.get('acme/m5')!.declared).toMatchObject({ baseModel: 'acme/m2', relation: 'finetune', agrees: true });
    expect(r.diagnostics.warnings.filter((w) => /revisions cached/.test(w))).toHaveLength(2);
    expect(await fingerprint(hub)).toEqual(before);
  });
});
