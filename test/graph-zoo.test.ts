/**
 * The recovery method on the real zoo (../shared/zoo beside the repository). Self-contained: the
 * statistics are computed here by the native pipeline (every tensor shared by the split's models,
 * with L1/L-inf sums and the rank of every 2-D difference), then recoverGraph runs on them.
 * Without the zoo the tests skip with the reason (and fail under CI=true).
 *
 * Optional cross-check with the Python prototype: set MOTHER_RESEARCH_DIR to the folder where
 * research/dump_stats.py and research/prototype.py wrote mother-stats-<split>.json and
 * mother-proto-<split>.json (they write to /tmp); the TypeScript port must give the prototype's
 * parents and confidences on the same statistics. Skipped with the reason when it is not set.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { adjustedRandIndex, edgeAccuracy, recoverGraph, rootsOf, undirectedAccuracy, type TensorStats } from '../src/graph/index.js';
import { buildCatalogue, discoverModels, openModels } from '../src/io/index.js';
import { groupStatistics } from '../src/stats/compute.js';
import { zooMissing, zooPath } from './helpers/zoo.js';

const f64 = (a: (number | null)[]) => Float64Array.from(a, (x) => (x === null ? NaN : x));

interface Split { stats: TensorStats; truth: (number | null)[] }

/** The split's statistics from the native pipeline, and the true parents as model indices. */
async function compute(split: string): Promise<Split> {
  const models = await openModels(await discoverModels([zooPath(split)]));
  try {
    const groups = buildCatalogue(models);
    expect(groups.length).toBe(1);
    const { stats } = await groupStatistics(groups[0]!, { backend: 'cpu', rank: true, absMetrics: true });
    const truth = JSON.parse(readFileSync(zooPath(split, 'truth.json'), 'utf8')).models as { id: string; parent: string | null }[];
    const parentOf = new Map(truth.map((m) => [m.id, m.parent]));
    const ix = new Map(stats.ids.map((id, i) => [id, i]));
    return { stats, truth: stats.ids.map((id) => { const p = parentOf.get(id); return p === null || p === undefined ? null : ix.get(p)!; }) };
  } finally {
    for (const m of models) m.dispose();
  }
}

/** The research scripts' dump of one split (same shape as TensorStats), when MOTHER_RESEARCH_DIR has it. */
function loadDump(path: string): Split {
  const d = JSON.parse(readFileSync(path, 'utf8'));
  const ix = new Map<string, number>(d.ids.map((id: string, i: number) => [id, i]));
  return {
    stats: {
      ids: d.ids, tensors: d.tensors, kurtosis: f64(d.kurtosis), mean: f64(d.mean), m2: f64(d.m2),
      sumsq: f64(d.sumsq), sumabs: f64(d.sumabs), maxabs: f64(d.maxabs), dot: f64(d.dot), rank: f64(d.rank),
    },
    truth: d.parents.map((p: string | null) => (p === null ? null : ix.get(p)!)),
  };
}

function auc(pos: number[], neg: number[]): number {
  if (!pos.length || !neg.length) return NaN;
  let s = 0;
  for (const p of pos) for (const q of neg) s += p > q ? 1 : p === q ? 0.5 : 0;
  return s / (pos.length * neg.length);
}

const bars: Record<string, number> = { ft: 0.97, lora: 0.95, chain: 0.8 };

describe.each(['ft', 'lora', 'chain'])('zoo split %s', (split) => {
  const missing = zooMissing(split, 'truth.json');
  let data: Split | undefined;
  beforeAll(async () => { if (!missing) data = await compute(split); });

  it('meets the accuracy bars with one configuration and no oracle', (ctx) => {
    ctx.skip(missing !== null, missing ?? undefined);
    const { stats, truth } = data!;
    expect(truth.filter((t) => t === null).length).toBeGreaterThan(0);
    const t0 = performance.now();
    const ours = recoverGraph(stats);
    const ms = performance.now() - t0;
    const paper = recoverGraph(stats, { method: 'paper', bootstrap: 0 });
    const row = (name: string, p: (number | null)[]) =>
      `${split} ${name}: edge ${edgeAccuracy(truth, p).toFixed(3)} undirected ${undirectedAccuracy(truth, p).toFixed(3)} ARI ${adjustedRandIndex(rootsOf(truth), rootsOf(p)).toFixed(3)}`;
    const ok = truth.map((t, i) => t === ours.parent[i]);
    const right = ours.confidence.filter((_, i) => ok[i]), wrong = ours.confidence.filter((_, i) => !ok[i]);
    const mean = (a: number[]) => (a.length ? a.reduce((x, y) => x + y, 0) / a.length : NaN);
    console.log(`${row('paper', paper.parent)}\n${row('ours ', ours.parent)}  [${ms.toFixed(0)} ms with 50 bootstraps]` +
      `\n${split} confidence: right ${mean(right).toFixed(3)} (n=${right.length}) wrong ${mean(wrong).toFixed(3)} (n=${wrong.length}) AUC ${auc(right, wrong).toFixed(3)}` +
      `\n${split} families: ${ours.families.map((f) => `${stats.ids[f.root]}:${f.distance}/${f.direction}`).join(' ')}`);
    expect(edgeAccuracy(truth, ours.parent)).toBeGreaterThanOrEqual(bars[split]);
    expect(adjustedRandIndex(rootsOf(truth), ours.family)).toBe(1);
    expect(ours.families.every((f) => f.distance === (split === 'lora' ? 'lora' : 'ft'))).toBe(true);
    if (wrong.length) expect(mean(wrong)).toBeLessThan(mean(right));
  });

  it('gives the Python prototype\'s parents and confidences', (ctx) => {
    const dir = process.env.MOTHER_RESEARCH_DIR;
    const stats = dir ? join(dir, `mother-stats-${split}.json`) : '';
    const proto = dir ? join(dir, `mother-proto-${split}.json`) : '';
    const why = !dir
      ? 'MOTHER_RESEARCH_DIR is not set (folder of research/dump_stats.py + prototype.py outputs)'
      : !existsSync(stats) || !existsSync(proto) ? `MOTHER_RESEARCH_DIR holds no mother-stats/proto-${split}.json` : null;
    ctx.skip(why !== null, why ?? undefined);
    const p = JSON.parse(readFileSync(proto, 'utf8'));
    const ours = recoverGraph(loadDump(stats).stats);
    expect(ours.parent).toEqual(p.parent);
    ours.confidence.forEach((c, i) => expect(c).toBeCloseTo(p.confidence[i], 12));
  });
});
