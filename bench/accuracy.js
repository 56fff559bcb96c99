// Accuracy of recover() on zoos with known ancestry (folders holding a truth.json):
// ../shared/zoo/<split> (beside the repository) and, where present, ../zoo-extra/<zoo>/<split>
// (zoos made with the shared generators, e.g. other seeds).
//   node bench/accuracy.js [--quick] [--wrong] [--dist DIR] [--json FILE] [--splits DIR,DIR...]
// (--wrong: list mother's wrong calls per split after the table)
// Prints one table, a row per split: edge accuracy of mother and of the paper's recipe (right
// parent, a root right when called a root), mother's undirected accuracy (the edge exists either
// way round), ARI of mother's families against the true trees, and how much mother's confidences
// mean: ECE (expected calibration error, 10 equal-width bins) and AUC (chance a right call has
// higher confidence than a wrong one, ties half; n/a when nothing is wrong). A last row pools
// every call of the shared splits.
// Methods: 'mother' (default, infers everything), 'paper' (the paper's distances and direction,
// families still inferred by our clustering), 'paper+K' (paper told the true number of trees, and
// on a split named lora told it is LoRA: the oracle inputs the paper assumes).
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const arg = (name) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };

export const SHARED_ZOO = resolve(root, '..', 'shared', 'zoo');
export const EXTRA_ZOOS = resolve(root, '..', 'zoo-extra');
/** Bars for the default method on the shared zoo (issue 8: edge >= 0.95 and ARI 1 on every split). */
export const BARS = { ft: 0.95, lora: 0.95, chain: 0.95, 'lm-ft': 0.95, 'lm-lora': 0.95, 'lm-chain': 0.95 };

const isDir = (p) => { try { return statSync(p).isDirectory(); } catch { return false; } };

/** Every split folder (one holding truth.json), with a short label: 'ft', 'extra/<zoo>/ft'. */
export function findSplits(explicit) {
  // One label per folder, whether listed or found, so that two zoos' splits of one name stay apart.
  const labelOf = (dir) => {
    const under = (base, prefix) => (dir.startsWith(base + '/') ? prefix + dir.slice(base.length + 1) : undefined);
    return under(SHARED_ZOO, '') ?? under(join(root, 'examples', 'zoo'), 'example/') ?? under(EXTRA_ZOOS, 'extra/') ?? dir;
  };
  const dirs = [];
  if (explicit) dirs.push(...explicit.split(',').filter(Boolean).map((d) => resolve(d)));
  else {
    const scan = (base) => {
      if (!isDir(base)) return;
      for (const name of readdirSync(base).sort()) if (existsSync(join(base, name, 'truth.json'))) dirs.push(join(base, name));
    };
    scan(SHARED_ZOO);
    scan(join(root, 'examples', 'zoo'));
    if (isDir(EXTRA_ZOOS)) for (const zoo of readdirSync(EXTRA_ZOOS).sort()) scan(join(EXTRA_ZOOS, zoo));
  }
  return dirs.map((dir) => ({ label: labelOf(dir), dir }));
}

/** The compiled library: --dist DIR (a private tsc outDir) or the repository's dist/. */
export async function loadLibrary(distArg) {
  const dist = resolve(distArg ?? join(root, 'dist'));
  if (!existsSync(join(dist, 'index.js'))) throw new Error(`no compiled library at ${dist}: run 'npm run build:ts' or pass --dist`);
  // A dist outside the repository cannot find build/Release by its own relative path.
  process.env.MOTHER_CPU_ADDON ??= join(root, 'build/Release/mother_cpu.node');
  if (!process.env.MOTHER_CUDA_ADDON && existsSync(join(root, 'build-cuda/Release/mother_cuda.node')))
    process.env.MOTHER_CUDA_ADDON = join(root, 'build-cuda/Release/mother_cuda.node');
  const index = await import(pathToFileURL(join(dist, 'index.js')).href);
  const graph = await import(pathToFileURL(join(dist, 'graph/index.js')).href); // rootsOf is not re-exported
  return { dist, lib: { ...graph, ...index } };
}

/** Mann-Whitney AUC: P(right confidence > wrong confidence), ties count half; null if a side is empty. */
export function separationAuc(right, wrong) {
  if (!right.length || !wrong.length) return null;
  let wins = 0;
  for (const r of right) for (const w of wrong) wins += r > w ? 1 : r === w ? 0.5 : 0;
  return wins / (right.length * wrong.length);
}

/** Expected calibration error of (confidence, right) calls over `bins` equal-width bins. */
export function calibrationError(calls, bins = 10) {
  if (!calls.length) return null;
  const sum = Array.from({ length: bins }, () => ({ n: 0, conf: 0, right: 0 }));
  for (const { confidence, right } of calls) {
    const b = sum[Math.min(bins - 1, Math.floor(confidence * bins))];
    b.n++; b.conf += confidence; b.right += right ? 1 : 0;
  }
  return sum.reduce((e, b) => e + (b.n ? (b.n / calls.length) * Math.abs(b.right / b.n - b.conf / b.n) : 0), 0);
}

const mean = (a) => (a.length ? a.reduce((s, x) => s + x, 0) / a.length : null);

/** Scores one RecoverResult against a truth.json (models matched by id, else by file path). */
export function score(lib, splitDir, truth, result) {
  const tIds = truth.models.map((m) => m.id);
  const byId = new Map(result.models.map((m) => [m.id, m]));
  let rows = tIds.map((id) => byId.get(id));
  if (rows.some((r) => !r)) {
    const byPath = new Map();
    for (const m of result.models) { byPath.set(resolve(m.path), m); byPath.set(resolve(m.path, 'model.safetensors'), m); }
    rows = truth.models.map((t) => byPath.get(resolve(splitDir, t.path)) ?? byPath.get(dirname(resolve(splitDir, t.path))));
  }
  // Models the run could not read (e.g. GGUF files before issue 9) count as wrong calls.
  const notRead = truth.models.filter((_, i) => !rows[i]).map((t) => t.id);
  rows = rows.map((r, i) => r ?? { id: `\0missing:${truth.models[i].id}`, parent: undefined, confidence: 0, family: -1 - i });
  const index = new Map(tIds.map((id, i) => [id, i]));
  const idOfRow = new Map(rows.map((r, i) => [r.id, tIds[i]]));
  const truthParent = truth.models.map((m) => (m.parent === null ? null : index.get(m.parent)));
  const predParent = rows.map((r) => (r.parent === undefined ? -1 : r.parent === null ? null : index.get(idOfRow.get(r.parent)) ?? -1));
  const { edgeAccuracy, undirectedAccuracy, adjustedRandIndex, rootsOf } = lib;
  const right = [], wrong = [], calls = [], wrongList = [];
  const name = (p) => (p === null ? 'ROOT' : p === -1 || p === undefined ? '?' : tIds[p]);
  rows.forEach((r, i) => {
    (predParent[i] === truthParent[i] ? right : wrong).push(r.confidence);
    if (predParent[i] !== truthParent[i]) wrongList.push(`${tIds[i]} <- ${name(predParent[i])} (true ${name(truthParent[i])}, confidence ${r.confidence.toFixed(2)})`);
    calls.push({ confidence: r.confidence, right: predParent[i] === truthParent[i] });
  });
  return {
    models: rows.length,
    notRead,
    trees: truthParent.filter((p) => p === null).length,
    familiesFound: result.families.length,
    edge: edgeAccuracy(truthParent, predParent),
    undirected: undirectedAccuracy(truthParent, predParent),
    ari: adjustedRandIndex(rootsOf(truthParent), rows.map((r) => r.family)),
    wrongCalls: wrong.length,
    wrongList,
    confRight: mean(right),
    confWrong: mean(wrong),
    auc: separationAuc(right, wrong),
    ece: calibrationError(calls),
    calls,
    distances: [...new Set(result.families.map((f) => f.distance))].join('+'),
    evidence: [...new Set(result.families.filter((f) => f.members.length > 1).map((f) => f.evidence))].join('+'),
    seconds: result.diagnostics.seconds.total,
  };
}

const f3 = (x) => (x === null || x === undefined ? 'n/a' : x.toFixed(3));

export async function runAccuracy({ dist, splits, quick = false, showWrong = false } = {}) {
  const { lib } = await loadLibrary(dist);
  const list = splits ?? findSplits();
  if (!list.length) throw new Error(`no split with a truth.json under ${SHARED_ZOO} or ${EXTRA_ZOOS}`);
  const rows = [];
  for (const { label, dir } of list) {
    const truth = JSON.parse(readFileSync(join(dir, 'truth.json'), 'utf8'));
    const trees = truth.models.filter((m) => m.parent === null).length;
    const isLora = basename(dir) === 'lora';
    const methods = [
      ['mother', {}],
      ['paper', { method: 'paper' }],
      ['paper+K', { method: 'paper', families: trees, ...(isLora ? { distance: 'lora' } : {}) }],
    ];
    for (const [method, options] of quick ? methods.slice(0, 2) : methods) {
      let row;
      try {
        const result = await lib.recover([dir], options);
        row = { split: label, dir, method, options, untyped: truth.models.every((m) => !('parents' in m)), ...score(lib, dir, truth, result) };
        const bar = method === 'mother' && !label.startsWith('extra/') ? BARS[basename(dir)] : undefined;
        if (bar !== undefined) { row.bar = bar; row.pass = row.edge >= bar && row.ari === 1; }
      } catch (err) {
        row = { split: label, dir, method, options, error: `${err.code ?? err.name}: ${err.message}` };
      }
      rows.push(row);
    }
  }
  printTable(rows);
  if (showWrong)
    for (const r of rows) if (r.method === 'mother' && r.wrongList?.length) console.log(`\n${r.split}: ${r.wrongList.length} wrong\n  ${r.wrongList.join('\n  ')}`);
  return { splits: list, rows };
}

/** The one table: a row per split (mother, with the paper's edge accuracy beside it), then the pool. */
export function printTable(rows) {
  const find = (split, method) => rows.find((r) => r.split === split && r.method === method);
  const splits = [...new Set(rows.map((r) => r.split))];
  console.log('accuracy of recover() against truth.json; mother = this package, paper = the MoTHer recipe (no oracle), paper+K = told K (and LoRA on lora)');
  console.log(`  ${'split'.padEnd(18)} ${'N'.padStart(3)} ${'trees'.padStart(5)}  mother  paper  paper+K  undir  ARI    ECE    AUC    evidence        bar`);
  for (const split of splits) {
    const m = find(split, 'mother'), p = find(split, 'paper'), k = find(split, 'paper+K');
    if (m?.error) { console.log(`  ${split.padEnd(18)} ERROR ${m.error}`); continue; }
    const worse = p && !p.error && m.edge < p.edge ? '  BELOW PAPER' : '';
    console.log(`  ${split.padEnd(18)} ${String(m.models).padStart(3)} ${String(m.trees).padStart(5)}  ${f3(m.edge)}   ${p?.error ? 'error' : f3(p?.edge)}  ${k ? (k.error ? 'error' : f3(k.edge)) : ' -   '}    ${f3(m.undirected)}  ${f3(m.ari)}  ${f3(m.ece)}  ${f3(m.auc).padEnd(5)}  ${m.evidence.padEnd(14)}  ` +
      `${m.bar === undefined ? '' : `${m.pass ? 'ok' : 'MISSED'} (>= ${m.bar}, ARI 1)`}${worse}${m.notRead.length ? `  (${m.notRead.length} not read, counted wrong)` : ''}`);
  }
  const pool = (label, keep) => {
    const calls = rows.filter((r) => r.method === 'mother' && !r.error && r.untyped && keep(r)).flatMap((r) => r.calls);
    const right = calls.filter((c) => c.right).map((c) => c.confidence), wrong = calls.filter((c) => !c.right).map((c) => c.confidence);
    console.log(`  ${label.padEnd(18)} ${String(calls.length).padStart(3)} calls, ${wrong.length} wrong: ECE ${f3(calibrationError(calls))}, AUC ${f3(separationAuc(right, wrong))} (targets: ECE <= 0.05)`);
  };
  pool('pooled (public)', (r) => !r.split.startsWith('extra/'));
  if (rows.some((r) => r.split.startsWith('extra/'))) pool('pooled (+ extra)', () => true);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = await runAccuracy({ dist: arg('--dist'), splits: arg('--splits') ? findSplits(arg('--splits')) : undefined, quick: argv.includes('--quick'), showWrong: argv.includes('--wrong') });
  if (arg('--json')) writeFileSync(arg('--json'), JSON.stringify(out, null, 1));
  if (out.rows.some((r) => r.error || r.pass === false)) process.exitCode = 1;
}
