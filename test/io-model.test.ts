// openModel (file, folder, sharded), discovery rules, and the tensor catalogue.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { skipWithoutZoo, zooPath } from './helpers/zoo.js';
import { mkdir, symlink, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { openModel } from '../src/io/model.js';
import { discoverModels, openModels } from '../src/io/discover.js';
import { buildCatalogue, catalogueGroup, globToRegExp, jobTensors } from '../src/io/catalogue.js';
import { InputError, ShardError, SafetensorsError, UnsupportedDTypeError } from '../src/errors.js';
import { makeTempDir, removeTempDir, writeSafetensors, writeSharded, type TensorSpec } from './helpers/safetensors.js';

let dir: string;
beforeAll(async () => {
  dir = await makeTempDir('mother-io-model-');
});
afterAll(async () => {
  await removeTempDir(dir);
});

const vit = (head = 10): TensorSpec[] => [
  { name: 'embed.weight', dtype: 'F32', shape: [16, 8] },
  { name: 'layer.0.q.weight', dtype: 'F32', shape: [8, 8] },
  { name: 'layer.0.q.bias', dtype: 'F32', shape: [8] },
  { name: 'layer.0.fc.weight', dtype: 'BF16', shape: [32, 8] },
  { name: 'layer.0.steps', dtype: 'I64', shape: [1] },
  { name: 'classifier.weight', dtype: 'F32', shape: [head, 8] },
];

describe('openModel', () => {
  it('a file, a folder with model.safetensors, a folder with one other file', async () => {
    const f = await writeSafetensors(join(dir, 'stable-diffusion-v1.5.safetensors'), vit());
    const m1 = await openModel(f.path);
    expect(m1.id).toBe('stable-diffusion-v1.5');
    expect(m1.files).toEqual([f.path]);
    expect([...m1.tensors.keys()]).toEqual(vit().map((t) => t.name));
    const q = m1.tensors.get('layer.0.fc.weight')!;
    expect(q).toEqual({ name: 'layer.0.fc.weight', dtype: 'BF16', shape: [32, 8], numel: 256, file: f.path, offset: f.offsets['layer.0.fc.weight'], byteLength: 512 });

    await mkdir(join(dir, 'm.v2'));
    await writeSafetensors(join(dir, 'm.v2', 'model.safetensors'), vit());
    await writeSafetensors(join(dir, 'm.v2', 'other.safetensors'), vit()); // model.safetensors wins
    const m2 = await openModel(join(dir, 'm.v2'));
    expect(m2.id).toBe('m.v2');
    expect(m2.files).toEqual([join(dir, 'm.v2', 'model.safetensors')]);

    await mkdir(join(dir, 'single'));
    await writeSafetensors(join(dir, 'single', 'weights.safetensors'), vit());
    expect((await openModel(join(dir, 'single'))).files).toEqual([join(dir, 'single', 'weights.safetensors')]);
    m2.dispose();
    expect(m2.tensors.size).toBe(0);
  });

  it('errors: missing, empty folder, ambiguous folder, bad file', async () => {
    await expect(openModel(join(dir, 'nope'))).rejects.toMatchObject({ code: 'E_INPUT_NOT_FOUND' });
    await mkdir(join(dir, 'empty'));
    await expect(openModel(join(dir, 'empty'))).rejects.toMatchObject({ code: 'E_INPUT_NO_MODELS' });
    await mkdir(join(dir, 'two'));
    await writeSafetensors(join(dir, 'two', 'a.safetensors'), vit());
    await writeSafetensors(join(dir, 'two', 'b.safetensors'), vit());
    await expect(openModel(join(dir, 'two'))).rejects.toMatchObject({ code: 'E_INPUT_AMBIGUOUS' });
    await writeFile(join(dir, 'bad.safetensors'), 'not a safetensors file at all');
    const err = await openModel(join(dir, 'bad.safetensors')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SafetensorsError);
    expect((err as SafetensorsError).file).toBe(join(dir, 'bad.safetensors'));
  });

  it('sharded models follow the weight_map', async () => {
    const s = await writeSharded(join(dir, 'sharded'), vit(), [['embed.weight', 'layer.0.q.weight'], ['layer.0.q.bias', 'layer.0.fc.weight', 'layer.0.steps', 'classifier.weight']]);
    const m = await openModel(s.dir);
    expect(m.id).toBe('sharded');
    expect(m.files).toEqual(s.shards.map((w) => w.path));
    expect(m.tensors.size).toBe(6);
    const b = m.tensors.get('layer.0.q.bias')!;
    expect(b.file).toBe(s.shards[1]!.path);
    expect(b.offset).toBe(s.shards[1]!.offsets['layer.0.q.bias']);
  });

  it('sharded errors: missing shard, duplicate tensor, unlisted tensor, bad index', async () => {
    const groups = [['embed.weight', 'layer.0.q.weight'], ['layer.0.q.bias', 'layer.0.fc.weight', 'layer.0.steps', 'classifier.weight']];
    await writeSharded(join(dir, 'sh-missing'), vit(), groups, (ix) => { ix.weight_map['embed.weight'] = 'model-00003-of-00003.safetensors'; });
    await expect(openModel(join(dir, 'sh-missing'))).rejects.toMatchObject({ code: 'E_SHARD_MISSING' });

    await writeSharded(join(dir, 'sh-dup'), vit(), [['embed.weight', 'layer.0.q.weight'], ['embed.weight', 'layer.0.q.bias', 'layer.0.fc.weight', 'layer.0.steps', 'classifier.weight']]);
    const dup = await openModel(join(dir, 'sh-dup')).catch((e: unknown) => e);
    expect(dup).toBeInstanceOf(ShardError);
    expect(dup).toMatchObject({ code: 'E_SHARD_DUPLICATE', tensor: 'embed.weight' });

    await writeSharded(join(dir, 'sh-unlisted'), vit(), groups, (ix) => { delete ix.weight_map['layer.0.steps']; });
    await expect(openModel(join(dir, 'sh-unlisted'))).rejects.toMatchObject({ code: 'E_SHARD_UNLISTED', tensor: 'layer.0.steps' });

    await writeSharded(join(dir, 'sh-notin'), vit(), groups, (ix) => { ix.weight_map['ghost'] = 'model-00001-of-00002.safetensors'; });
    await expect(openModel(join(dir, 'sh-notin'))).rejects.toMatchObject({ code: 'E_SHARD_MISSING', tensor: 'ghost' });

    await writeSharded(join(dir, 'sh-escape'), vit(), groups, (ix) => { ix.weight_map['embed.weight'] = '../x.safetensors'; });
    await expect(openModel(join(dir, 'sh-escape'))).rejects.toMatchObject({ code: 'E_SHARD_INDEX' });

    await mkdir(join(dir, 'sh-json'));
    await writeFile(join(dir, 'sh-json', 'model.safetensors.index.json'), '{ nope');
    await expect(openModel(join(dir, 'sh-json'))).rejects.toMatchObject({ code: 'E_SHARD_INDEX' });
  });
});

describe('discoverModels', () => {
  it('a collection folder: files and model folders are models, others ignored, sorted', async () => {
    const root = join(dir, 'zoo');
    await mkdir(join(root, 'b-folder'), { recursive: true });
    await mkdir(join(root, 'no-models'), { recursive: true });
    await writeSafetensors(join(root, 'b-folder', 'model.safetensors'), vit());
    await writeSafetensors(join(root, 'a.safetensors'), vit());
    await writeSafetensors(join(root, 'c.v1.safetensors'), vit());
    await writeFile(join(root, 'truth.json'), '{}');
    await writeFile(join(root, 'no-models', 'README'), 'x');
    await symlink(join(root, 'a.safetensors'), join(root, 'z-link.safetensors')); // same model again
    await symlink(join(root, 'loop1'), join(root, 'loop2'));
    await symlink(join(root, 'loop2'), join(root, 'loop1'));
    const refs = await discoverModels([root]);
    expect(refs.map((r) => r.id)).toEqual(['a', 'b-folder', 'c.v1']);
    expect(refs.map((r) => r.kind)).toEqual(['file', 'folder', 'file']);
    // an input that is a model folder is one model
    expect((await discoverModels([join(root, 'b-folder')])).map((r) => r.id)).toEqual(['b-folder']);
    const models = await openModels(refs);
    expect(models.map((m) => m.id)).toEqual(['a', 'b-folder', 'c.v1']);
  });

  it('clashing ids get their parent folder; errors are clear', async () => {
    await mkdir(join(dir, 'p1'));
    await mkdir(join(dir, 'p2'));
    await writeSafetensors(join(dir, 'p1', 'x.safetensors'), vit());
    await writeSafetensors(join(dir, 'p2', 'x.safetensors'), vit());
    await writeSafetensors(join(dir, 'p2', 'y.safetensors'), vit());
    const refs = await discoverModels([join(dir, 'p1', 'x.safetensors'), join(dir, 'p2')]);
    expect(refs.map((r) => r.id)).toEqual(['p1/x', 'p2/x', 'y']);
    await expect(discoverModels([join(dir, 'missing')])).rejects.toMatchObject({ code: 'E_INPUT_NOT_FOUND' });
    await mkdir(join(dir, 'nothing'));
    await expect(discoverModels([join(dir, 'nothing')])).rejects.toBeInstanceOf(InputError);
    await expect(discoverModels([])).rejects.toMatchObject({ code: 'E_INPUT_NO_MODELS' });
    await symlink(join(dir, 'selfloop'), join(dir, 'selfloop'));
    await expect(discoverModels([join(dir, 'selfloop')])).rejects.toMatchObject({ code: 'E_INPUT_UNREADABLE' });
  });

  it('unreadable folder -> E_INPUT_UNREADABLE', async (ctx) => {
    ctx.skip(process.getuid?.() === 0, 'running as root: permission bits do not stop root');
    await mkdir(join(dir, 'locked'));
    await chmod(join(dir, 'locked'), 0o000);
    await expect(discoverModels([join(dir, 'locked')])).rejects.toMatchObject({ code: 'E_INPUT_UNREADABLE' });
    await chmod(join(dir, 'locked'), 0o755);
  });

  it('the zoo: 39 models, one group, heads skipped', async (ctx) => {
    skipWithoutZoo('ft')(ctx);
    const refs = await discoverModels([zooPath('ft')]);
    expect(refs.length).toBe(39);
    const models = await openModels(refs);
    const groups = buildCatalogue(models);
    expect(groups.length).toBe(1);
    const skippedNames = groups[0]!.skipped.map((s) => s.name);
    expect(skippedNames).toContain('classifier.weight');
    expect(groups[0]!.skipped.find((s) => s.name === 'classifier.weight')!.reason).toMatch(/shape differs/);
    expect(groups[0]!.tensors.length).toBe(72 - skippedNames.length);
  });
});

describe('catalogue', () => {
  async function models(specs: TensorSpec[][], tag: string) {
    return Promise.all(specs.map(async (s, k) => openModel((await writeSafetensors(join(dir, `${tag}${k}.safetensors`), s)).path)));
  }

  it('selection by name and shape, with reasons', async () => {
    const ms = await models([vit(10), vit(3), vit(5)], 'cat');
    const g = catalogueGroup(ms);
    expect(g.tensors.map((t) => t.name)).toEqual(['embed.weight', 'layer.0.q.weight', 'layer.0.q.bias', 'layer.0.fc.weight']);
    expect(g.skipped).toEqual([
      { name: 'layer.0.steps', reason: 'dtype I64 not supported', models: ['cat0', 'cat1', 'cat2'] },
      { name: 'classifier.weight', reason: 'shape differs across models ([10, 8], [3, 8], [5, 8])' },
    ]);
    const fc = g.tensors.find((t) => t.name === 'layer.0.fc.weight')!;
    expect(fc).toMatchObject({ rows: 32, cols: 8, numel: 256, dtypes: ['BF16', 'BF16', 'BF16'] });
    const jt = jobTensors(g);
    expect(jt[0]!.sources.map((s) => s.file)).toEqual(ms.map((m) => m.files[0]));
    expect(jt[0]!.sources[1]!.offset).toBe(ms[1]!.tensors.get('embed.weight')!.offset);

    const sq = catalogueGroup(ms, { squareOnly: true, exclude: ['*.bias'] });
    expect(sq.tensors.map((t) => t.name)).toEqual(['layer.0.q.weight']);
    expect(sq.skipped.find((s) => s.name === 'layer.0.q.bias')!.reason).toBe('excluded by pattern');
    expect(sq.skipped.find((s) => s.name === 'embed.weight')!.reason).toBe('not square');
    const inc = catalogueGroup(ms, { include: ['layer.?.*weight'], minElements: 100 });
    expect(inc.tensors.map((t) => t.name)).toEqual(['layer.0.fc.weight']);
    expect(inc.skipped.find((s) => s.name === 'layer.0.q.weight')!.reason).toBe('fewer than 100 elements');
    expect(inc.skipped.find((s) => s.name === 'embed.weight')!.reason).toBe('not matched by the include patterns');
    expect(() => catalogueGroup(ms, { include: ['layer.0.steps'] })).toThrow(UnsupportedDTypeError);
    expect(() => catalogueGroup(ms, { minElements: -1 })).toThrow(InputError);
  });

  it('different architectures form separate groups; missing tensors are reported', async () => {
    const other: TensorSpec[] = [
      { name: 'conv1.weight', dtype: 'F32', shape: [8, 3, 3, 3] },
      { name: 'fc.weight', dtype: 'F16', shape: [10, 8] },
    ];
    const partial = vit().filter((t) => t.name !== 'layer.0.q.bias');
    const ms = await models([vit(), other, vit(4), other, partial], 'arch');
    const groups = buildCatalogue(ms);
    expect(groups.map((g) => g.models.map((m) => m.id))).toEqual([['arch0', 'arch2', 'arch4'], ['arch1', 'arch3']]);
    expect(groups[0]!.skipped.find((s) => s.name === 'layer.0.q.bias')).toEqual({ name: 'layer.0.q.bias', reason: 'missing from 1 of 3 models', models: ['arch4'] });
    expect(groups[1]!.tensors.map((t) => [t.name, t.rows, t.cols])).toEqual([['conv1.weight', 8, 27], ['fc.weight', 10, 8]]);
    expect(groups[0]!.architecture).toMatch(/^[0-9a-f]{16}$/);
    expect(groups[0]!.architecture).not.toBe(groups[1]!.architecture);
  });

  it('a base saved without its head class prefix joins its fine-tunes, under their names', async () => {
    // GPT2Model (`h.0...`, `wte`) against GPT2LMHeadModel (`transformer.h.0...`), BertModel against
    // BertForSequenceClassification (`bert.` + a new `classifier`).
    const base: TensorSpec[] = [
      { name: 'wte.weight', dtype: 'F32', shape: [32, 8] },
      { name: 'h.0.attn.c_attn.weight', dtype: 'F32', shape: [8, 24] },
      { name: 'h.0.attn.bias', dtype: 'F32', shape: [1, 1, 4, 4] },
      { name: 'ln_f.weight', dtype: 'F32', shape: [8] },
    ];
    const head = (extra: TensorSpec[] = []): TensorSpec[] => [...base.map((t) => ({ ...t, name: `transformer.${t.name}` })), ...extra];
    const other: TensorSpec[] = [{ name: 'conv1.weight', dtype: 'F32', shape: [8, 3, 3, 3] }];
    const ms = await models([head(), base, head([{ name: 'score.weight', dtype: 'F32', shape: [2, 8] }]), other], 'prefix');
    const offset = ms[1]!.tensors.get('h.0.attn.c_attn.weight')!.offset;
    const groups = buildCatalogue(ms);
    expect(groups.map((g) => g.models.map((m) => m.id))).toEqual([['prefix0', 'prefix1', 'prefix2'], ['prefix3']]);
    expect(groups[0]!.tensors.map((t) => t.name)).toEqual(base.map((t) => `transformer.${t.name}`));
    const qkv = jobTensors(groups[0]!)[1]!;
    expect(qkv.name).toBe('transformer.h.0.attn.c_attn.weight');
    expect(qkv.sources[1]).toMatchObject({ file: ms[1]!.files[0], offset }); // the base's own bytes
    expect(ms[1]!.tensors.get('transformer.h.0.attn.c_attn.weight')!.name).toBe('transformer.h.0.attn.c_attn.weight');
    expect(groups[0]!.skipped).toEqual([{ name: 'score.weight', reason: 'missing from 2 of 3 models', models: ['prefix0', 'prefix1'] }]);
    // Unrelated names under one prefix do not join: a ViT saved under `vit.` is not a GPT-2.
    const vits = await models([vit().map((t) => ({ ...t, name: `vit.${t.name}` })), base], 'noprefix');
    expect(buildCatalogue(vits).length).toBe(2);
  });

  it('globs', () => {
    expect(globToRegExp('a.*.b').test('a.x.y.b')).toBe(true);
    expect(globToRegExp('a.?').test('a.bc')).toBe(false);
    expect(globToRegExp('a.b').test('axb')).toBe(false);
    expect(globToRegExp('[x]+(y)').test('[x]+(y)')).toBe(true);
  });
});
