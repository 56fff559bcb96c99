/**
 * recover(..., { cache }) (src/store/cache.ts): the second run reuses every sketch and family
 * result and gives the exact path's parents; a changed or truncated file is recomputed, never
 * trusted; an added model costs its own sketch and its family only; two processes on one cache at
 * once, and a process killed with SIGKILL mid-run, leave a cache that reads back correctly. A
 * file's header is taken from the cache only while its stat is the recorded one (not racy).
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recover } from '../src/index.js';
import { openModel, readHeader } from '../src/io/model.js';
import { writeSafetensors, writeSharded, type TensorSpec } from './helpers/safetensors.js';
import { StatsCache, statTrust } from '../src/store/cache.js';
// @ts-expect-error plain JavaScript bench helper
import { makeZoo } from '../bench/make-zoo.js';

const repo = resolve(import.meta.dirname, '..');
let tmp: string, zoo: string, pkg: string;

const parents = (r: Awaited<ReturnType<typeof recover>>) => Object.fromEntries(r.models.map((m) => [m.id, [m.parent, m.confidence]]));

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'mother-cache-'));
  zoo = join(tmp, 'zoo');
  makeZoo(zoo, { trees: 3, branching: 2, depth: 2, dim: 16, layers: 3, seed: 7 });
  rmSync(join(zoo, 'params.json'));
  pkg = join(tmp, 'pkg');
  spawnSync(process.execPath, [join(repo, 'node_modules/typescript/bin/tsc'), '-p', join(repo, 'tsconfig.build.json'), '--outDir', join(pkg, 'dist')], { encoding: 'utf8' });
  cpSync(join(repo, 'package.json'), join(pkg, 'package.json'));
  for (const d of ['build', 'node_modules']) symlinkSync(join(repo, d), join(pkg, d));
}, 120_000);
afterAll(() => { if (tmp) rmSync(tmp, { recursive: true, force: true }); });

const CHILD = (cache: string, dir: string, out: string) => `
import { writeFileSync } from 'node:fs';
const { recover } = await import(${JSON.stringify(join('PKG', 'dist/index.js'))}.replace('PKG', process.argv[2]));
const r = await recover(${JSON.stringify(dir)}, { cache: ${JSON.stringify(cache)}, bootstrap: 5 });
writeFileSync(${JSON.stringify(out)}, JSON.stringify(Object.fromEntries(r.models.map((m) => [m.id, [m.parent, m.confidence]]))));
`;

function child(cache: string, dir: string, out: string) {
  const script = join(tmp, `child-${Math.random().toString(36).slice(2)}.mjs`);
  writeFileSync(script, CHILD(cache, dir, out));
  const p = spawn(process.execPath, [script, pkg], { stdio: ['ignore', 'ignore', 'inherit'] });
  return { p, done: new Promise<number | null>((res) => p.on('close', (code) => res(code))) };
}

describe('--cache', () => {
  it('reuses sketches and family results, and gives the exact parents', async () => {
    const cache = join(tmp, 'a.sqlite');
    const exact = await recover(zoo, { scale: 'exact', bootstrap: 5 });
    const first = await recover(zoo, { cache, bootstrap: 5 });
    expect(parents(first)).toEqual(parents(exact));
    expect(first.scale?.cache?.misses.sketch).toBe(21);
    const second = await recover(zoo, { cache, bootstrap: 5 });
    expect(parents(second)).toEqual(parents(exact));
    expect(second.scale?.cache?.hits.sketch).toBe(21);
    expect(second.scale?.cache?.misses).toEqual({ sketch: 0, family: 0 });
    // Defaults given explicitly decide alike, so they find the same family results.
    const explicit = await recover(zoo, { cache, bootstrap: 5, seed: 0, method: 'mother', distance: 'auto' });
    expect(explicit.scale?.cache?.misses).toEqual({ sketch: 0, family: 0 });
    expect(parents(explicit)).toEqual(parents(exact));
    const other = await recover(zoo, { cache, bootstrap: 5, seed: 1 });
    expect(other.scale?.cache?.misses.family).toBe(other.scale?.exactFamilies);
  });

  it('recomputes a changed file and leaves a truncated one out, never trusting their entries', async () => {
    const dir = join(tmp, 'changed');
    cpSync(zoo, dir, { recursive: true });
    const cache = join(tmp, 'b.sqlite');
    await recover(dir, { cache, bootstrap: 5 });
    // Same size, other bytes (a model re-saved after more training).
    const f = join(dir, 't1-0', 'model.safetensors');
    const buf = readFileSync(f);
    const head = 8 + Number(buf.readBigUInt64LE(0));
    for (let i = head; i < buf.length; i += 4) buf.writeFloatLE(buf.readFloatLE(i) * 1.5, i);
    writeFileSync(f, buf);
    const after = await recover(dir, { cache, bootstrap: 5 });
    expect(after.scale?.cache?.misses.sketch).toBe(1);
    expect(parents(after)).toEqual(parents(await recover(dir, { scale: 'exact', bootstrap: 5 })));
    truncateSync(f, buf.length - 100);
    const cut = await recover(dir, { cache, bootstrap: 5 });
    expect(cut.diagnostics.skippedModels.map((m) => m.path)).toEqual([join(dir, 't1-0')]);
    expect(parents(cut)).toEqual(parents(await recover(dir, { scale: 'exact', bootstrap: 5 })));
  });

  it('after adding models computes only their sketches and their family', async () => {
    const dir = join(tmp, 'grow');
    cpSync(zoo, dir, { recursive: true });
    const extra = ['t2', 't2-0', 't2-1', 't2-0-0', 't2-0-1', 't2-1-0', 't2-1-1'];
    for (const id of extra) rmSync(join(dir, id), { recursive: true });
    const cache = join(tmp, 'c.sqlite');
    await recover(dir, { cache, bootstrap: 5 });
    const one = join(dir, 't2');
    cpSync(join(zoo, 't2'), one, { recursive: true });
    const added = await recover(dir, { cache, bootstrap: 5 });
    expect(added.scale?.cache?.misses).toEqual({ sketch: 1, family: 1 });
    expect(added.scale?.cache?.hits.family).toBe(2);
    expect(parents(added)).toEqual(parents(await recover(dir, { scale: 'exact', bootstrap: 5 })));
  });

  it('survives two processes at once and a SIGKILL mid-run', async () => {
    const big = join(tmp, 'big');
    makeZoo(big, { trees: 30, branching: 2, depth: 2, dim: 16, layers: 5, seed: 3 });
    rmSync(join(big, 'params.json'));
    const cache = join(tmp, 'd.sqlite');
    const made = Date.now();
    const expected = JSON.parse(JSON.stringify(parents(await recover(big, { scale: 'exact', bootstrap: 5 }))));
    // Files older than the racy window (2 s), so that both processes record their headers and keys too.
    await new Promise((r) => setTimeout(r, Math.max(0, 2100 - (Date.now() - made))));
    const outs = [join(tmp, 'o1.json'), join(tmp, 'o2.json')];
    const t0 = Date.now();
    const both = outs.map((o) => child(cache, big, o));
    expect(await Promise.all(both.map((c) => c.done))).toEqual([0, 0]);
    const took = Date.now() - t0;
    for (const o of outs) expect(JSON.parse(readFileSync(o, 'utf8'))).toEqual(expected);
    // What the two wrote side by side serves a third run whole.
    const third = await recover(big, { cache, bootstrap: 5 });
    expect(third.scale?.cache?.headers).toEqual({ trusted: 210, parsed: 0 });
    expect(third.scale?.cache?.files).toEqual({ trusted: 210, hashed: 0 });
    expect(parents(third)).toEqual(expected);
    // Kill runs at several points of their work on a fresh cache; the next run reads it back.
    const cache2 = join(tmp, 'e.sqlite');
    for (const share of [0.3, 0.6, 0.9]) {
      const c = child(cache2, big, join(tmp, 'killed.json'));
      await new Promise((r) => setTimeout(r, share * took));
      c.p.kill('SIGKILL');
      await c.done;
    }
    const again = await recover(big, { cache: cache2, bootstrap: 5 });
    expect(parents(again)).toEqual(expected);
    const Database = createRequire(import.meta.url)('better-sqlite3');
    const db = new Database(cache2, { readonly: true });
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    db.close();
  }, 120_000);
});

describe('cached headers', () => {
  const saved = statTrust.racyMs;
  // Files made a moment ago are racy under the default 2 s: trust them here, unless a test says otherwise.
  beforeAll(() => { statTrust.racyMs = 0; });
  afterAll(() => { statTrust.racyMs = saved; });
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  let n = 0;
  /** A fresh copy of one zoo model file and a fresh cache. */
  const fresh = () => {
    const dir = join(tmp, `h${++n}`);
    cpSync(join(zoo, 't0'), dir, { recursive: true });
    return { file: join(dir, 'model.safetensors'), cache: join(tmp, `h${n}.sqlite`) };
  };
  /** One run's read of `file` through the cache: the header and whether it was parsed. */
  const read = async (cache: string, file: string) => {
    const store = new StatsCache(cache);
    try {
      const header = await store.readHeader(file);
      store.commitHeaders();
      return { header, parsed: store.headers.parsed === 1, trusted: store.headers.trusted === 1 };
    } finally {
      store.close();
    }
  };
  /** The file with one header byte changed (a tensor renamed, same length), so a re-read shows. */
  const rename = (file: string) => {
    const buf = readFileSync(file);
    const at = buf.indexOf('attention.query');
    buf.write('attention.qu3ry', at);
    writeFileSync(file, buf);
  };

  it('takes an unchanged file from the cache, equal to the parsed header', async () => {
    const { file, cache } = fresh();
    const first = await read(cache, file);
    expect(first.parsed).toBe(true);
    const second = await read(cache, file);
    expect(second.trusted).toBe(true);
    expect(second.header).toEqual(await readHeader(file));
    expect(second.header).toEqual(first.header);
  });

  it('reads a file again after a rewrite of the same size, with a new or with its old mtime', async () => {
    const { file, cache } = fresh();
    await read(cache, file);
    const st = statSync(file);
    await sleep(20);
    rename(file);
    utimesSync(file, st.atime, new Date(st.mtimeMs + 5000));
    expect(statSync(file).size).toBe(st.size);
    const again = await read(cache, file);
    expect(again.parsed).toBe(true);
    expect(again.header.tensors.some((t) => t.name.includes('qu3ry'))).toBe(true);
    // Size and mtime as recorded (cp -p, rsync -t): only the ctime tells, and it is enough.
    await read(cache, file);
    const st2 = statSync(file);
    await sleep(20);
    const buf = readFileSync(file);
    buf.write('attention.quer1', buf.indexOf('attention.qu3ry'));
    writeFileSync(file, buf);
    utimesSync(file, st2.atime, st2.mtime);
    expect(statSync(file).mtimeMs).toBe(st2.mtimeMs);
    const third = await read(cache, file);
    expect(third.parsed).toBe(true);
    expect(third.header.tensors.some((t) => t.name.includes('quer1'))).toBe(true);
  });

  it('reads a file replaced by another (renamed over it) again', async () => {
    const { file, cache } = fresh();
    await read(cache, file);
    const other = `${file}.new`;
    cpSync(file, other);
    rename(other);
    renameSync(other, file);
    const again = await read(cache, file);
    expect(again.parsed).toBe(true);
    expect(again.header.tensors.some((t) => t.name.includes('qu3ry'))).toBe(true);
  });

  it('does not record a file changed within the racy window', async () => {
    const { file, cache } = fresh();
    statTrust.racyMs = 60_000;
    try {
      await read(cache, file);
      expect((await read(cache, file)).parsed).toBe(true);
    } finally {
      statTrust.racyMs = 0;
    }
    await read(cache, file);
    expect((await read(cache, file)).trusted).toBe(true);
  });

  it('reads a truncated file again and fails with its error code, naming the file', async () => {
    const { file, cache } = fresh();
    await read(cache, file);
    truncateSync(file, statSync(file).size - 100);
    const err = await read(cache, file).then(() => undefined, (e: unknown) => e as { code: string; file: string; message: string });
    expect(err?.code).toMatch(/^E_HEADER_/);
    expect(err?.file).toBe(file);
    expect(err?.message).toContain(file);
  });

  it('opens sharded models, metadata and mixed dtypes from the cache exactly as from the files', async () => {
    const specs: TensorSpec[] = [
      { name: 'embed.weight', dtype: 'F32', shape: [16, 8] },
      { name: 'layer.0.fc.weight', dtype: 'BF16', shape: [32, 8] },
      { name: 'layer.0.steps', dtype: 'I64', shape: [1] },
      { name: 'head.weight', dtype: 'F16', shape: [4, 8] },
    ];
    const sharded = await writeSharded(join(tmp, 'sharded'), specs, [['embed.weight', 'layer.0.steps'], ['layer.0.fc.weight', 'head.weight']]);
    const single = await writeSafetensors(join(tmp, 'meta.safetensors'), specs, { metadata: { format: 'pt', note: 'x' } });
    const cache = join(tmp, 'sharded.sqlite');
    const open = async (path: string) => {
      const store = new StatsCache(cache);
      try {
        const m = await openModel(path, undefined, (f) => store.readHeader(f));
        store.commitHeaders();
        return { model: { id: m.id, files: m.files, metadata: m.metadata, tensors: [...m.tensors.values()] }, headers: { ...store.headers } };
      } finally {
        store.close();
      }
    };
    for (const [path, files] of [[sharded.dir, 2], [single.path, 1]] as const) {
      const plain = await openModel(path);
      const expected = { id: plain.id, files: plain.files, metadata: plain.metadata, tensors: [...plain.tensors.values()] };
      expect(await open(path)).toEqual({ model: expected, headers: { trusted: 0, parsed: files } });
      expect(await open(path)).toEqual({ model: expected, headers: { trusted: files, parsed: 0 } });
    }
  });

  it('serves recover() on a second run, with the same result; a truncated model is left out and named', async () => {
    const dir = join(tmp, 'hz');
    cpSync(zoo, dir, { recursive: true });
    const cache = join(tmp, 'hz.sqlite');
    const first = await recover(dir, { cache, bootstrap: 5 });
    expect(first.scale?.cache?.headers).toEqual({ trusted: 0, parsed: 21 });
    const second = await recover(dir, { cache, bootstrap: 5 });
    expect(second.scale?.cache?.headers).toEqual({ trusted: 21, parsed: 0 });
    expect(second.scale?.cache?.files).toEqual({ trusted: 21, hashed: 0 });
    expect(parents(second)).toEqual(parents(first));
    await sleep(20);
    const f = join(dir, 't1-0', 'model.safetensors');
    truncateSync(f, statSync(f).size - 100);
    const cut = await recover(dir, { cache, bootstrap: 5 });
    expect(cut.diagnostics.skippedModels).toEqual([expect.objectContaining({ path: join(dir, 't1-0'), code: expect.stringMatching(/^E_HEADER_/) })]);
    expect(cut.scale?.cache?.headers).toEqual({ trusted: 20, parsed: 1 });
    expect(parents(cut)).toEqual(parents(await recover(dir, { scale: 'exact', bootstrap: 5 })));
  });
});

describe('family cache keys', () => {
  it('change with the graph method revision and the options that decide, not with how a default is given', async () => {
    const { familyCacheKey } = await import('../src/scale/recover.js');
    const { GRAPH_REVISION } = await import('../src/graph/recover.js');
    const { DIRECTION_WEIGHT } = await import('../src/graph/spectrum.js');
    const members = ['a1', 'b2', 'c3'];
    const now = familyCacheKey(members, {});
    expect(familyCacheKey(members, {}, GRAPH_REVISION)).toBe(now);
    expect(familyCacheKey(members, {}, GRAPH_REVISION - 1)).not.toBe(now); // an older method's result is not reused
    expect(familyCacheKey(members, { bootstrap: 50 })).toBe(now); // the default, given explicitly
    expect(familyCacheKey(members, { bootstrap: 10 })).not.toBe(now);
    expect(familyCacheKey(members, { directionWeight: DIRECTION_WEIGHT })).toBe(now);
    expect(familyCacheKey(members, { directionWeight: DIRECTION_WEIGHT * 3 })).not.toBe(now); // a result under other constants is not reused
    expect(familyCacheKey(['a1', 'b2'], {})).not.toBe(now);
  });
});
