/**
 * recover(..., { cache }) (src/store/cache.ts): the second run reuses every sketch and family
 * result and gives the exact path's parents; a changed or truncated file is recomputed, never
 * trusted; an added model costs its own sketch and its family only; two processes on one cache at
 * once, and a process killed with SIGKILL mid-run, leave a cache that reads back correctly.
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recover } from '../src/index.js';
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
    const expected = JSON.parse(JSON.stringify(parents(await recover(big, { scale: 'exact', bootstrap: 5 }))));
    const outs = [join(tmp, 'o1.json'), join(tmp, 'o2.json')];
    const t0 = Date.now();
    const both = outs.map((o) => child(cache, big, o));
    expect(await Promise.all(both.map((c) => c.done))).toEqual([0, 0]);
    const took = Date.now() - t0;
    for (const o of outs) expect(JSON.parse(readFileSync(o, 'utf8'))).toEqual(expected);
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
