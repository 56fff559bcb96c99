/** Regression tests for defects found in the TypeScript review. */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recover } from '../src/index.js';
import { InputError } from '../src/errors.js';
import { makeTempDir, removeTempDir, writeSafetensors } from './helpers/safetensors.js';

let dir: string;
beforeAll(async () => { dir = await makeTempDir('mother-review-'); });
afterAll(async () => { await removeTempDir(dir); });

const wave = (n: number, f: number, shift = 0) => Array.from({ length: n }, (_, i) => Math.sin(i * f + shift));

describe('recover', () => {
  it("distance 'lora' works for an architecture group of a single model", async () => {
    const a = join(dir, 'single.safetensors');
    await writeSafetensors(a, [{ name: 'w', dtype: 'F32', shape: [8, 8], data: wave(64, 1.7) }]);
    const r = await recover([a], { distance: 'lora', backend: 'cpu', bootstrap: 0 });
    expect(r.models.map((m) => [m.id, m.parent])).toEqual([['single', null]]);
    // The same with a second architecture group of two models beside it.
    const b = join(dir, 'p.safetensors'), c = join(dir, 'c.safetensors');
    await writeSafetensors(b, [{ name: 'v', dtype: 'F32', shape: [6, 6], data: wave(36, 0.9) }]);
    await writeSafetensors(c, [{ name: 'v', dtype: 'F32', shape: [6, 6], data: wave(36, 0.9).map((x, i) => x + (i % 6 === 0 ? 0.05 : 0)) }]);
    const r2 = await recover([a, b, c], { distance: 'lora', backend: 'cpu', bootstrap: 0 });
    expect(r2.families.length).toBe(2);
    expect(r2.models.find((m) => m.id === 'single')!.parent).toBeNull();
  });

  it('minElements 0 still leaves out empty tensors (the graph stage cannot use them)', async () => {
    const p = join(dir, 'e-p.safetensors'), c = join(dir, 'e-c.safetensors');
    const v = wave(36, 0.9);
    await writeSafetensors(p, [{ name: 'v', dtype: 'F32', shape: [6, 6], data: v }, { name: 'e', dtype: 'F32', shape: [0, 4] }]);
    await writeSafetensors(c, [{ name: 'v', dtype: 'F32', shape: [6, 6], data: v.map((x, i) => x + (i % 6 === 0 ? 0.05 : 0)) }, { name: 'e', dtype: 'F32', shape: [0, 4] }]);
    const r = await recover([p, c], { backend: 'cpu', minElements: 0, bootstrap: 0 });
    expect(r.diagnostics.tensorsUsed).toBe(1);
    expect(r.diagnostics.tensorsSkipped).toEqual([{ name: 'e', reason: 'empty tensor' }]);
    expect(r.models.filter((m) => m.parent === null)).toHaveLength(1);
  });

  it('a bad seed is an InputError before any work, like the other options', async () => {
    for (const seed of [1.5, NaN, '3'])
      await expect(recover(['/nonexistent/never-read'], { seed } as never)).rejects.toMatchObject({
        name: 'InputError', code: 'E_INPUT_OPTION', message: expect.stringContaining('seed'),
      });
    await expect(recover(['/nonexistent/never-read'], { seed: 0.5 })).rejects.toBeInstanceOf(InputError);
  });

  it('families larger than the model count is an InputError (exit 2), not a GraphError', async () => {
    const p = join(dir, 'f-p.safetensors'), c = join(dir, 'f-c.safetensors');
    const v = wave(36, 0.9);
    await writeSafetensors(p, [{ name: 'v', dtype: 'F32', shape: [6, 6], data: v }]);
    await writeSafetensors(c, [{ name: 'v', dtype: 'F32', shape: [6, 6], data: v.map((x) => x * 1.01) }]);
    await expect(recover([p, c], { backend: 'cpu', families: 3 })).rejects.toMatchObject({
      name: 'InputError', code: 'E_INPUT_OPTION', message: expect.stringMatching(/families=3.*2 models/),
    });
    const r = await recover([p, c], { backend: 'cpu', families: 2, bootstrap: 0 });
    expect(r.families).toHaveLength(2);
  });

  it('statistics progress counts whole elements (a fraction showed as 90331.50122/270963 in the bar)', async () => {
    const files = [0, 1, 2].map((k) => join(dir, `g${k}.safetensors`));
    for (const [k, f] of files.entries())
      await writeSafetensors(f, [
        { name: 'a', dtype: 'F32', shape: [300, 301], data: wave(300 * 301, 0.9).map((x) => x * (1 + 0.01 * k)) },
        { name: 'b', dtype: 'F16', shape: [7, 3], data: wave(21, 0.3, k) },
      ]);
    const events: { done: number; total: number }[] = [];
    await recover(files, { backend: 'cpu', threads: 1, bootstrap: 0, onProgress: (e) => { if (e.stage === 'statistics') events.push(e); } });
    expect(events.at(-1)).toMatchObject({ done: 3 * (300 * 301 + 21), total: 3 * (300 * 301 + 21) });
    for (const e of events) expect(Number.isInteger(e.done)).toBe(true);
  });
});
