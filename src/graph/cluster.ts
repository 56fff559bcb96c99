/**
 * Families without being told how many: models are relatives when their weights are clearly
 * correlated. Independent random inits are near-orthogonal (correlation ~ 0, about 1/sqrt(numel)),
 * a fine-tune keeps most of its parent (correlation ~ 1); "clearly" is a correlation above 1/2,
 * i.e. more than half of the weight variance shared. Families are the connected components
 * (single linkage) of that relation; with `k` given, the k-1 weakest links of the maximum spanning
 * tree are cut instead.
 */
import { GraphError, type TensorStats } from './types.js';

export const RELATED = 0.5;

/** Returns families as sorted member lists, ordered by their first member. */
export function clusterFamilies(rel: Float64Array, N: number, k?: number): number[][] {
  if (k !== undefined && (!Number.isInteger(k) || k < 1 || k > N))
    throw new GraphError('E_GRAPH_OPTION', `Expected an integer in [1, ${N}] for families but received ${k}`);
  // Maximum spanning tree of the relatedness (Prim, dense); NaN counts as unrelated.
  const val = (i: number, j: number) => (Number.isFinite(rel[i * N + j]) ? rel[i * N + j] : -Infinity);
  const inTree = new Uint8Array(N), best = new Float64Array(N).fill(-Infinity), from = new Int32Array(N).fill(-1);
  const links: { a: number; b: number; r: number }[] = [];
  inTree[0] = 1;
  for (let j = 1; j < N; j++) { best[j] = val(0, j); from[j] = 0; }
  for (let step = 1; step < N; step++) {
    let j = -1;
    for (let v = 0; v < N; v++) if (!inTree[v] && (j < 0 || best[v] > best[j])) j = v;
    inTree[j] = 1;
    links.push({ a: from[j], b: j, r: best[j] });
    for (let v = 0; v < N; v++) if (!inTree[v] && val(j, v) > best[v]) { best[v] = val(j, v); from[v] = j; }
  }
  let keep: typeof links;
  if (k === undefined) keep = links.filter((l) => l.r > RELATED);
  else keep = links.slice().sort((x, y) => y.r - x.r).slice(0, N - k);
  const root = Array.from({ length: N }, (_, i) => i);
  const find = (x: number): number => { while (root[x] !== x) { root[x] = root[root[x]]; x = root[x]; } return x; };
  for (const l of keep) root[find(l.a)] = find(l.b);
  const groups = new Map<number, number[]>();
  for (let i = 0; i < N; i++) {
    const r = find(i);
    if (!groups.has(r)) groups.set(r, []);
    groups.get(r)!.push(i);
  }
  return [...groups.values()].sort((x, y) => x[0] - y[0]);
}

/**
 * Tensors stored bit for bit alike by two models of different families: constants such as GPT-2's
 * causal-mask buffer `attn.bias` or a rotary `inv_freq`, not trained weights. Unrelated models
 * cannot share a trained tensor, so such a tensor is no evidence of freezing (a LoRA base) between
 * relatives either. With one family nothing can be told apart and nothing is marked.
 */
export function constantTensors(stats: TensorStats, families: number[][]): Uint8Array {
  const N = stats.ids.length, T = stats.tensors.length, sumsq = stats.sumsq;
  const constant = new Uint8Array(T);
  const family = new Int32Array(N);
  families.forEach((members, f) => { for (const i of members) family[i] = f; });
  for (let t = 0; t < T; t++) {
    search: for (let i = 0; i < N; i++) for (let j = i + 1; j < N; j++) {
      if (family[i] !== family[j] && sumsq[(t * N + i) * N + j] === 0) { constant[t] = 1; break search; }
    }
  }
  return constant;
}

/** Tensor t is frozen between models i and j: stored bit for bit alike, and not a constant buffer. */
export function frozenBetween(stats: TensorStats, t: number, i: number, j: number): boolean {
  const N = stats.ids.length;
  return stats.sumsq[(t * N + i) * N + j] === 0 && !stats.constant?.[t];
}
