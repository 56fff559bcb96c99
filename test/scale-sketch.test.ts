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
        expect({ split, rows: sk.models.map((m) => [m.id, m.parent, m.confidence, m.family]) })
          .toEqual({ split, rows: ex.models.map((m) => [m.id, m.parent, m.confidence, m.family]) });
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
