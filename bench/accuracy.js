// Accuracy of recover() on zoos with known ancestry (folders holding a truth.json):
// /work/shared/zoo/<split> and, where present, /work/zoo-extra/<zoo>/<split>.
//   node bench/accuracy.js [--quick] [--dist DIR] [--json FILE] [--splits DIR,DIR...]
// Per split and method: edge accuracy (right parent, a root right when called a root), undirected
// accuracy (the edge exists either way round), ARI of the families against the true trees, and how
// well confidence separates right from wrong calls: mean confidence of each, and the AUC (chance a
// right call has higher confidence than a wrong one, ties half; n/a when nothing is wrong).
// Methods: 'mother' (default, infers everything), 'paper' (the paper's distances and direction,
// families still inferred by our clustering), 'paper+K' (paper told the true number of trees, and
// on a split named lora told it is LoRA: the oracle inputs the paper assumes).
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const arg = (name) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };

export const SHARED_ZOO = '/work/shared/zoo';
export const EXTRA_ZOOS = '/work/zoo-extra';
/** Bars for the default method on the shared zoo (docs: bench/README.md). */
export const BARS = { ft: 0.97, lora: 0.95, chain: 0.8 };

const isDir = (p) => { try { return statSync(p).isDirectory(); } catch { return false; } };

/** Every split folder (one holding truth.json), with a short label: 'ft', 'extra/<zoo>/ft'. */
export function findSplits(explicit) {
  if (explicit) return explicit.split(',').filter(Boolean).map((d) => ({ label: basename(resolve(d)), dir: resolve(d) }));
  const out = [];
  const scan = (base, prefix) => {
    if (!isDir(base)) return;
    for (const name of readdirSync(base).sort())
      if (existsSync(join(base, name, 'truth.json'))) out.push({ label: prefix + name, dir: join(base, name) });
  };
  scan(SHARED_ZOO, '');
  if (isDir(EXTRA_ZOOS)) for (const zoo of readdirSync(EXTRA_ZOOS).sort()) scan(join(EXTRA_ZOOS, zoo), `extra/${zoo}/`);
  return out;
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
    const missing = truth.models.filter((_, i) => !rows[i]).map((t) => t.id);
    if (missing.length) throw new Error(`recovered result lacks ${missing.length} true model(s): ${missing.slice(0, 5).join(', ')}`);
  }
  const index = new Map(tIds.map((id, i) => [id, i]));
  const idOfRow = new Map(rows.map((r, i) => [r.id, tIds[i]]));
  const truthParent = truth.models.map((m) => (m.parent === null ? null : index.get(m.parent)));
  const predParent = rows.map((r) => (r.parent === null ? null : index.get(idOfRow.get(r.parent)) ?? -1));
  const { edgeAccuracy, undirectedAccuracy, adjustedRandIndex, rootsOf } = lib;
  const right = [], wrong = [];
  rows.forEach((r, i) => (predParent[i] === truthParent[i] ? right : wrong).push(r.confidence));
  return {
    models: rows.length,
    trees: truthParent.filter((p) => p === null).length,
    familiesFound: result.families.length,
    edge: edgeAccuracy(truthParent, predParent),
    undirected: undirectedAccuracy(truthParent, predParent),
    ari: adjustedRandIndex(rootsOf(truthParent), rows.map((r) => r.family)),
    wrongCalls: wrong.length,
    confRight: mean(right),
    confWrong: mean(wrong),
    auc: separationAuc(right, wrong),
    distances: [...new Set(result.families.map((f) => f.distance))].join('+'),
    seconds: result.diagnostics.seconds.total,
  };
}

const f3 = (x) => (x === null || x === undefined ? 'n/a' : x.toFixed(3));

export async function runAccuracy({ dist, splits, quick = false } = {}) {
  const { lib } = await loadLibrary(dist);
  const list = splits ?? findSplits();
  if (!list.length) throw new Error(`no split with a truth.json under ${SHARED_ZOO} or ${EXTRA_ZOOS}`);
  const rows = [];
  console.log('accuracy of recover() against truth.json (edge = right parent; undirected = edge either way; ARI of families)');
  console.log(`  ${'split'.padEnd(18)} ${'method'.padEnd(8)} ${'N'.padStart(3)} ${'trees'.padStart(5)} ${'found'.padStart(5)}  edge   undir  ARI    conf right/wrong  AUC    dist     bar`);
  for (const { label, dir } of list) {
    const truth = JSON.parse(readFileSync(join(dir, 'truth.json'), 'utf8'));
    const trees = truth.models.filter((m) => m.parent === null).length;
    const isLora = basename(dir) === 'lora';
    const methods = [
      ['mother', {}],
      ['paper', { method: 'paper' }],
      ['paper+K', { method: 'paper', families: trees, ...(isLora ? { distance: 'lora' } : {}) }],
    ];
    for (const [method, options] of quick && label.startsWith('extra/') ? methods.slice(0, 1) : methods) {
      let row;
      try {
        const result = await lib.recover([dir], options);
        row = { split: label, dir, method, options, ...score(lib, dir, truth, result) };
        const bar = method === 'mother' && !label.startsWith('extra/') ? BARS[basename(dir)] : undefined;
        if (bar !== undefined) { row.bar = bar; row.pass = row.edge >= bar && row.ari === 1; }
      } catch (err) {
        row = { split: label, dir, method, options, error: `${err.code ?? err.name}: ${err.message}` };
      }
      rows.push(row);
      if (row.error) { console.log(`  ${label.padEnd(18)} ${method.padEnd(8)} ERROR ${row.error}`); continue; }
      console.log(`  ${label.padEnd(18)} ${method.padEnd(8)} ${String(row.models).padStart(3)} ${String(row.trees).padStart(5)} ${String(row.familiesFound).padStart(5)}  ` +
        `${f3(row.edge)}  ${f3(row.undirected)}  ${f3(row.ari)}  ${f3(row.confRight)}/${f3(row.confWrong).padEnd(5)}  ${f3(row.auc).padEnd(5)}  ` +
        `${row.distances.padEnd(7)}  ${row.bar === undefined ? '' : `${row.pass ? 'ok' : 'MISSED'} (>= ${row.bar}, ARI 1)`}`);
    }
  }
  return { splits: list, rows };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = await runAccuracy({ dist: arg('--dist'), splits: arg('--splits') ? findSplits(arg('--splits')) : undefined, quick: argv.includes('--quick') });
  if (arg('--json')) writeFileSync(arg('--json'), JSON.stringify(out, null, 1));
  if (out.rows.some((r) => r.error || r.pass === false)) process.exitCode = 1;
}
