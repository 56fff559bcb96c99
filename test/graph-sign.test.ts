// The entropy sign of a family that is mostly one chain: either sign orients it, so the estimate's
// choice is close to a coin flip, and the bootstrap (which chooses the sign again per replicate)
// must say so in the confidences instead of calling a reversed chain certain.
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { recoverGraph } from '../src/graph/index.js';
import type { TensorStats } from '../src/graph/types.js';

// TensorStats of family t1 of `bench/make_long_chain_zoo.py OUT --seed 5` (recover()'s statistics:
// exact spectra): root t1, stages t1-v1..t1-v7 by continued pre-training, fine-tunes off v5 and v6.
const fixture = JSON.parse(gunzipSync(readFileSync(new URL('./fixtures/long-chain-t1.stats.json.gz', import.meta.url))).toString());
const f64 = (b64: string) => { const b = Buffer.from(b64, 'base64'); return new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length)); };
const stats = {
  ids: fixture.ids, tensors: fixture.tensors,
  ...Object.fromEntries(['kurtosis', 'mean', 'm2', 'sumsq', 'dot', 'spectrum', 'weightSpectrum', 'spectrumNoise'].map((f) => [f, f64(fixture[f])])),
} as TensorStats;
const truth: (string | null)[] = fixture.truth;
const parents = (r: ReturnType<typeof recoverGraph>) => r.parent.map((p) => (p === null ? null : stats.ids[p]!));

describe('a long continued-pre-training chain (held-out zoo)', () => {
  it('with the entropy sign of LM training (rising), the tree is right and confident', () => {
    const r = recoverGraph(stats, { bootstrap: 50, entropySign: -1 });
    expect(parents(r)).toEqual(truth);
    expect(r.entropySignSupport).toBeNull(); // given, not chosen
    expect(r.warnings).toEqual([]);
    expect(Math.min(...r.confidence)).toBeGreaterThanOrEqual(0.9);
  });

  it('left to choose, the sign is a near tie, and the confidences say so', () => {
    const r = recoverGraph(stats, { bootstrap: 50 });
    const wrong = parents(r).map((p, i) => p !== truth[i]);
    // Whichever way the estimate reads the chain (the sign is close to a coin flip), none of its wrong calls
    // is confident: the replicates split between the two signs.
    for (const [i, w] of wrong.entries()) if (w) expect(r.confidence[i]).toBeLessThanOrEqual(0.75);
    expect(r.entropySignSupport).toBeGreaterThan(0.4);
    expect(r.entropySignSupport).toBeLessThan(0.75);
    expect(r.warnings.join('\n')).toMatch(/^family of t1\S*: its direction turns with the sign of the entropy cue, which won only \d+ of 50 bootstrap replicates/);
    const fixed = recoverGraph(stats, { bootstrap: 50, entropySign: r.entropySign! });
    // One sign kept for every replicate (the previous bootstrap) called the same tree near certain.
    expect(parents(fixed)).toEqual(parents(r));
    const wrongIdx = wrong.flatMap((w, i) => (w ? [i] : []));
    if (wrongIdx.length) expect(wrongIdx.reduce((a, i) => a + fixed.confidence[i]!, 0) / wrongIdx.length).toBeGreaterThanOrEqual(0.8);
  });
});
