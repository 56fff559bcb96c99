/**
 * The cluster (src/cluster): a real Redis server (Debian's redis-server, started here on 127.0.0.1
 * at a free port, no persistence) and 3 `mother worker` processes of a private compiled package.
 * The coordinator is recover(..., { cluster }) in this process.
 *   - the result equals the local scale path's, bit for bit (every parent, confidence, family,
 *     kurtosis), on a zoo that has all three unit kinds (sketch batches, exact families, and a
 *     family over 384 models whose candidate pairs go out in blocks);
 *   - a worker killed with SIGKILL mid-unit has its unit retried by another, with the same result;
 *   - every unit is completed exactly once (worker logs), none lost, none counted twice;
 *   - a worker that cannot read a model file fails that unit with a clear error naming the file.
 * .ci/run installs redis-server; without it these tests skip with the reason.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recover } from '../src/index.js';
import type { RecoverResult } from '../src/index.js';
import { formatText } from '../src/report/text.js';
// @ts-expect-error plain JavaScript bench helper
import { makeZoo } from '../bench/make-zoo.js';

const repo = resolve(import.meta.dirname, '..');
const redisServer = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((p) => existsSync(p));
let tmp: string, zoo: string, inputs: string[], pkg: string, redis: ChildProcess | undefined, url: string;

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => { const a = s.address(); s.close(() => res(typeof a === 'object' && a ? a.port : 0)); });
  });
}

/** Resolves once the child's stderr (or stdout) has printed a line matching re. */
function waitFor(p: ChildProcess, re: RegExp, ms: number, what: string): Promise<string> {
  return new Promise((res, rej) => {
    let buf = '';
    const timer = setTimeout(() => rej(new Error(`${what}: no line matching ${re} in ${ms} ms; got:\n${buf}`)), ms);
    const on = (d: Buffer) => {
      buf += d.toString();
      const m = buf.match(re);
      if (m) { clearTimeout(timer); res(m[0]); }
    };
    p.stdout?.on('data', on);
    p.stderr?.on('data', on);
    p.once('close', (code, signal) => { clearTimeout(timer); rej(new Error(`${what} exited (${signal ?? code}) before a line matching ${re}; got:\n${buf}`)); });
  });
}

interface Worker { p: ChildProcess; log: string[]; exited: Promise<number | null> }

function startWorker(queue: string, extra: string[] = []): Worker {
  const p = spawn(process.execPath, [join(pkg, 'dist/cli/main.js'), 'worker', '--redis', url, '--queue', queue, '--threads', '1', ...extra],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  const log: string[] = [];
  let rest = '';
  p.stderr!.on('data', (d: Buffer) => {
    const lines = (rest + d.toString()).split('\n');
    rest = lines.pop()!;
    log.push(...lines);
  });
  return { p, log, exited: new Promise((res) => p.on('close', (code) => res(code))) };
}

async function stopAll(ws: Worker[]): Promise<void> {
  for (const w of ws) if (w.p.exitCode === null && w.p.signalCode === null) w.p.kill('SIGTERM');
  await Promise.all(ws.map((w) => w.exited));
}

/** Everything the result says about each model and family, as JSON (NaN kept as a string). */
const canonical = (r: RecoverResult) => JSON.stringify({ models: r.models, families: r.families },
  (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v));

const completedIds = (ws: Worker[]) => ws.flatMap((w) => w.log.flatMap((l) => l.match(/^mother worker: completed (\S+)$/)?.[1] ?? []));

const haveRedis = redisServer !== undefined;

describe.skipIf(!haveRedis)('cluster (BullMQ on a real redis-server, 3 workers)', () => {
  let local: RecoverResult;

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'mother-cluster-'));
    zoo = join(tmp, 'zoo');
    // Two exact families (40 models each) and one of 400, which takes the sparse path (pairs units).
    makeZoo(join(zoo, 'small'), { trees: 2, branching: 3, depth: 3, dim: 8, layers: 2, seed: 3 });
    makeZoo(join(zoo, 'big'), { trees: 1, branching: 7, depth: 3, dim: 8, layers: 2, seed: 4 });
    for (const d of ['small', 'big']) for (const f of ['params.json', 'truth.json']) rmSync(join(zoo, d, f), { force: true });
    inputs = [join(zoo, 'small'), join(zoo, 'big')];
    pkg = join(tmp, 'pkg');
    spawnSync(process.execPath, [join(repo, 'node_modules/typescript/bin/tsc'), '-p', join(repo, 'tsconfig.build.json'), '--outDir', join(pkg, 'dist')], { encoding: 'utf8' });
    if (!existsSync(join(pkg, 'dist/cli/main.js'))) throw new Error('tsc did not produce dist/cli/main.js');
    cpSync(join(repo, 'package.json'), join(pkg, 'package.json'));
    for (const d of ['build', 'node_modules']) symlinkSync(join(repo, d), join(pkg, d));
    const port = await freePort();
    url = `redis://127.0.0.1:${port}`;
    mkdirSync(join(tmp, 'redis'));
    redis = spawn(redisServer!, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', join(tmp, 'redis')],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    await waitFor(redis, /Ready to accept connections/, 20_000, 'redis-server');
    local = await recover(inputs, { scale: 'sketch', bootstrap: 5 });
  }, 180_000);

  afterAll(async () => {
    if (redis && redis.exitCode === null) { redis.kill('SIGTERM'); await new Promise((r) => redis!.once('close', r)); }
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('gives the local result bit for bit, each unit completed exactly once', async () => {
    expect(local.scale?.sparseFamilies).toBeGreaterThan(0);  // the zoo exercises all three unit kinds
    expect(local.scale?.exactFamilies).toBeGreaterThan(0);
    const ws = [0, 1, 2].map(() => startWorker('equal'));
    try {
      await Promise.all(ws.map((w) => waitFor(w.p, /ready: /, 30_000, 'worker')));
      const r = await recover(inputs, { scale: 'sketch', bootstrap: 5, cluster: { redis: url, queue: 'equal' } });
      expect(canonical(r)).toBe(canonical(local));
      const c = r.cluster!;
      expect(c.units.sketch).toBeGreaterThan(0);
      expect(c.units.family).toBeGreaterThan(0);
      expect(c.units.pairs).toBeGreaterThan(0);
      const total = c.units.sketch + c.units.family + c.units.pairs;
      expect(c.completed).toBe(total);
      expect(Object.values(c.workers).reduce((a, b) => a + b, 0)).toBe(total);
      expect(c.failedAttempts).toEqual([]);
      expect(c.bytes).toBeGreaterThan(0);
      const n = Object.keys(c.workers).length;
      expect(formatText(r, { color: false })).toContain(`; ${total} units on ${n} cluster worker${n === 1 ? '' : 's'}\n`);
      // Collected results and finished jobs are deleted: nothing of the run stays in Redis.
      const client = new Redis(url);
      try {
        expect(await client.keys('mother:equal:result:*')).toEqual([]);
        expect(await client.keys(`bull:equal:${c.run}-*`)).toEqual([]);
      } finally {
        client.disconnect();
      }
      await stopAll(ws);
      const ids = completedIds(ws);
      expect(ids).toHaveLength(total);
      expect(new Set(ids).size).toBe(total);
      expect(ids.every((id) => id.startsWith(`${c.run}-`))).toBe(true);
    } finally {
      await stopAll(ws);
    }
  }, 240_000);

  it('retries the unit of a worker killed mid-unit, and loses nothing', async () => {
    // Short locks so that the killed worker's unit is noticed as stalled within seconds; every
    // unit waits 1.5 s first, so the kill lands mid-unit. The coordinator polls every 20 ms, so
    // units are often read while active and finish between two reads (a race that once lost
    // results: the job read before its state).
    const opts = ['--lock-duration', '2000', '--stalled-interval', '1000', '--job-delay', '1500'];
    const ws = [0, 1, 2].map(() => startWorker('kill', opts));
    try {
      await Promise.all(ws.map((w) => waitFor(w.p, /ready: /, 30_000, 'worker')));
      const victim = ws[0]!;
      const started = waitFor(victim.p, /started (\S+)/, 60_000, 'victim worker');
      const run = recover(inputs, { scale: 'sketch', bootstrap: 5, cluster: { redis: url, queue: 'kill', pollMs: 20 } });
      const line = await started;
      victim.p.kill('SIGKILL');
      const killedUnit = line.split(' ')[1]!;
      const r = await run;
      expect(canonical(r)).toBe(canonical(local));
      const c = r.cluster!;
      const total = c.units.sketch + c.units.family + c.units.pairs;
      expect(c.completed).toBe(total);
      expect(c.retries).toBeGreaterThanOrEqual(1);
      await stopAll(ws);
      expect(await victim.exited).toBe(null);  // killed by the signal, not exited
      const ids = completedIds(ws);
      expect(ids).toHaveLength(total);
      expect(new Set(ids).size).toBe(total);
      expect(ids).toContain(killedUnit);  // done by another worker
      expect(completedIds([victim])).not.toContain(killedUnit);
    } finally {
      await stopAll(ws);
    }
  }, 120_000);

  it('fails the run with a clear error naming the file a worker cannot read', async () => {
    // The worker sees the zoo at a path that does not exist on its "machine".
    const w = startWorker('blind', ['--path-map', `${zoo}=${join(tmp, 'not-mounted')}`]);
    try {
      await waitFor(w.p, /ready: /, 30_000, 'worker');
      const err = await recover(inputs, { scale: 'sketch', bootstrap: 5, cluster: { redis: url, queue: 'blind', attempts: 2, backoff: 100 } })
        .then(() => undefined, (e: unknown) => e as Error & { code?: string });
      expect(err).toBeDefined();
      expect(err!.code).toBe('E_CLUSTER_JOB');
      expect(err!.message).toContain(join(tmp, 'not-mounted'));
      expect(err!.message).toMatch(/failed after 2 tries/);
      expect(err!.message).toMatch(/on worker \S+:\d+/);
      expect(w.log.some((l) => l.includes('failed ') && l.includes(join(tmp, 'not-mounted')))).toBe(true);
    } finally {
      await stopAll([w]);
    }
  }, 120_000);

  it('cancels on the AbortSignal and takes its waiting units off the queue', async () => {
    // No worker listens on this queue: the units wait until the run is cancelled.
    const ac = new AbortController();
    const run = recover(inputs, { scale: 'sketch', bootstrap: 5, signal: ac.signal, cluster: { redis: url, queue: 'cancel' } });
    const client = new Redis(url);
    try {
      const deadline = Date.now() + 20_000;
      while ((await client.llen('bull:cancel:wait')) === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(await client.llen('bull:cancel:wait')).toBeGreaterThan(0);
      ac.abort();
      await expect(run).rejects.toMatchObject({ name: 'AbortError' });
      expect(await client.llen('bull:cancel:wait')).toBe(0);
    } finally {
      client.disconnect();
    }
  }, 60_000);

  it('a worker refuses a unit of another mother-tree version', async () => {
    const { Queue } = await import('bullmq');
    const queue = new Queue('version', { connection: { url, maxRetriesPerRequest: null } });
    const w = startWorker('version');
    try {
      await waitFor(w.p, /ready: /, 30_000, 'worker');
      const job = await queue.add('sketch', { run: 'other', version: '0.0.0-other', group: { architecture: 'a', tensors: [], models: [] } }, { attempts: 1 });
      const deadline = Date.now() + 20_000;
      while ((await job.getState()) !== 'failed' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const failed = await queue.getJob(job.id!);
      expect(failed?.failedReason).toMatch(/^unit of mother-tree 0\.0\.0-other, but this worker runs \S+: run workers of the coordinator's version on worker \S+:\d+$/);
    } finally {
      await stopAll([w]);
      await queue.close();
    }
  }, 60_000);

  it('names the URL when Redis cannot be reached', async () => {
    const port = await freePort();
    await expect(recover(inputs, { scale: 'sketch', cluster: { redis: `redis://127.0.0.1:${port}` } }))
      .rejects.toMatchObject({ code: 'E_INPUT_REDIS', message: expect.stringContaining(`127.0.0.1:${port}`) });
  });
});

describe.skipIf(haveRedis)('cluster without redis-server', () => {
  // Under CI (.ci/run installs it) a missing server is a failure, not a skip.
  it.runIf(process.env.CI === 'true')('needs redis-server (apt-get install redis-server)', () => {
    expect(redisServer, 'redis-server is not installed').toBeDefined();
  });
});
