// Typed heritage scores (TensorLock-style) of recover() on hub folders with a typed truth.json
// (models with "parents": [{id, relation}]): ../shared/zoo/wild and any such split under
// ../zoo-extra/<zoo>/ (other seeds of make_wild_zoo.py).
//   node bench/typed.js [--dist DIR] [--splits DIR,DIR...] [--extra DIR,DIR...] [--json FILE]
// --extra adds hub folders (each holding truth.json) to the ones found, e.g. a wild zoo made with another seed.
// Prints, per split: untyped and typed edge F1, F1 per relation type, merges with every parent
// found, card claims judged right (wrong ones flagged / right ones flagged), and unread models.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { findSplits, loadLibrary } from './accuracy.js';

const argv = process.argv.slice(2);
const arg = (name) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };

const { dist, lib } = await loadLibrary(arg('--dist'));
const ev = await import(pathToFileURL(join(dist, 'report/evaluation.js')).href);
const json = await import(pathToFileURL(join(dist, 'report/json.js')).href);
const extra = (arg('--extra') ?? '').split(',').filter(Boolean).map((d) => ({ label: d, dir: d }));
const splits = [...findSplits(arg('--splits')), ...extra].filter(({ dir }) => ev.isTyped(JSON.parse(readFileSync(join(dir, 'truth.json'), 'utf8'))));
if (!splits.length) {
  console.log('no split with a typed truth.json found (../shared/zoo/wild, ../zoo-extra/*/*)');
  process.exit(0);
}
const RELS = ['finetune', 'adapter', 'merge', 'quantized', 'cast', 'duplicate'];
const f = (x) => (x.truth || x.predicted ? x.f1.toFixed(3) : '  -  ');
console.log('typed heritage graph of recover() against truth.json (edge F1; per relation: typed F1 of that type)');
console.log(`  ${'split'.padEnd(18)} untyped typed  ${RELS.map((r) => r.slice(0, 9).padEnd(9)).join(' ')} merges  claims  unread  seconds`);
const out = [];
for (const { label, dir } of splits) {
  const truth = JSON.parse(readFileSync(join(dir, 'truth.json'), 'utf8'));
  const t0 = performance.now();
  const result = await lib.recover(dir, {});
  const seconds = (performance.now() - t0) / 1000;
  const e = ev.evaluateTyped(ev.typedRows(truth, 'truth'), ev.typedRows(json.toJsonObject(result), 'result'));
  const c = e.claims;
  console.log(`  ${label.padEnd(18)} ${f(e.untyped).padEnd(7)} ${f(e.typed).padEnd(6)} ${RELS.map((r) => (e.perRelation[r] ? f(e.perRelation[r]) : '  -  ').padEnd(9)).join(' ')} ` +
    `${`${e.mergesComplete.complete}/${e.mergesComplete.merges}`.padEnd(7)} ${`${c.judgedRight}/${c.total}`.padEnd(7)} ${String(e.missing.length).padEnd(7)} ${seconds.toFixed(1)}`);
  console.log(`  ${''.padEnd(18)} wrong claims flagged ${c.wrongFlagged}/${c.wrongTotal}, right claims flagged ${c.rightFlagged}, not judged ${c.unjudged}` +
    (e.missing.length ? `; unread (edges missed): ${e.missing.join(', ')}` : ''));
  out.push({ split: label, seconds, ...ev.formatTypedJson(e) });
}
const file = arg('--json');
if (file) writeFileSync(file, JSON.stringify(out, null, 2) + '\n');
