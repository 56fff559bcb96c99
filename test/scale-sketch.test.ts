/**
 * The scale path (src/scale/recover.ts) on every split of the shared zoo: the sketch candidates
 * hold every true parent (recall 1 with k = 8), and scale 'sketch' gives the exact path's parents
 * and confidences. A sparse family (graph/sparse.ts) on a small synthetic tree finds its edges.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { recover } from '../src/index.js';
import { sparseRecover } from '../src/graph/sparse.js';
import { sketchCandidates } from '../src/stats/sketch.js';
import { ZOO, zooMissing } from './helpers/zoo.js';

// The tree splits (one architecture, plain parents); the typed hub folder (wild: adapters, GGUF,
// several architecture groups) has its own tests.
const splits = zooMissing() ? [] : readdirSync(ZOO).filter((s) => existsSync(join(ZOO, s, 'truth.json')) &&
  (JSON.parse(readFileSync(join(ZOO, s, 'truth.json'), 'utf8')) as { models: object[] }).models.every((m) => !('parents' in m))).sort();

describe('scale path on the shared zoo', () => {
  it.skipIf(zooMissing() !== null)('has every true parent among the candidates and the exact parents', async () => {
    expect(splits.length).toBeGreaterThan(0);
    const tmp = mkdtempSync(join(tmpdir(), 'mother-scale-'));
    try {
      for (const split of splits) {
        const truth = JSON.parse(readFileSync(join(ZOO, split, 'truth.json'), 'utf8')) as { models: { id: string; parent: string | null }[] };
        const dump = join(tmp, `${split}.json`);
        process.env.MOTHER_SCALE_CANDIDATES = dump;
        rmSync(dump, { force: true });
        const sk = await recover(join(ZOO, split), { scale: 'sketch', bootstrap: 10 });
        delete process.env.MOTHER_SCALE_CANDIDATES;
        const ex = await recover(join(ZOO, split), { scale: 'exact', bootstrap: 10 });
        const c = JSON.parse(readFileSync(dump, 'utf8')) as { ids: string[]; lists: number[][] };
        const at = new Map(c.ids.map((id, i) => [id, i]));
        const has = (a: string, b: string) => c.lists[at.get(a)!]!.includes(at.get(b)!);
        // Groups that are not sketchable (GGUF blocks) take the exact path and have no candidates.
        const missed = truth.models.filter((m) => m.parent !== null && at.has(m.id) && at.has(m.parent) && !has(m.id, m.parent) && !has(m.parent, m.id)).map((m) => m.id);
        expect({ split, missed }).toEqual({ split, missed: [] });
        expect({ split, rows: sk.models.map((m) => [m.id, m.parent, m.family]) })
          .toEqual({ split, rows: ex.models.map((m) => [m.id, m.parent, m.family]) });
        // Confidences: the scale path solves each family alone, so its bootstrap replicates choose
        // the entropy sign per family, the exact path over all families of the input; a replicate
        // that flips the sign in one path only moves a confidence by 1/10 here.
        const gap = sk.models.map((m, i) => Math.abs(m.confidence - ex.models[i]!.confidence));
        expect({ split, gap: Math.max(...gap) <= 0.2 }).toEqual({ split, gap: true });
        expect(sk.scale?.candidateRecall ?? 1).toBe(1);
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }, 120_000);
});

describe('sparse family tree', () => {
  it('recovers a chain with a branch from candidate edges and norm growth', () => {
    // 0 -> 1 -> 2, 1 -> 3; one tensor; the child's spread grows by the edge's squared length.
    const n = 4, T = 1;
    const edges: [number, number, number][] = [[0, 1, 1], [1, 2, 1.2], [1, 3, 1.1], [0, 2, 2.2], [2, 3, 2.3]];
    const m2 = Float64Array.of(10, 11, 12.2, 12.1);
    const f = {
      n, a: Int32Array.from(edges, (e) => e[0]), b: Int32Array.from(edges, (e) => e[1]), sumsq: Float64Array.from(edges, (e) => e[2]),
      mean: new Float64Array(n * T), m2, kurtosis: new Float64Array(n * T).fill(NaN), tensors: [{ rows: 4, cols: 4, numel: 16 }],
    };
    const r = sparseRecover(f, 0, 0);
    expect(Array.from(r.parent)).toEqual([-1, 0, 1, 1]);
    expect(sparseRecover(f, 5, 0).confidence).toHaveLength(4);
  });
});

describe('incremental candidate search', () => {
  // Synthetic sketches: families of near-copies of a few bases, plus exact duplicates (equal
  // distances, so ties between indices are exercised), S = 96.
  const S = 96, pool = 90;
  const rand = (() => { let a = 12345; return () => ((a = (a * 1103515245 + 12345) >>> 0) / 2 ** 32); })();
  const rows: Float32Array[] = [];
  for (let m = 0; m < pool; m++) {
    const r = new Float32Array(S);
    if (m % 15 === 14) r.set(rows[m - 1]!);  // a duplicate of the previous model
    else for (let c = 0; c < S; c++) r[c] = (m % 6) + Math.sin(c * (1 + (m % 6))) + 0.05 * (rand() - 0.5) * (1 + (m % 4));
    rows.push(r);
  }
  const sketchOf = (members: number[]) => {
    const N = members.length, x = new Float32Array(N * S);
    members.forEach((m, i) => x.set(rows[m]!, i * S));
    return { N, T: 1, mean: new Float64Array(N), m2: new Float64Array(N), kurtosis: new Float64Array(N), off: Int32Array.of(0, S), x, z: x, S, bytesRead: 0 };
  };
  const keysOf = (members: number[]) => members.map((m) => `model-${m}`);
  const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);
  const plain = (c: ReturnType<typeof sketchCandidates>) => ({
    lists: c.lists.map((l) => Array.from(l)), widened: c.widened, thin: c.thin,
    state: { ...c.state, y: Array.from(c.state.y), norm: Array.from(c.state.norm), cd: Array.from(c.state.cd), cj: Array.from(c.state.cj),
      csize: Array.from(c.state.csize), lists: c.state.lists.map((l) => Array.from(l)), flags: Array.from(c.state.flags) },
  });

  const cases: [string, number[], number[]][] = [
    ['one model added in the middle', range(0, pool).filter((m) => m !== 37), range(0, pool)],
    ['one model added at the end', range(0, pool - 1), range(0, pool)],
    ['five added, one of them a duplicate', range(0, pool).filter((m) => ![3, 14, 20, 58, 89].includes(m)), range(0, pool)],
    ['models removed (some in others\' coarse lists)', range(0, pool), range(0, pool).filter((m) => m % 7 !== 2)],
    ['added and removed at once', range(0, pool - 10), range(5, pool)],
  ];
  for (const [what, before, after] of cases)
    it(`${what}: the same lists, flags and state as the full search`, () => {
      const prev = sketchCandidates(sketchOf(before), { keys: keysOf(before) });
      const full = sketchCandidates(sketchOf(after), { keys: keysOf(after) });
      const inc = sketchCandidates(sketchOf(after), { keys: keysOf(after), previous: prev.state });
      expect(plain(inc)).toEqual(plain(full));
      expect(full.searched).toBe(after.length);
      // Added models only: the kept rows are reused. (A removal empties coarse lists here, where
      // coarse is half the pool, so those rows are searched again; the answer must still match.)
      if (!what.includes('removed')) expect(inc.searched).toBeLessThan(after.length);
      if (what.startsWith('one model')) expect(inc.searched).toBe(1);
    });

  it('falls back to the full search when the state cannot be reused', () => {
    const a = range(0, 60), b = range(0, 61);
    const prev = sketchCandidates(sketchOf(a), { keys: keysOf(a) });
    const full = plain(sketchCandidates(sketchOf(b), { keys: keysOf(b) }));
    // Other parameters, reordered models, duplicate keys: every row searched again, same answer.
    const other = sketchCandidates(sketchOf(a), { keys: keysOf(a), k: 4 });
    const r1 = sketchCandidates(sketchOf(b), { keys: keysOf(b), previous: other.state });
    expect(r1.searched).toBe(61);
    expect(plain(r1)).toEqual(full);
    const swapped = { ...prev.state, keys: prev.state.keys.map((k, i) => prev.state.keys[i ^ 1] ?? k) };
    const r2 = sketchCandidates(sketchOf(b), { keys: keysOf(b), previous: swapped });
    expect(r2.searched).toBe(61);
    expect(plain(r2)).toEqual(full);
  });
});
