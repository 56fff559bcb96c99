/**
 * Copies: models that differ from their nearest relative by nothing (a duplicate, re-sharded or
 * not) or by noise (a cast to BF16/F16, a GGUF quantisation, a re-save): their difference has the
 * spectral entropy of a Gaussian matrix. A fine-tune's difference is structured. Measured on the
 * nearest-relative pairs (median over 2-D tensors of Gaussian-reference entropy minus observed):
 * every cast, quantised copy (Q8_0 and Q4_0) and duplicate of the wild zoo <= 0.010 nats, every
 * fine-tune of lm-ft, lm-chain and a second lm-ft seed >= 0.070 - the same gap the family gate
 * uses (MIN_SPECTRAL_CONTRAST). Relative size does not separate them (a Q4_0 copy differs by
 * 4e-3 of the weights' energy, a small fine-tune by 1e-4).
 *
 * Spectral distances are blind to copies (noise has the highest entropy there is, so a copy would
 * look far from its source), so copies are taken out before the tree: each group of copies is one
 * node, its representative the member stored with the most bits (the source of a cast or a
 * quantisation; the first found among equal ones), and the other members hang below it.
 */
import { MIN_SPECTRAL_CONTRAST } from './spectrum.js';
import { median } from './distance.js';
import type { TensorStats } from './types.js';

/**
 * For the family `idx` (global indices): local index of each member's representative (itself for
 * representatives). Only called for families whose spectra are evidence (hasSpectrum).
 */
export function copyRepresentatives(stats: TensorStats, idx: number[]): Int32Array {
  const n = idx.length, N = stats.ids.length, T = stats.tensors.length;
  const S = stats.spectrum!, noise = stats.spectrumNoise!;
  const root = Int32Array.from({ length: n }, (_, a) => a);
  const find = (a: number): number => { while (root[a] !== a) { root[a] = root[root[a]]; a = root[a]; } return a; };
  for (let a = 0; a < n; a++) {
    let b = -1, bd = Infinity;
    for (let x = 0; x < n; x++) {
      if (x === a) continue;
      let d = 0;
      for (let t = 0; t < T; t++) d += stats.sumsq[(t * N + idx[a]) * N + idx[x]];
      if (d < bd) { bd = d; b = x; }
    }
    if (b < 0) continue;
    let copy = bd === 0;
    if (!copy) {
      const c: number[] = [];
      for (let t = 0; t < T; t++) {
        const v = noise[t] - S[(t * N + idx[a]) * N + idx[b]];
        if (Number.isFinite(v)) c.push(v);
      }
      copy = c.length > 0 && median(c) < MIN_SPECTRAL_CONTRAST;
    }
    if (copy) root[find(a)] = find(b);
  }
  const bits = stats.storageBits;
  const rep = new Int32Array(n).fill(-1);
  for (let a = 0; a < n; a++) {
    const g = find(a), r = rep[g];
    if (r < 0 || (bits && bits[idx[a]] > bits[idx[r]])) rep[g] = a;
  }
  return Int32Array.from({ length: n }, (_, a) => rep[find(a)]);
}

/**
 * Merged adapters among the representatives `reps` (local indices, itself = representative):
 * local index of the base each one hangs from, -1 for the others. An adapter child shares tensors
 * bit for bit with its base (frozen: equal in the pair while they vary in the family) and differs
 * from it by a low-rank update: its differences have at most half the effective rank of noise
 * (entropy contrast >= ln 2). Kept out of the spectral tree because that update lowers the entropy
 * of its difference to every model, which would make it everyone's nearest; of the pair, the child
 * is the one farther from all other models (it carries the update on top of the base).
 */
export function adapterBases(stats: TensorStats, idx: number[], reps: Int32Array): Int32Array {
  const n = idx.length, N = stats.ids.length, T = stats.tensors.length;
  const S = stats.spectrum!, noise = stats.spectrumNoise!;
  const base = new Int32Array(n).fill(-1);
  const alive = [...reps.keys()].filter((a) => reps[a] === a);
  const d2 = (a: number, b: number) => { let d = 0; for (let t = 0; t < T; t++) d += stats.sumsq[(t * N + idx[a]) * N + idx[b]]; return d; };
  const varies = stats.tensors.map((_, t) => {
    for (const a of alive) for (const b of alive) if (stats.sumsq[(t * N + idx[a]) * N + idx[b]] > 0) return true;
    return false;
  });
  const nearestExcept = (a: number, skip: number) => {
    let b = -1, bd = Infinity;
    for (const x of alive) if (x !== a && x !== skip) { const d = d2(a, x); if (d < bd) { bd = d; b = x; } }
    return { b, bd };
  };
  for (const a of alive) {
    const { b } = nearestExcept(a, -1);
    if (b < 0) continue;
    let frozen = false;
    const c: number[] = [];
    for (let t = 0; t < T; t++) {
      const k = (t * N + idx[a]) * N + idx[b];
      if (varies[t] && stats.sumsq[k] === 0) frozen = true;
      const v = noise[t] - S[k];
      if (Number.isFinite(v)) c.push(v);
    }
    if (!frozen || !(median(c) >= Math.LN2)) continue;
    // a is the child when it is farther than b from every other model.
    if (nearestExcept(a, b).bd > nearestExcept(b, a).bd && base[b] !== a) base[a] = b;
  }
  return base;
}
