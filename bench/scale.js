// Scale: recover() on synthetic zoos of N models x 100 tensors (bench/make-zoo.js, 25 layers of 4
// square tensors, dim x dim each), one child process per run, peak RSS from /usr/bin/time -v (or
// the child's own process.resourceUsage().maxRSS where that is missing).
//   node bench/scale.js [--sizes 1000,2000,5000,10000] [--dim 16] [--mode auto|exact|sketch]
//                       [--family wide|deep] [--bootstrap 50] [--json FILE] [--dist DIR] [--compare]
//                       [--incremental [--verify]]
// --family wide (default): trees of 40 models (branching 3, depth 3), N/40 of them, as a hub of
// many bases. --family deep: few big trees (branching 3, depth 7: 3,280 models per tree), as one
// popular base with thousands of fine-tunes. Per run: wall time, peak RSS, the time per stage
// (from progress events), the sketch stage's candidate recall of the true parent, edge accuracy
// against truth.json; --compare also runs the exact path where N <= 2,000 and counts the parents
// on which the two disagree. Zoos are cached in .zoo/ (git-ignored).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { makeZoo } from './make-zoo.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const arg = (name, d) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : d; };
const sizes = arg('--sizes', '1000,2000,5000,10000').split(',').map(Number);
const dim = Number(arg('--dim', '16'));
const mode = arg('--mode', 'auto');
const familyKind = arg('--family', 'wide');
const bootstrap = Number(arg('--bootstrap', '50'));
const dist = resolve(arg('--dist', join(root, 'dist')));
const compare = argv.includes('--compare');
// --incremental: per size, a cold run with --cache without one leaf model, then the run after
// adding it back (1 model added to a cached N-1), then a warm run with nothing changed; with
// --verify also a full recompute (a cold run of all N on a fresh cache), whose parents and
// confidences the run after adding must equal exactly.
const incremental = argv.includes('--incremental');
const verify = argv.includes('--verify');
const TIME = '/usr/bin/time';

const CHILD = `
import { writeFileSync } from 'node:fs';
const [indexUrl, dir, mode, bootstrap, out, cache] = process.argv.slice(2);
const { recover } = await import(indexUrl);
const stages = {}; let last = performance.now(), stage = 'start';
const t0 = performance.now();
const r = await recover(dir, { bootstrap: Number(bootstrap), ...(mode === 'auto' ? {} : { scale: mode }), ...(cache ? { cache } : {}),
  onProgress: (e) => { if (e.stage !== stage) { const now = performance.now(); stages[stage] = (stages[stage] ?? 0) + (now - last) / 1000; last = now; stage = e.stage; } } });
const now = performance.now(); stages[stage] = (stages[stage] ?? 0) + (now - last) / 1000;
writeFileSync(out, JSON.stringify({ seconds: (now - t0) / 1000, stages, parents: Object.fromEntries(r.models.map((m) => [m.id, m.parent])),
  confidences: Object.fromEntries(r.models.map((m) => [m.id, m.confidence])),
  diagnostics: r.diagnostics, scale: r.scale, maxRssKB: process.resourceUsage().maxRSS }));
`;

const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');

function run(cmd, args) {
  return new Promise((res, rej) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'pipe'] });
    const err = [];
    child.stderr.on('data', (d) => err.push(d));
    child.on('error', rej);
    child.on('close', (code) => res({ code, seconds: Number(process.hrtime.bigint() - t0) / 1e9, stderr: Buffer.concat(err).toString('utf8') }));
  });
}

function zooFor(n) {
  const p = familyKind === 'deep' ? { branching: 3, depth: 7, per: 3280 } : { branching: 3, depth: 3, per: 40 };
  const trees = Math.max(1, Math.round(n / p.per));
  const dir = join(root, '.zoo', `scale-${familyKind}-${trees}x${p.per}-d${dim}`);
  const t0 = Date.now();
  const truth = makeZoo(dir, { trees, branching: p.branching, depth: p.depth, dim, layers: 25, seed: 1 });
  if (Date.now() - t0 > 1000) process.stderr.write(`made ${dir} in ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
  return { dir, truth };
}

async function once(dir, m, cache) {
  const tmp = mkdtempSync(join(tmpdir(), 'mother-scale-'));
  const script = join(tmp, 'child.mjs'), out = join(tmp, 'out.json');
  writeFileSync(script, CHILD);
  try {
    const useTime = existsSync(TIME) && process.env.MOTHER_BENCH_NO_TIME !== '1';
    const args = [script, pathToFileURL(join(dist, 'index.js')).href, dir, m, String(bootstrap), out, ...(cache ? [cache] : [])];
    process.env.MOTHER_SCALE_CANDIDATES = join(tmp, 'candidates.json');
    const r = useTime ? await run(TIME, ['-v', process.execPath, ...args]) : await run(process.execPath, args);
    if (r.code !== 0 || !existsSync(out)) throw new Error(`child failed (${r.code}): ${r.stderr.slice(-2000)}`);
    const res = JSON.parse(readFileSync(out, 'utf8'));
    const kb = useTime ? Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr)?.[1]) : res.maxRssKB;
    const cands = existsSync(join(tmp, 'candidates.json')) ? JSON.parse(readFileSync(join(tmp, 'candidates.json'), 'utf8')) : null;
    return { ...res, wall: r.seconds, rssMB: kb / 1024, cands };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

const rows = [];
console.log(`scale bench: ${familyKind} zoos, 100 tensors of ${dim}x${dim}, mode ${mode}, bootstrap ${bootstrap}; load average ${load()}`);
console.log('      N  mode     wall s  peak MB  edge acc  recall  stages (s)');
for (const n of sizes) {
  const { dir, truth } = zooFor(n);
  if (incremental) {
    const { renameSync } = await import('node:fs');
    const leaf = truth.models.at(-1).id, away = join(dirname(dir), `.away-${leaf}`);
    const cache = join(mkdtempSync(join(tmpdir(), 'mother-scale-cache-')), 'cache.sqlite');
    renameSync(join(dir, leaf), away);
    let cold;
    try { cold = await once(dir, mode, cache); } finally { renameSync(away, join(dir, leaf)); }
    const loads = [load()];
    const add = await once(dir, mode, cache); loads.push(load());
    const warm = await once(dir, mode, cache); loads.push(load());
    const fresh = join(dirname(cache), 'fresh.sqlite');
    const full = verify ? await once(dir, mode, fresh) : undefined;
    const fmt = (label, r) => console.log(`${String(r.scale?.models ?? '?').padStart(7)}  ${label.padEnd(7)} ${r.wall.toFixed(1).padStart(7)} ${r.rssMB.toFixed(0).padStart(8)}  cache ${JSON.stringify(r.scale?.cache)}  stages ${JSON.stringify(r.scale?.seconds)}`);
    fmt('cold', cold); fmt('add 1', add); fmt('warm', warm);
    if (full) fmt('full', full);
    // Exact equality: the run after adding must be the recompute's, bit for bit.
    const equal = (a, b) => Object.keys(b.parents).length === Object.keys(a.parents).length &&
      Object.keys(b.parents).every((id) => a.parents[id] === b.parents[id] && a.confidences[id] === b.confidences[id]);
    const same = full ? equal(add, full) : equal(add, warm);
    const vs = full ? 'a full recompute (fresh cache)' : 'the warm run (--verify: a full recompute)';
    console.log(`         add-1 run ${(100 * add.wall / cold.wall).toFixed(1)}% of the cold run (load average after cold / add / warm: ${loads.join(' / ')}); parents and confidences equal to ${vs}: ${same && truth.models.every((t) => add.parents[t.id] === t.parent) ? 'yes (and parents to the truth)' : same ? 'yes' : 'NO'}`);
    rows.push({ n: truth.models.length, incremental: { cold: cold.wall, add: add.wall, warm: warm.wall, full: full?.wall ?? null, equal: same, loads, coldRssMB: cold.rssMB, addRssMB: add.rssMB, cache: add.scale?.cache, addStages: add.scale?.seconds } });
    rmSync(dirname(cache), { recursive: true, force: true });
    continue;
  }
  const modes = [mode, ...(compare && truth.models.length <= 2000 && mode !== 'exact' ? ['exact'] : [])];
  const got = {};
  for (const m of modes) {
    const r = await once(dir, m);
    got[m] = r;
    const right = truth.models.filter((t) => r.parents[t.id] === t.parent).length;
    const sk = r.scale;
    // Recall of the true parent: is it among the child's candidates, or the child among the parent's?
    let recall;
    if (r.cands) {
      const at = new Map(r.cands.ids.map((id, i) => [id, i]));
      const has = (a, b) => r.cands.lists[at.get(a)].includes(at.get(b));
      const edges = truth.models.filter((t) => t.parent !== null);
      recall = edges.filter((t) => has(t.id, t.parent) || has(t.parent, t.id)).length / edges.length;
    }
    const stages = Object.entries(r.stages).filter(([k]) => k !== 'done').map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ');
    console.log(`${String(truth.models.length).padStart(7)}  ${m.padEnd(7)} ${r.wall.toFixed(1).padStart(7)} ${r.rssMB.toFixed(0).padStart(8)}  ${(right / truth.models.length).toFixed(4).padStart(8)}  ${recall === undefined || recall === null ? '   -  ' : recall.toFixed(4)}  ${stages}`);
    rows.push({ n: truth.models.length, mode: m, trueParentRecall: recall ?? null, wall: r.wall, rssMB: r.rssMB, edgeAccuracy: right / truth.models.length, stages: r.stages, seconds: r.diagnostics.seconds, scale: sk ?? null });
  }
  if (got.exact && modes.length > 1) {
    const a = got[mode].parents, b = got.exact.parents;
    const diff = Object.keys(b).filter((id) => a[id] !== b[id]).length;
    console.log(`         ${mode} vs exact: ${diff} parent(s) differ of ${Object.keys(b).length}`);
    rows.at(-2).differFromExact = diff;
  }
}
const json = arg('--json');
if (json) writeFileSync(json, JSON.stringify({ dim, mode, familyKind, bootstrap, rows }, null, 1));
