// Leave-one-split-out choice of the spectral tree's two constants (GraphOptions lengthWeight and
// directionWeight, src/graph/spectrum.ts): for each split, the pair that scores best on the OTHER
// splits (mean edge accuracy; ties to the smaller constants) and the accuracy it gets on the split
// left out. Statistics are computed once per split (as recover() does: moments and pairwise sums,
// rank statistics for adapter-looking families, spectrum statistics for every family); the graph
// stage and the typed relations (src/typed.ts groupRelations: copies, adapters, merges, as
// recover() decides the parents a user sees) are rerun per grid point. --graph-only scores
// recoverGraph's tree alone.
// With --keep-bars, a grid point is eligible only if every shared split with a bar (bench/accuracy.js
// BARS) other than the one held out stays at its bar: the bars are a requirement, not one
// term of a mean, so the choice may not trade a shared split below its bar for the others' gain.
//   node bench/loso.js [--dist DIR] [--splits DIR,DIR...] [--json FILE] [--graph-only] [--keep-bars]
// Splits: every folder with a truth.json whose models carry plain `parent` fields (see
// bench/accuracy.js findSplits), the typed `wild` split excluded.
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { BARS, findSplits, loadLibrary } from './accuracy.js';

const argv = process.argv.slice(2);
const arg = (name) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };

export const LENGTH_WEIGHTS = [0, 0.01, 0.02, 0.03, 0.05, 0.1];
export const DIRECTION_WEIGHTS = [0.001, 0.003, 0.01, 0.03, 0.1];

/** The split's statistics and true parents, and score(graphOptions) -> edge accuracy of the tree. */
async function splitScorer(dist, dir, lib, graphOnly) {
  const io = await import(pathToFileURL(join(dist, 'io/index.js')).href);
  const scale = await import(pathToFileURL(join(dist, 'scale/recover.js')).href);
  const typedLib = await import(pathToFileURL(join(dist, 'typed.js')).href);
  const truth = JSON.parse(readFileSync(join(dir, 'truth.json'), 'utf8'));
  const models = await io.openModels(await io.discoverModels([dir]));
  const groups = io.buildCatalogue(models);
  if (groups.length !== 1) throw new Error(`${dir}: expected one architecture group, found ${groups.length}`);
  const group = groups[0];
  // The statistics recover() computes for a group (rank where adapter-looking, spectra for every family).
  const { stats } = await scale.familyStatistics(group, {}, {});
  // Truth parents as indices of stats.ids (models matched by path).
  const byPath = new Map(group.models.map((m, k) => [resolve(m.path), k]));
  const at = (t) => byPath.get(resolve(dir, t.path)) ?? byPath.get(resolve(dir, t.path, '..'));
  const index = new Map(truth.models.map((t) => [t.id, at(t)]));
  const parent = new Array(group.models.length).fill(null);
  for (const t of truth.models) parent[at(t)] = t.parent === null ? null : index.get(t.parent);
  const score = async (graphOptions) => {
    const graph = lib.recoverGraph(stats, { bootstrap: 0, ...graphOptions });
    if (graphOnly) return lib.edgeAccuracy(parent, graph.parent);
    const { typed } = await typedLib.groupRelations(group, stats, graph, { bootstrap: 0, ...graphOptions }, {}, new Map(), stats.ids);
    return lib.edgeAccuracy(parent, typed.parent);
  };
  return { score, dispose: () => { for (const m of models) m.dispose(); } };
}

export async function runLoso({ dist: distArg, splits, graphOnly = false, keepBars = false } = {}) {
  const { dist, lib } = await loadLibrary(distArg);
  const list = (splits ?? findSplits()).filter(({ dir }) =>
    JSON.parse(readFileSync(join(dir, 'truth.json'), 'utf8')).models.every((m) => !('parents' in m)));
  const acc = {}; // "lw,dw" -> { split: edge accuracy }
  for (const { label, dir } of list) {
    const { score, dispose } = await splitScorer(dist, dir, lib, graphOnly);
    try {
      for (const lw of LENGTH_WEIGHTS)
        for (const dw of DIRECTION_WEIGHTS) ((acc[`${lw},${dw}`] ??= {})[label] = await score({ lengthWeight: lw, directionWeight: dw }));
    } finally {
      dispose();
    }
  }
  const keys = Object.keys(acc), labels = list.map((s) => s.label);
  const total = (k, skip) => labels.filter((l) => l !== skip).reduce((a, l) => a + acc[k][l], 0);
  // A shared split's bar, by folder name (the extra zoos' splits reuse the names but have no bar).
  const barOf = (l) => (l.includes('/') ? undefined : BARS[l]);
  const eligible = (k, skip) => !keepBars || labels.every((l) => l === skip || barOf(l) === undefined || acc[k][l] >= barOf(l) - 1e-12);
  const best = (skip) => {
    const pool = keys.filter((k) => eligible(k, skip));
    return (pool.length ? pool : keys).reduce((x, y) => (total(y, skip) > total(x, skip) + 1e-12 ? y : x));
  };
  console.log(`leave-one-split-out: constants (lengthWeight, directionWeight) chosen on the other splits${keepBars ? ' among those keeping every other shared split at its bar' : ''}, accuracy on the one left out (${graphOnly ? 'graph stage only' : 'typed tree, as recover() gives it'})`);
  console.log(`  ${'held out'.padEnd(24)} chosen        held-out edge  best on it  in-sample (all splits' choice)  default`);
  const spectrum = await import(pathToFileURL(join(dist, 'graph/spectrum.js')).href);
  const def = `${spectrum.LENGTH_WEIGHT},${spectrum.DIRECTION_WEIGHT}`;
  const all = best(null), rows = [];
  for (const l of labels) {
    const k = best(l), top = Math.max(...keys.map((q) => acc[q][l]));
    rows.push({ split: l, chosen: k, heldOut: acc[k][l], best: top, inSample: acc[all][l], default: acc[def]?.[l] });
    console.log(`  ${l.padEnd(24)} ${k.padEnd(12)}  ${acc[k][l].toFixed(3)}          ${top.toFixed(3)}       ${acc[all][l].toFixed(3)}                           ${acc[def]?.[l]?.toFixed(3) ?? 'n/a'}`);
  }
  const mean = (k) => (total(k, null) / labels.length).toFixed(3);
  console.log(`  chosen on all splits: ${all} (mean ${mean(all)}); default ${def} (mean ${acc[def] ? mean(def) : 'n/a'})`);
  return { grid: acc, rows, all, default: def };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = await runLoso({ dist: arg('--dist'), splits: arg('--splits') ? findSplits(arg('--splits')) : undefined, graphOnly: argv.includes('--graph-only'), keepBars: argv.includes('--keep-bars') });
  if (arg('--json')) writeFileSync(arg('--json'), JSON.stringify(out, null, 1));
}
