/**
 * The recovery method on the real zoo (../shared/zoo beside the repository). Self-contained: the
 * statistics are computed here by the native pipeline as recover() does (every tensor shared by
 * the split's models; rank statistics for adapter-looking families, spectrum statistics for every
 * family), then recoverGraph runs on them. Without the zoo the tests skip with the reason (and fail
 * under CI=true).
 *
 * Bars: issue 8 asks edge accuracy >= 0.95 and ARI 1 on every split; these are the bars (ft keeps
 * its older 0.97). The 1.0 reached on lm-chain and ViT chain is not asked for, so not barred.
 */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { adjustedRandIndex, clusterFamilies, edgeAccuracy, recoverGraph, relatedness, rootsOf, undirectedAccuracy, type TensorStats } from '../src/graph/index.js';
import { buildCatalogue, discoverModels, openModels } from '../src/io/index.js';
import { familyStatistics } from '../src/scale/recover.js';
import { subsetStats } from '../src/graph/relations.js';
import { zooMissing, zooPath } from './helpers/zoo.js';

interface Split { stats: TensorStats; truth: (number | null)[] }

/** The split's statistics from the native pipeline, and the true parents as model indices. */
async function compute(split: string): Promise<Split> {
  const models = await openModels(await discoverModels([zooPath(split)]));
  try {
    const groups = buildCatalogue(models);
    expect(groups.length).toBe(1);
    // Exactly the statistics recover() computes for an architecture group (familyStatistics:
    // moments and pairwise sums, rank statistics for the families that look adapter-tuned,
    // spectra for every family of two or more, partly frozen full fine-tunes included).
    const { stats } = await familyStatistics(groups[0]!, {}, { backend: 'cpu' });
    const truth = JSON.parse(readFileSync(zooPath(split, 'truth.json'), 'utf8')).models as { id: string; parent: string | null }[];
    const parentOf = new Map(truth.map((m) => [m.id, m.parent]));
    const ix = new Map(stats.ids.map((id, i) => [id, i]));
    return { stats, truth: stats.ids.map((id) => { const p = parentOf.get(id); return p === null || p === undefined ? null : ix.get(p)!; }) };
  } finally {
    for (const m of models) m.dispose();
  }
}

function auc(pos: number[], neg: number[]): number {
  if (!pos.length || !neg.length) return NaN;
  let s = 0;
  for (const p of pos) for (const q of neg) s += p > q ? 1 : p === q ? 0.5 : 0;
  return s / (pos.length * neg.length);
}

const bars: Record<string, number> = { ft: 0.97, lora: 0.95, chain: 0.95, 'lm-ft': 0.95, 'lm-lora': 0.95, 'lm-chain': 0.95 };
/** Without spectrum statistics (the L2 + norm growth + kurtosis fallback), on the ViT splits. */
const fallbackBars: Record<string, number> = { ft: 0.97, lora: 0.95, chain: 0.8 };
const withoutSpectrum = (s: TensorStats): TensorStats => ({ ...s, spectrum: undefined, weightSpectrum: undefined, spectrumNoise: undefined });

describe.each(['ft', 'lora', 'chain', 'lm-ft', 'lm-lora', 'lm-chain'])('zoo split %s', (split) => {
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
    // LoRA: every family by the rank distance; lm-lora (each family holds a full fine-tune and its
    // adapters beside the root's): per-edge; full fine-tuning: by spectra.
    if (split === 'lora') expect(ours.families.every((f) => f.evidence === 'rank')).toBe(true);
    else if (split === 'lm-lora') expect(ours.families.every((f) => f.evidence === 'per-edge')).toBe(true);
    else expect(ours.families.filter((f) => f.members.length > 1).every((f) => f.evidence === 'spectrum')).toBe(true);
    expect(edgeAccuracy(truth, ours.parent)).toBeGreaterThanOrEqual(edgeAccuracy(truth, paper.parent));
    if (wrong.length) expect(mean(wrong)).toBeLessThan(mean(right));
    // The LM zoos' entropy sign is settled: (nearly) every bootstrap replicate chooses it again.
    if (split.startsWith('lm-') && split !== 'lm-lora') {
      expect(ours.entropySignSupport).toBeGreaterThanOrEqual(0.95);
      expect(ours.warnings.some((w) => w.includes('bootstrap replicates'))).toBe(false);
    }
  });

  // Spectral entropy rises from parent to child on every LM split's true edges and falls on the
  // ViT splits (docs/method.md); the sign is chosen once over all families of the input.
  it.skipIf(split === 'lora' || split === 'lm-lora')('chooses the entropy sign of its regime once, and a re-run over one family keeps it', (ctx) => {
    ctx.skip(missing !== null, missing ?? undefined);
    const { stats, truth } = data!;
    const all = recoverGraph(stats, { bootstrap: 0 });
    expect(all.entropySign).toBe(split.startsWith('lm-') ? -1 : 1);
    // One family alone, given the sign: the same tree as in the full run.
    const fam = all.families.reduce((a, f) => (f.members.length > a.members.length ? f : a));
    const sub = subsetStats(stats, fam.members);
    const alone = recoverGraph(sub, { bootstrap: 0, families: 1, entropySign: all.entropySign! });
    expect(alone.parent.map((p) => (p === null ? null : fam.members[p]!))).toEqual(fam.members.map((m) => all.parent[m]));
    // The opposite sign is never better; on the chains (stages read backwards cost the same) it is worse.
    const flipped = recoverGraph(sub, { bootstrap: 0, families: 1, entropySign: -all.entropySign! as 1 | -1 });
    const acc = (r: typeof alone) => r.parent.filter((p, a) => (p === null ? null : fam.members[p]!) === truth[fam.members[a]!]).length;
    if (split === 'lm-chain') expect(acc(flipped)).toBeLessThan(acc(alone));
    else expect(acc(flipped)).toBeLessThanOrEqual(acc(alone));
  });

  it.skipIf(!(split in fallbackBars))('without spectra, the L2 fallback still meets the old bars', (ctx) => {
    ctx.skip(missing !== null, missing ?? undefined);
    const { stats, truth } = data!;
    const r = recoverGraph(withoutSpectrum(stats), { bootstrap: 0 });
    expect(r.families.filter((f) => f.members.length > 1).every((f) => f.evidence !== 'spectrum')).toBe(true);
    expect(edgeAccuracy(truth, r.parent)).toBeGreaterThanOrEqual(fallbackBars[split]);
  });

});
