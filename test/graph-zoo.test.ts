/**
 * The recovery method on the real zoo, through statistics dumped by research/dump_stats.py
 * (/tmp/mother-stats-<split>.json). Skipped where the dumps are absent. Also checks that the
 * TypeScript port gives the Python prototype's parents and confidences (/tmp/mother-proto-<split>.json).
 */
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { adjustedRandIndex, edgeAccuracy, recoverGraph, rootsOf, undirectedAccuracy, type TensorStats } from '../src/graph/index.js';

const f64 = (a: (number | null)[]) => Float64Array.from(a, (x) => (x === null ? NaN : x));

function load(split: string): { stats: TensorStats; truth: (number | null)[] } | null {
  const path = `/tmp/mother-stats-${split}.json`;
  if (!existsSync(path)) return null;
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
  const data = load(split);
  it.skipIf(!data)('meets the accuracy bars with one configuration and no oracle', () => {
    const { stats, truth } = data!;
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

  const proto = `/tmp/mother-proto-${split}.json`;
  it.skipIf(!data || !existsSync(proto))('gives the Python prototype\'s parents and confidences', () => {
    const p = JSON.parse(readFileSync(proto, 'utf8'));
    const ours = recoverGraph(data!.stats);
    expect(ours.parent).toEqual(p.parent);
    ours.confidence.forEach((c, i) => expect(c).toBeCloseTo(p.confidence[i], 12));
  });
});
