// End to end: `mother recover <split> --format json --quiet` as a child process, per split.
//   node bench/e2e.js [--quick] [--dist DIR] [--json FILE] [--splits DIR,DIR...] [--runs N]
// Wall time is measured around the whole child (node start-up included); peak RSS comes from
// /usr/bin/time -v, or, where that is missing (or MOTHER_BENCH_NO_TIME=1), from a tiny wrapper that
// runs the CLI in-process and prints process.resourceUsage().maxRSS at exit. The split of the time
// into headers / statistics / graph is the report's own diagnostics.seconds. A bare `node -e 0` row
// gives the floor that start-up alone costs. Without --quick, a synthetic zoo of 968 models
// (bench/make-zoo.js, cached in .zoo/, git-ignored) shows how the pipeline scales past the real zoo.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { findSplits } from './accuracy.js';
import { makeZoo } from './make-zoo.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const arg = (name) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };
const TIME = '/usr/bin/time';

const WRAPPER = `// Runs the mother CLI in-process and reports peak RSS (kB) on stderr at exit.
import { writeSync } from 'node:fs';
const [mainUrl, ...args] = process.argv.slice(2);
const { runCli } = await import(mainUrl);
process.on('exit', () => writeSync(2, '\\nMAXRSS_KB=' + process.resourceUsage().maxRSS + '\\n'));
process.exitCode = await runCli(args, { stdout: process.stdout, stderr: process.stderr, env: process.env,
  cwd: process.cwd(), signal: new AbortController().signal });
`;

function run(cmd, args, env) {
  return new Promise((res, rej) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out = [], err = [];
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => err.push(d));
    child.on('error', rej);
    child.on('close', (code, signal) => res({
      code, signal, seconds: Number(process.hrtime.bigint() - t0) / 1e9,
      stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'),
    }));
  });
}

/** Runs `node <script> args` measuring peak RSS; returns { seconds, rssMB, stdout, ... }. */
async function measured(script, args, { env, useTime, wrapper }) {
  let r, rssKB;
  if (useTime) {
    r = await run(TIME, ['-v', process.execPath, script, ...args], env);
    rssKB = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr)?.[1]);
  } else if (script === '-e') {
    r = await run(process.execPath, ['-e', `${args[0]}; process.on('exit', () => require('fs').writeSync(2, '\\nMAXRSS_KB=' + process.resourceUsage().maxRSS + '\\n'))`], env);
    rssKB = Number(/MAXRSS_KB=(\d+)/.exec(r.stderr)?.[1]);
  } else {
    r = await run(process.execPath, [wrapper, pathToFileURL(script).href, ...args], env);
    rssKB = Number(/MAXRSS_KB=(\d+)/.exec(r.stderr)?.[1]);
  }
  return { ...r, rssMB: Number.isFinite(rssKB) ? rssKB / 1024 : null };
}

const median = (a) => { const s = [...a].sort((x, y) => x - y); return s[(s.length - 1) >> 1]; };

export async function runE2e({ dist, splits, quick = false, runs } = {}) {
  dist = resolve(dist ?? join(root, 'dist'));
  const main = join(dist, 'cli/main.js');
  if (!existsSync(main)) throw new Error(`no CLI at ${main}: run 'npm run build:ts' or pass --dist`);
  const env = { ...process.env };
  env.MOTHER_CPU_ADDON ??= join(root, 'build/Release/mother_cpu.node');
  const useTime = existsSync(TIME) && process.env.MOTHER_BENCH_NO_TIME !== '1';
  const tmp = mkdtempSync(join(tmpdir(), 'mother-e2e-'));
  const wrapper = join(tmp, 'wrap.mjs');
  writeFileSync(wrapper, WRAPPER);
  const nRuns = runs ?? (quick ? 1 : 3);
  const list = (splits ?? findSplits()).map((s) => ({ ...s, runs: nRuns }));
  if (!quick && !splits) {
    const dir = join(root, '.zoo/synthetic-968');
    const t0 = process.hrtime.bigint();
    const t = makeZoo(dir, { trees: 8, branching: 3, depth: 4, dim: 64, layers: 2, seed: 1 });
    const made = Number(process.hrtime.bigint() - t0) / 1e9;
    if (made > 0.5) console.log(`(made ${dir}: ${t.models.length} synthetic models in ${made.toFixed(1)} s)`);
    list.push({ label: `synthetic-${t.models.length}`, dir, runs: 1 });  // one run: ~10 s each
  }
  const rows = [];
  try {
    console.log(`end to end: mother recover <split> --format json --quiet (child process, median of ${nRuns}${list.some((s) => s.runs !== nRuns) ? ', synthetic 1 run' : ''}; peak RSS via ${useTime ? '/usr/bin/time -v' : 'resourceUsage().maxRSS'})`);
    console.log(`  ${'split'.padEnd(18)} ${'N'.padStart(3)}  wall s   RSS MB  headers  stats    graph    (report seconds)  MB read`);
    const base = await measured('-e', ['0'], { env, useTime, wrapper });
    rows.push({ split: 'node -e 0', seconds: base.seconds, rssMB: base.rssMB });
    console.log(`  ${'(node -e 0)'.padEnd(18)} ${''.padStart(3)}  ${base.seconds.toFixed(3).padStart(6)}  ${(base.rssMB ?? NaN).toFixed(0).padStart(6)}`);
    for (const { label, dir, runs: splitRuns } of list) {
      const args = ['recover', dir, '--format', 'json', '--quiet'];
      const samples = [];
      let error = null;
      for (let i = 0; i < splitRuns && !error; i++) {
        const r = await measured(main, args, { env, useTime, wrapper });
        if (r.code !== 0) { error = `exit ${r.code ?? r.signal}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`; break; }
        let report;
        try { report = JSON.parse(r.stdout); } catch (e) { error = `stdout is not JSON: ${e.message}`; break; }
        samples.push({ seconds: r.seconds, rssMB: r.rssMB, report: report.diagnostics, models: report.models.length });
      }
      if (error) { rows.push({ split: label, dir, error }); console.log(`  ${label.padEnd(18)} ERROR ${error}`); continue; }
      const mid = samples.find((s) => s.seconds === median(samples.map((x) => x.seconds)));
      const d = mid.report;
      const row = {
        split: label, dir, models: mid.models, runs: samples.length,
        seconds: mid.seconds, secondsAll: samples.map((s) => s.seconds),
        rssMB: Math.max(...samples.map((s) => s.rssMB ?? -Infinity)),
        report: d.seconds, bytesRead: d.bytesRead, backend: d.backend, device: d.device, threads: d.threads,
      };
      rows.push(row);
      const s = d.seconds;
      console.log(`  ${label.padEnd(18)} ${String(row.models).padStart(3)}  ${row.seconds.toFixed(3).padStart(6)}  ${row.rssMB.toFixed(0).padStart(6)}  ` +
        `${s.headers.toFixed(3).padStart(7)}  ${s.statistics.toFixed(3).padStart(7)}  ${s.graph.toFixed(3).padStart(7)}  (${s.total.toFixed(3)})  ` +
        `${(d.bytesRead / 1e6).toFixed(1).padStart(9)}  ${d.backend}/${d.device} x${d.threads}`);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return { rssSource: useTime ? '/usr/bin/time -v' : 'resourceUsage', rows };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = await runE2e({
    dist: arg('--dist'), quick: argv.includes('--quick'), runs: arg('--runs') ? Number(arg('--runs')) : undefined,
    splits: arg('--splits') ? findSplits(arg('--splits')) : undefined,
  });
  if (arg('--json')) writeFileSync(arg('--json'), JSON.stringify(out, null, 1));
  if (out.rows.some((r) => r.error)) process.exitCode = 1;
}
