// `npm run bench`: the whole benchmark suite, one compact summary, .bench/results.json.
//   node bench/run.js [--quick] [--only kernels,mst,accuracy,e2e,spectrum-cost] [--dist DIR]
// Each part runs as its own child process (bench/kernels.js, mst.js, accuracy.js, e2e.js, spectrum-cost.js), so one
// part's heap and threads never weigh on the next one's numbers; they hand back JSON files.
// These machines are shared: compare ratios measured in one run, not numbers across runs.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const PARTS = ['kernels', 'mst', 'accuracy', 'e2e', 'spectrum-cost'];
const TARGETS = { kurtosisOfBandwidth: 0.7, pairGps: 15, mst5000s: 10, spectrumRatio: 2 };

function parseArgs(argv) {
  const o = { quick: false, only: PARTS, dist: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => { const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i]; if (v === undefined) usage(`${a} needs a value`); return v; };
    if (a === '--quick') o.quick = true;
    else if (a === '--only' || a.startsWith('--only=')) {
      o.only = value().split(',').map((s) => s.trim()).filter(Boolean);
      const bad = o.only.filter((p) => !PARTS.includes(p));
      if (bad.length || !o.only.length) usage(`Expected --only from ${PARTS.join(',')} but received '${bad.join(',')}'`);
    } else if (a === '--dist' || a.startsWith('--dist=')) o.dist = resolve(value());
    else if (a === '--help' || a === '-h') usage();
    else usage(`unknown argument '${a}'`);
  }
  return o;
}

function usage(problem) {
  const text = 'Usage: node bench/run.js [--quick] [--only kernels,mst,accuracy,e2e,spectrum-cost] [--dist DIR]\n' +
    '  --quick  smaller sizes, one run each, no 5,000-model MST (CI smoke)\n' +
    '  --dist   compiled library to measure (default: dist/; e.g. a private tsc --outDir)\n';
  if (problem) { process.stderr.write(`bench: ${problem}\n${text}`); process.exit(2); }
  process.stdout.write(text);
  process.exit(0);
}

/** Runs `node script args`, echoing its stdout indented, and returns { code, stdout, seconds }. */
function child(script, args) {
  return new Promise((res) => {
    const t0 = process.hrtime.bigint();
    const p = spawn(process.execPath, [join(here, script), ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    const out = [], err = [];
    let partial = '';
    const echo = (d) => {
      const text = partial + d.toString('utf8');
      const lines = text.split('\n');
      partial = lines.pop();
      for (const l of lines) process.stdout.write(l ? `  ${l}\n` : '\n');
    };
    p.stdout.on('data', (d) => { out.push(d); echo(d); });
    p.stderr.on('data', (d) => { err.push(d); process.stderr.write(d); });
    p.on('error', (e) => res({ code: -1, stdout: '', stderr: e.message, seconds: 0 }));
    p.on('close', (code, signal) => {
      if (partial) process.stdout.write(`  ${partial}\n`);
      res({ code: code ?? signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), seconds: Number(process.hrtime.bigint() - t0) / 1e9 });
    });
  });
}

function machine() {
  let cpu = 'unknown CPU';
  try { cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? os.cpus()[0]?.model ?? cpu; } catch { cpu = os.cpus()[0]?.model ?? cpu; }
  let caps = null, capsError = null;
  try { caps = createRequire(import.meta.url)(join(root, 'build/Release/mother_cpu.node')).capabilities(); }
  catch (e) { capsError = e.message.split('\n')[0]; }
  let commit = null;
  try { commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim(); } catch { /* not a checkout */ }
  return {
    cpu, cores: os.availableParallelism?.() ?? os.cpus().length, memoryGB: +(os.totalmem() / 2 ** 30).toFixed(1),
    arch: caps?.arch ?? process.arch, isa: caps?.detectedIsa ?? null, features: caps?.features ?? null, capsError,
    node: process.version, loadAverageStart: os.loadavg().map((x) => +x.toFixed(2)), commit, date: new Date().toISOString(),
  };
}

/** The numbers of bench/kernels.js, read from its printed lines (it has no JSON output). */
export function parseKernels(text) {
  const k = { bandwidth: null, moments: {}, pairwise1: {}, pairwise2: {}, n: null, N: null };
  const bw = /read bandwidth.*?1 thread ([\d.]+) GB\/s, 2 threads ([\d.]+) GB\/s; warm 256 KiB: ([\d.]+) GB\/s/.exec(text);
  if (bw) k.bandwidth = { oneThread: +bw[1], twoThreads: +bw[2], warm: +bw[3] };
  let section = '';
  for (const line of text.split('\n')) {
    if (/^pairwise, G pair-elements/.test(line)) {
      section = 'p1';
      const m = /N = (\d+) x ([\d.]+)M/.exec(line);
      if (m) { k.N = +m[1]; k.n = `${m[2]}M`; }
    } else if (/^pairwise, 2 threads/.test(line)) section = 'p2';
    else if (/^moments/.test(line)) section = 'm';
    let m;
    if (section === 'm' && (m = /^\s+(F32|F64) (warm|cold) (\w+)\s+([\d.]+) GB\/s/.exec(line))) k.moments[`${m[1]} ${m[2]} ${m[3]}`] = +m[4];
    else if (section === 'p1' && (m = /^\s+(sumsq|sumabs|maxabs|dot|all four) (\w+)\s+([\d.]+) G\/s/.exec(line))) k.pairwise1[`${m[1]} ${m[2]}`] = +m[3];
    else if (section === 'p2' && (m = /^\s+(sumsq|sumabs|maxabs|dot|all four)\s+([\d.]+) G\/s/.exec(line))) k.pairwise2[m[1]] = +m[2];
  }
  // A changed output format must not pass silently as "no numbers": keep the text.
  if (!k.bandwidth && !Object.keys(k.moments).length) k.unparsed = text.trim().split('\n').slice(-30);
  return k;
}

const fmt = (x, d = 2) => (x === null || x === undefined || Number.isNaN(x) ? 'n/a' : x.toFixed(d));
const pct = (x) => (x === null || x === undefined || Number.isNaN(x) ? 'n/a' : `${Math.round(100 * x)}%`);

function summarise(results, m) {
  const lines = [];
  const push = (part, what, value, verdict = '') => lines.push([part, what, value, verdict]);
  const k = results.kernels;
  if (k?.error) push('kernels', 'error', k.error);
  else if (k?.unparsed) push('kernels', 'output not understood', 'see .bench/results.json (kernels.unparsed)');
  else if (k) {
    const isa = m.isa;
    const b = k.bandwidth;
    push('kernels', 'read bandwidth 1T / 2T / warm L2', b ? `${fmt(b.oneThread, 1)} / ${fmt(b.twoThreads, 1)} / ${fmt(b.warm, 1)} GB/s` : 'n/a');
    const cold = k.moments[`F32 cold ${isa}`], warm = k.moments[`F32 warm ${isa}`];
    const coldRatio = b && cold ? cold / b.oneThread : null, warmRatio = b && warm ? warm / b.warm : null;
    push('kernels', `kurtosis F32 ${isa} cold / warm`, `${fmt(cold)} / ${fmt(warm)} GB/s = ${pct(coldRatio)} / ${pct(warmRatio)} of bw`,
      coldRatio === null ? '' : coldRatio >= TARGETS.kurtosisOfBandwidth ? 'ok (>= 70%)' : 'below 70%');
    for (const metric of ['sumsq', 'sumabs', 'maxabs', 'dot', 'all four']) {
      const one = k.pairwise1[`${metric} ${isa}`], two = k.pairwise2[metric];
      if (one === undefined && two === undefined) continue;
      const judged = ['sumsq', 'sumabs', 'maxabs'].includes(metric) && two !== undefined;
      push('kernels', `pairwise ${metric} N=${k.N} x ${k.n} 1T / 2T`, `${fmt(one)} / ${fmt(two)} G pair-el/s`,
        judged ? (two >= TARGETS.pairGps ? 'ok (>= 15 on 2T)' : 'below 15 on 2T') : '');
    }
  }
  const s = results.mst;
  if (s?.error) push('mst', 'error', s.error);
  else if (s) for (const c of s.cases) {
    const verdict = [c.valid ? 'valid' : `INVALID (${c.problem})`, c.optimal === true ? 'optimal' : c.optimal === false ? 'NOT OPTIMAL' : '',
      c.kind === 'random' && c.n === 5000 ? (c.seconds < TARGETS.mst5000s ? 'ok (< 10 s)' : 'MISSED 10 s') : ''].filter(Boolean).join(', ');
    push('mst', `${c.kind} N=${c.n}`, `${fmt(c.seconds, 3)} s`, verdict);
  }
  const a = results.accuracy;
  if (a?.error) push('accuracy', 'error', a.error);
  else if (a) for (const r of a.rows) {
    if (r.error) { push('accuracy', `${r.split} ${r.method}`, `ERROR ${r.error}`); continue; }
    push('accuracy', `${r.split} ${r.method}`,
      `edge ${fmt(r.edge, 3)} undir ${fmt(r.undirected, 3)} ARI ${fmt(r.ari, 3)} conf ${fmt(r.confRight)}/${fmt(r.confWrong)} AUC ${fmt(r.auc)}`,
      r.bar === undefined ? '' : r.pass ? `ok (>= ${r.bar})` : `MISSED (>= ${r.bar}, ARI 1)`);
  }
  const e = results.e2e;
  if (e?.error) push('e2e', 'error', e.error);
  else if (e) for (const r of e.rows) {
    if (r.error) { push('e2e', r.split, `ERROR ${r.error}`); continue; }
    push('e2e', r.models ? `${r.split} (${r.models} models)` : r.split,
      `${fmt(r.seconds, 3)} s, ${fmt(r.rssMB, 0)} MB` + (r.report ? `; headers ${fmt(r.report.headers, 3)} stats ${fmt(r.report.statistics, 3)} graph ${fmt(r.report.graph, 3)}` : ''));
  }
  const sc = results['spectrum-cost'];
  if (sc?.error) push('spectrum-cost', 'error', sc.error);
  else if (sc) {
    const r = sc.rounds.at(-1), z = sc.zoo;
    push('spectrum-cost', `L2-only / + spectrum, ${z.models} x ${fmt(z.parameters / 1e6, 1)}M ${z.dtype}, ${r.threads}T (warm)`,
      `${fmt(r.a)} s / ${fmt(r.b)} s = ${fmt(r.ratio)}x wall, ${fmt(r.cpu.ratio)}x cpu`,
      sc.zoo.models < 32 ? '(--quick: tiny models, not judged)' : r.ratio <= TARGETS.spectrumRatio ? 'ok (<= 2x)' : 'ABOVE 2x');
    push('spectrum-cost', `spectrum kernel ${sc.kernel.shapes.map((s) => s.block).join(', ')}`,
      `${sc.kernel.shapes.map((s) => `${fmt(s.ms, 3)} ms`).join(', ')} x ${sc.kernel.callsPerTensor} calls x ${z.matrices} tensors = ${fmt(sc.kernel.seconds, 1)} s cpu`);
  }
  return lines;
}

function printTable(lines) {
  const w = [0, 1, 2].map((i) => Math.max(...lines.map((l) => l[i].length)));
  for (const l of lines) console.log(`${l[0].padEnd(w[0])}  ${l[1].padEnd(w[1])}  ${l[2].padEnd(w[2])}  ${l[3]}`.trimEnd());
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const m = machine();
  console.log(`machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGB} GiB, ${m.arch} ISA ${m.isa ?? `? (${m.capsError})`}; node ${m.node}; ` +
    `load ${m.loadAverageStart.join(' ')} at start${m.commit ? `; commit ${m.commit}` : ''}`);
  if (m.features) console.log(`features: ${m.features}`);
  if (m.loadAverageStart[0] > m.cores / 2) console.log(`note: load average ${m.loadAverageStart[0]} on ${m.cores} cores -- timings will be noisy; read ratios within this run`);

  const tmp = mkdtempSync(join(os.tmpdir(), 'mother-bench-'));
  const results = {};
  const seconds = {};
  const common = [...(opts.quick ? ['--quick'] : []), ...(opts.dist ? ['--dist', opts.dist] : [])];
  try {
    for (const part of PARTS.filter((p) => opts.only.includes(p))) {
      console.log(`\n== ${part}`);
      if (part === 'kernels') {
        const r = await child('kernels.js', opts.quick ? ['--quick'] : []);
        seconds[part] = r.seconds;
        results.kernels = r.code === 0 ? parseKernels(r.stdout) : { error: `bench/kernels.js exited ${r.code}: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}` };
        continue;
      }
      const json = join(tmp, `${part}.json`);
      const r = await child(`${part}.js`, [...common, '--json', json]);
      seconds[part] = r.seconds;
      if (existsSync(json)) {
        results[part] = JSON.parse(readFileSync(json, 'utf8'));
        if (r.code !== 0) results[part].exitCode = r.code;  // checks failed (printed above); numbers kept
      } else results[part] = { error: `bench/${part}.js exited ${r.code}: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}` };
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  m.loadAverageEnd = os.loadavg().map((x) => +x.toFixed(2));

  console.log(`\n== summary (${m.cpu}, ${m.cores} cores, ${m.isa}; load ${m.loadAverageStart[0]} -> ${m.loadAverageEnd[0]}${opts.quick ? '; --quick' : ''})`);
  const table = summarise(results, m);
  printTable(table);
  mkdirSync(join(root, '.bench'), { recursive: true });
  const file = join(root, '.bench/results.json');
  writeFileSync(file, JSON.stringify({ machine: m, options: { quick: opts.quick, only: opts.only, dist: opts.dist ?? join(root, 'dist') }, seconds, results, summary: table }, null, 1));
  console.log(`\nresults: ${file}`);
  const failed = Object.values(results).some((r) => r.error || r.exitCode);
  if (failed) process.exitCode = 1;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
