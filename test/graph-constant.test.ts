import { describe, expect, it } from 'vitest';
import { clusterFamilies, constantTensors, relatedness } from '../src/graph/index.js';
import { adapterCandidates } from '../src/graph/relations.js';
import { looksAdapterTuned } from '../src/stats/compute.js';
import { statsOf, synthWeights } from './graph-synth.js';

// Two families of full fine-tunes (roots 0 and 4) and, as tensor 5 of every model, a constant
// 0/1 buffer like GPT-2's causal mask `attn.bias`: bit for bit alike in all eight models.
const parents = [null, 0, 0, 1, null, 4, 4, 5];
const BUFFER = 5;
function withBuffer(models: Float64Array[][]): Float64Array[][] {
  for (const m of models) m[BUFFER] = Float64Array.from(m[BUFFER]!, (_, i) => (i % 3 === 0 ? 1 : 0));
  return models;
}

describe('constant buffers shared by unrelated models', () => {
  const stats = statsOf(withBuffer(synthWeights({ parents, seed: 7 })), false);
  const N = parents.length, T = stats.tensors.length;
  const families = clusterFamilies(relatedness(stats), N);

  it('are marked, and only they', () => {
    expect(families).toEqual([[0, 1, 2, 3], [4, 5, 6, 7]]);
    expect(Array.from(constantTensors(stats, families))).toEqual([0, 0, 0, 0, 0, 1]);
  });

  it('do not make a full fine-tuning family look adapter-tuned', () => {
    expect(looksAdapterTuned(stats, families[0]!)).toBe(true); // unmarked, the buffer looks frozen
    const marked = { ...stats, constant: constantTensors(stats, families) };
    expect(looksAdapterTuned(marked, families[0]!)).toBe(false);
    expect(looksAdapterTuned(marked, families[1]!)).toBe(false);
  });

  it('do not make fine-tunes candidates for merged LoRA in the typed relations', () => {
    expect(adapterCandidates(stats).length).toBe(N); // unmarked: every model shares the buffer with a relative
    expect(adapterCandidates({ ...stats, constant: constantTensors(stats, families) })).toEqual([]);
  });

  it('leave frozen weights of a LoRA family counted: those differ between families', () => {
    const lora = statsOf(withBuffer(synthWeights({ parents, seed: 7, lora: true })), false);
    const fams = clusterFamilies(relatedness(lora), N);
    const constant = constantTensors(lora, fams);
    expect(Array.from(constant)).toEqual([0, 0, 0, 0, 0, 1]);
    for (const f of fams) expect(looksAdapterTuned({ ...lora, constant }, f)).toBe(true);
  });

  it('cannot be told from frozen weights within one family, so nothing is marked', () => {
    expect(Array.from(constantTensors(stats, [[0, 1, 2, 3, 4, 5, 6, 7]]))).toEqual([0, 0, 0, 0, 0, 0]);
  });
});
