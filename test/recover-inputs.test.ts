// recover() and inspectModel() at their edges: inputs given twice, unreadable models (skipped by
// default, fatal with strict), options without effect, thread limits, AbortSignal.reason, a
// string input, a folder of models given to inspect, the quiet CUDA fallback, Family.size.
import { realpathSync, truncateSync } from 'node:fs';
import { appendFile, mkdir, readFile, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { availableBackends, discoverModels, inspectModel, MAX_THREADS, recover, type RecoverResult } from '../src/index.js';
import { makeTempDir, removeTempDir, writeRawSafetensors } from './helpers/safetensors.js';
import { writeTree } from './helpers/tree.js';
import { expectValidResult } from './helpers/schema.js';

let dir: string;
let tree: string; // m0..m5 as files
let folders: string; // m0..m5 as folders
const parents = [null, 0, 0, 1, 1, 2];
const fast = { backend: 'cpu' as const, bootstrap: 0, threads: 2 };

beforeAll(async () => {
  dir = await makeTempDir('mother-recover-inputs-');
  tree = join(dir, 'tree');
  await writeTree(tree, parents, 11);
  folders = join(dir, 'folders');
  await writeTree(folders, parents, 11, { folders: true });
});
afterAll(async () => { await removeTempDir(dir); });

const ids = (r: RecoverResult) => r.models.map((m) => m.id);
const parentIds = (r: RecoverResult) => r.models.map((m) => m.parent);

describe('inputs given twice', () => {
  it("'ft ft': the folder's models once, not 'holds no models'", async () => {
    const once = await recover([tree], fast);
    const twice = await recover([tree, tree], fast);
    expect(ids(once)).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5']);
    expect(ids(twice)).toEqual(ids(once));
    expect(parentIds(twice)).toEqual(parentIds(once));
    expect(parentIds(once)).toEqual([null, 'm0', 'm0', 'm1', 'm1', 'm2']);
    expectValidResult(twice);
  });

  it('a model given as its folder and as its file counts once, with the first id', async () => {
    const file = join(folders, 'm3', 'model.safetensors');
    const refs = await discoverModels([folders, file]);
    expect(refs.map((r) => r.id)).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5']);
    // the file first: its id ('model', from the file name) is kept and the folder m3 is dropped
    const first = await discoverModels([file, folders]);
    expect(first.map((r) => r.id)).toEqual(['model', 'm0', 'm1', 'm2', 'm4', 'm5']);
    expect(first[0]!.path).toBe(file);
    // a symbolic link to a model is the same model
    await symlink(join(folders, 'm1'), join(dir, 'link-m1'));
    expect((await discoverModels([folders, join(dir, 'link-m1')])).map((r) => r.id)).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5']);
    const r = await recover([folders, file], fast);
    expect(r.models).toHaveLength(6);
    expect(r.families.reduce((a, f) => a + f.size, 0)).toBe(6);
  });

  it('models reached through links count once, and each ref has the real path of its model file', async () => {
    // The collection through a link, and one of its models by its own path.
    const link = join(dir, 'link-folders');
    await symlink(folders, link);
    const refs = await discoverModels([link, join(folders, 'm3', 'model.safetensors')]);
    expect(refs.map((r) => r.id)).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5']);
    expect(refs.map((r) => r.realPath)).toEqual(refs.map((r) => realpathSync(join(folders, r.id, 'model.safetensors'))));
    // A collection holding a link to another collection's model folder, and a linked weight file.
    const other = join(dir, 'with-links');
    await mkdir(join(other, 'own'), { recursive: true });
    await symlink(join(folders, 'm2'), join(other, 'zz-m2'));
    await symlink(join(folders, 'm4', 'model.safetensors'), join(other, 'own', 'model.safetensors'));
    expect((await discoverModels([folders, other])).map((r) => r.id)).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5']);
    expect((await discoverModels([other, folders])).map((r) => r.id)).toEqual(['own', 'zz-m2', 'm0', 'm1', 'm3', 'm5']);
  });

  it('a string input works like a one-element array; other types are a clear error', async () => {
    const r = await recover(tree, fast);
    expect(ids(r)).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5']);
    await expect(recover(42 as unknown as string, fast)).rejects.toMatchObject({
      code: 'E_INPUT_PATH', message: 'Expected a path or an array of paths for inputs but received 42',
    });
    await expect(recover({ path: tree } as unknown as string)).rejects.toMatchObject({ code: 'E_INPUT_PATH' });
  });
});

describe('unreadable models', () => {
  let mixed: string;
  beforeAll(async () => {
    mixed = join(dir, 'mixed');
    await writeTree(mixed, parents, 11);
    await writeFile(join(mixed, 'broken.safetensors'), 'not a safetensors file at all, just text');
    // a valid header with bytes after the last tensor (refused like the reference does)
    await writeRawSafetensors(join(mixed, 'padded.safetensors'), '{"t0":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', { data: 9 });
    await mkdir(join(mixed, 'two-files'));
    await writeFile(join(mixed, 'two-files', 'a.safetensors'), '');
    await writeFile(join(mixed, 'two-files', 'b.safetensors'), '');
  });

  it('are skipped by default: the rest is recovered, each named with its code', async () => {
    const r = await recover([mixed], fast);
    expect(ids(r)).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5']);
    expect(parentIds(r)).toEqual([null, 'm0', 'm0', 'm1', 'm1', 'm2']);
    const s = r.diagnostics.skippedModels;
    expect(s.map((m) => [m.path, m.code])).toEqual([
      [join(mixed, 'broken.safetensors'), 'E_HEADER_TOO_LARGE'],
      [join(mixed, 'padded.safetensors'), 'E_HEADER_TRAILING'],
      [join(mixed, 'two-files'), 'E_INPUT_AMBIGUOUS'],
    ]);
    for (const m of s) expect(m.message).toContain(m.path);
    expect(r.diagnostics.warnings.filter((w) => w.startsWith('skipped model '))).toEqual(
      s.map((m) => `skipped model ${m.path}: ${m.message} [${m.code}]`));
    expectValidResult(r);
  });

  it('strict: the first one fails the call', async () => {
    await expect(recover([mixed], { ...fast, strict: true })).rejects.toMatchObject({
      code: 'E_HEADER_TOO_LARGE', file: join(mixed, 'broken.safetensors'),
    });
  });

  it('a file that breaks during the statistics pass is left out and the statistics start again', async () => {
    const d = join(dir, 'shrinking');
    const files = await writeTree(d, parents, 11);
    const size = (await readFile(files[4]!)).byteLength;
    // Truncate m4 from the progress callback: after its header was read and validated, before
    // the statistics read a byte of it.
    const res = await recover([d], {
      ...fast,
      onProgress: (e) => { if (e.stage === 'headers' && e.done === e.total) truncateSync(files[4]!, size - 100); },
    });
    expect(ids(res)).toEqual(['m0', 'm1', 'm2', 'm3', 'm5']);
    expect(res.diagnostics.skippedModels).toHaveLength(1);
    expect(res.diagnostics.skippedModels[0]).toMatchObject({ path: files[4], code: expect.stringMatching(/^E_IO_/) });
    expect(res.models.find((m) => m.id === 'm5')!.parent).toBe('m2');
    expectValidResult(res);
    // strict: the same break fails the call
    await appendFile(files[4]!, Buffer.alloc(100));
    await expect(recover([d], {
      ...fast, strict: true,
      onProgress: (e) => { if (e.stage === 'headers' && e.done === e.total) truncateSync(files[4]!, size - 100); },
    })).rejects.toMatchObject({ code: expect.stringMatching(/^E_IO_/), file: files[4] });
  });

  it('when no model can be read: E_INPUT_NO_MODELS naming the first problems', async () => {
    const d = join(dir, 'all-bad');
    await mkdir(d);
    await writeFile(join(d, 'a.safetensors'), 'x');
    await truncate(join(d, 'a.safetensors'), 0);
    await writeFile(join(d, 'b.safetensors'), 'xyz');
    await expect(recover([d], fast)).rejects.toMatchObject({
      code: 'E_INPUT_NO_MODELS',
      message: `no model could be read: 2 skipped (${join(d, 'a.safetensors')}: E_HEADER_EMPTY; ${join(d, 'b.safetensors')}: E_HEADER_SHORT)`,
    });
  });

  it('inputs as given still fail: a path that does not exist is a typo, not a model to skip', async () => {
    await expect(recover([tree, join(dir, 'no-such')], fast)).rejects.toMatchObject({ code: 'E_INPUT_NOT_FOUND' });
  });
});

describe('options', () => {
  it('unknown keys are an error, with the nearest known key', async () => {
    await expect(recover([tree], { thread: 2 } as never)).rejects.toMatchObject({
      code: 'E_INPUT_OPTION', message: expect.stringMatching(/^Unknown option 'thread' for recover\(\); did you mean 'threads'\? \(known: backend, device, threads,/),
    });
    await expect(recover([tree], { frobnicate: true } as never)).rejects.toThrow(/^Unknown option 'frobnicate' for recover\(\) \(known: /);
    await expect(inspectModel(join(tree, 'm0.safetensors'), { bakend: 'cpu' } as never)).rejects.toThrow(/^Unknown option 'bakend' for inspectModel\(\); did you mean 'backend'\?/);
  });

  it('lambda without method paper is an error; with it, it is used', async () => {
    await expect(recover([tree], { ...fast, lambda: 0.5 })).rejects.toMatchObject({
      code: 'E_INPUT_OPTION', message: "lambda has an effect only with method 'paper' (the kurtosis penalty of the paper's recipe); method is 'mother'",
    });
    await expect(recover([tree], { ...fast, method: 'mother', lambda: 0 })).rejects.toMatchObject({ code: 'E_INPUT_OPTION' });
    const r = await recover([tree], { ...fast, method: 'paper', lambda: 0.5 });
    expect(r.models).toHaveLength(6);
  });

  it('threads: 1 to MAX_THREADS (256), the native runner cap, in recover() and inspectModel()', async () => {
    expect(MAX_THREADS).toBe(256);
    for (const threads of [0, 257, 1000, 1.5])
      await expect(recover([tree], { ...fast, threads })).rejects.toMatchObject({
        code: 'E_INPUT_OPTION', message: `Expected an integer between 1 and 256 for threads but received ${threads}`,
      });
    await expect(inspectModel(join(tree, 'm0.safetensors'), { threads: 257 })).rejects.toMatchObject({ code: 'E_INPUT_OPTION' });
    const r = await recover([tree], { ...fast, threads: 256 });
    expect(r.diagnostics.threads).toBeGreaterThanOrEqual(1);
    expect(r.diagnostics.threads).toBeLessThanOrEqual(256);
  });

  it('other ill-typed options are refused up front', async () => {
    await expect(recover([tree], { strict: 'yes' } as never)).rejects.toThrow('Expected a boolean for strict but received "yes"');
    await expect(recover([tree], { backend: 'tpu' } as never)).rejects.toThrow('Expected one of auto|cpu|cuda for backend but received "tpu"');
    await expect(recover([tree], { signal: {} } as never)).rejects.toThrow('Expected an AbortSignal for signal');
    await expect(recover([tree], { seed: 2 ** 60 })).rejects.toThrow('Expected an integer for seed');
  });

  it('seed and bootstrap change the confidences deterministically', async () => {
    const a = await recover([tree], { backend: 'cpu', threads: 2, bootstrap: 10, seed: 1 });
    const b = await recover([tree], { backend: 'cpu', threads: 2, bootstrap: 10, seed: 1 });
    expect(a.models.map((m) => m.confidence)).toEqual(b.models.map((m) => m.confidence));
    expect(parentIds(a)).toEqual([null, 'm0', 'm0', 'm1', 'm1', 'm2']);
  });
});

describe('AbortSignal.reason', () => {
  it('an already aborted signal rejects with its reason', async () => {
    const reason = new Error('user gave up');
    await expect(recover([tree], { ...fast, signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    await expect(inspectModel(join(tree, 'm0.safetensors'), { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
  });

  it('an abort during the work rejects with the reason, whatever noticed it', async () => {
    for (const stage of ['headers', 'statistics', 'graph'] as const) {
      const ac = new AbortController();
      const reason = { why: `stop at ${stage}` };
      const p = recover([tree], { ...fast, signal: ac.signal, onProgress: (e) => { if (e.stage === stage) ac.abort(reason); } });
      await expect(p).rejects.toBe(reason);
    }
    // abort() without a reason: the DOMException AbortError Node uses
    const ac = new AbortController();
    const p = recover([tree], { ...fast, signal: ac.signal, onProgress: (e) => { if (e.stage === 'statistics') ac.abort(); } });
    await expect(p).rejects.toMatchObject({ name: 'AbortError' });
    await expect(p).rejects.toBe(ac.signal.reason);
  });
});

describe('result contract', () => {
  it('Family.size is the member count; the CUDA fallback is information, not a warning', async () => {
    const r = await recover([tree], { bootstrap: 0, threads: 2 }); // backend left at 'auto'
    for (const f of r.families) expect(f.size).toBe(f.members.length);
    expect(r.families.reduce((a, f) => a + f.size, 0)).toBe(6);
    const cuda = availableBackends().find((b) => b.name === 'cuda')!;
    if (cuda.usable) expect(r.diagnostics.backendFallback).toBeNull();
    else expect(r.diagnostics.backendFallback).toMatch(/^CUDA not used: /);
    expect(r.diagnostics.warnings.some((w) => /CUDA/.test(w))).toBe(false);
    expect(r.diagnostics.skippedModels).toEqual([]);
    // asking for the CPU is no fallback at all
    expect((await recover([tree], fast)).diagnostics.backendFallback).toBeNull();
    expectValidResult(r);
  });
});

describe('inspectModel on a folder of models', () => {
  it('lists the models and says to inspect one', async () => {
    await expect(inspectModel(folders)).rejects.toMatchObject({
      code: 'E_INPUT_COLLECTION', file: folders,
      message: `folder ${folders} holds 6 models, not one: ${['m0', 'm1', 'm2', 'm3', 'm4', 'm5'].map((m) => join(folders, m)).join(', ')}; inspect one of them, e.g. ${join(folders, 'm0')}`,
    });
    // one of them works
    const r = await inspectModel(join(folders, 'm0'), { backend: 'cpu' });
    expect(r.id).toBe('m0');
    expect(r.tensors).toHaveLength(6);
    // an empty folder keeps its own message
    await mkdir(join(dir, 'empty'));
    await expect(inspectModel(join(dir, 'empty'))).rejects.toMatchObject({ code: 'E_INPUT_NO_MODELS' });
  });
});
