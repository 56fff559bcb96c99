// The cluster (src/cluster, docs/scale.md): the scale path with its units on W `mother worker`
// processes against a private redis-server (127.0.0.1, a free port, no persistence), next to the
// local scale path on the same zoo, in one run.
//   node bench/cluster.js [--sizes 2000] [--workers 3] [--threads 1] [--dim 16] [--bootstrap 50] [--dist DIR] [--json FILE]
// Zoos: bench/make-zoo.js wide trees of 40 (100 tensors of dim x dim), cached in .zoo/ as
// bench/scale.js makes them. Per size: local and cluster wall time, the result's equality (every
// parent, confidence, family), units per kind, retries, bytes through Redis (INFO stats), and
// units per worker. On one machine the workers share its cores with the coordinator: this measures
// the overhead of the queue, not a speed-up.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { makeZoo } from './make-zoo.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const arg = (name, d) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : d; };
const sizes = arg('--sizes', '2000').split(',').map(Number);
const W = Number(arg('--workers', '3'));
const threads = arg('--threads', '1');
const dim = Number(arg('--dim', '16'));
const bootstrap = Number(arg('--bootstrap', '50'));
const dist = resolve(arg('--dist', join(root, 'dist')));
const jsonOut = arg('--json', undefined);
const redisBin = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((p) => existsSync(p));
if (!redisBin) { console.error('cluster bench: redis-server is not installed (apt-get install redis-server)'); process.exit(1); }

const { recover } = await import(pathToFileURL(join(dist, 'index.js')).href);
const { Redis } = await import('ioredis');

const freePort = () => new Promise((res, rej) => {
  const s = createServer();
  s.once('error', rej);
  s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => res(port)); });
});
const waitLine = (p, re) => new Promise((res, rej) => {
  let buf = '';
  const on = (d) => { buf += d; if (re.test(buf)) res(); };
  p.stdout?.on('data', on); p.stderr?.on('data', on);
  p.once('close', (c) => rej(new Error(`exited ${c} before ${re}: ${buf.slice(-1000)}`)));
});
const canonical = (r) => JSON.stringify({ models: r.models, families: r.families }, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v));

const tmp = mkdtempSync(join(tmpdir(), 'mother-bench-cluster-'));
const port = await freePort();
const url = `redis://127.0.0.1:${port}`;
const redis = spawn(redisBin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', tmp], { stdio: ['ignore', 'pipe', 'pipe'] });
const rows = [];
try {
  await waitLine(redis, /Ready to accept connections/);
  const info = new Redis(url);
  const netBytes = async () => {
    const s = await info.info('stats');
    const n = (k) => Number(new RegExp(`${k}:(\\d+)`).exec(s)?.[1] ?? 0);
    return { in: n('total_net_input_bytes'), out: n('total_net_output_bytes') };
  };
  console.log(`cluster bench: wide zoos, 100 tensors of ${dim}x${dim}, ${W} workers x ${threads} thread(s), bootstrap ${bootstrap}, redis ${url}`);
  console.log('      N   local s  cluster s  equal  units (sketch/family/pairs)  retries  MB in/out of redis  per worker');
  for (const n of sizes) {
    const trees = Math.max(1, Math.round(n / 40));
    const dir = join(root, '.zoo', `scale-wide-${trees}x40-d${dim}`);
    makeZoo(dir, { trees, branching: 3, depth: 3, dim, layers: 25, seed: 1 });
    // Every file read once first: both runs then read from the page cache.
    for (const m of readdirSync(dir, { withFileTypes: true })) if (m.isDirectory()) for (const f of readdirSync(join(dir, m.name))) readFileSync(join(dir, m.name, f));
    let t = performance.now();
    const local = await recover(dir, { scale: 'sketch', bootstrap });
    const localS = (performance.now() - t) / 1000;
    const workers = Array.from({ length: W }, () => spawn(process.execPath, [join(dist, 'cli/main.js'), 'worker', '--redis', url, '--threads', threads],
      { stdio: ['ignore', 'pipe', 'pipe'] }));
    try {
      await Promise.all(workers.map((w) => waitLine(w, /ready: /)));
      const before = await netBytes();
      t = performance.now();
      const remote = await recover(dir, { scale: 'sketch', bootstrap, cluster: { redis: url } });
      const clusterS = (performance.now() - t) / 1000;
      const after = await netBytes();
      const c = remote.cluster;
      const row = {
        n: local.models.length, localSeconds: localS, clusterSeconds: clusterS, equal: canonical(local) === canonical(remote),
        units: c.units, retries: c.retries, resultMB: c.bytes / 2 ** 20, redisMB: { in: (after.in - before.in) / 2 ** 20, out: (after.out - before.out) / 2 ** 20 },
        workers: Object.values(c.workers), localStages: local.scale?.seconds, clusterStages: remote.scale?.seconds, unitSeconds: c.seconds,
      };
      rows.push(row);
      console.log(`${String(row.n).padStart(7)}  ${localS.toFixed(1).padStart(8)}  ${clusterS.toFixed(1).padStart(9)}  ${row.equal ? 'yes  ' : 'NO   '}  ${`${c.units.sketch}/${c.units.family}/${c.units.pairs}`.padEnd(27)}  ${String(c.retries).padStart(7)}  ${`${row.redisMB.in.toFixed(1)} / ${row.redisMB.out.toFixed(1)}`.padStart(18)}  ${row.workers.join(' ')}`);
      console.log(`         stages local ${JSON.stringify(row.localStages)}\n         stages cluster ${JSON.stringify(row.clusterStages)}`);
    } finally {
      for (const w of workers) w.kill('SIGTERM');
      await Promise.all(workers.map((w) => new Promise((r) => (w.exitCode !== null ? r() : w.once('close', r)))));
    }
  }
  info.disconnect();
} finally {
  redis.kill('SIGTERM');
  await new Promise((r) => (redis.exitCode !== null ? r() : redis.once('close', r)));
  rmSync(tmp, { recursive: true, force: true });
}
if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ workers: W, threads, dim, bootstrap, rows }, null, 2));
if (rows.some((r) => !r.equal)) { console.error('cluster bench: the cluster result differs from the local one'); process.exit(1); }
