/**
 * Hostile input through the public paths (openModel, recover, the CLI): every broken file, index or
 * folder gives a typed error with a stable `code` and a message naming the file (and tensor), never a
 * crash; odd but valid input (zero-size tensors, mixed architectures, NaN weights) gives a defined
 * result, with a warning where a result is degraded.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { closeSync, constants, openSync, readdirSync, readFileSync, readlinkSync, statSync, truncateSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { chmod, mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { openModel, readHeader } from '../src/io/model.js';
import { discoverModels } from '../src/io/discover.js';
import { recover } from '../src/recover.js';
import { GraphError } from '../src/graph/index.js';
import { runJob } from '../src/stats/compute.js';
import { runCli } from '../src/cli/main.js';
import type { CliContext } from '../src/cli/context.js';
import {
  InputError, ModelIOError, MotherError, SafetensorsError, ShardError,
} from '../src/errors.js';
import {
  makeTempDir, randomValues, removeTempDir, writeRawSafetensors, writeSafetensors, writeSharded,
  type TensorSpec,
} from './helpers/safetensors.js';
import { SHAPES, synthWeights } from './graph-synth.js';
import { mulberry32 } from '../src/graph/confidence.js';

let dir: string;
let n = 0;
const fresh = () => join(dir, `f${n++}.safetensors`);

beforeAll(async () => { dir = await makeTempDir('mother-hostile-'); });
afterAll(async () => { await removeTempDir(dir); });

type ErrClass = new (...args: never[]) => MotherError;

/** Rejects with `cls` and `code`; the message names `file` (and `tensor` where given). */
async function expectError(p: Promise<unknown>, cls: ErrClass, code: string, where: { file?: string; tensor?: string } = {}) {
  const err = await p.then(() => { throw new Error(`expected ${code}, but it resolved`); }, (e: unknown) => e);
  if (!(err instanceof cls)) throw new Error(`expected ${cls.name} ${code}, got ${(err as Error)?.name}: ${(err as Error)?.message}`);
  const e = err as MotherError;
  expect(e.code).toBe(code);
  if (where.file) {
    expect(e.message).toContain(where.file);
    expect(e.file).toBe(where.file);
  }
  if (where.tensor) {
    expect(e.message).toContain(where.tensor);
    expect(e.tensor).toBe(where.tensor);
  }
  return e;
}

const f32 = (name: string, shape: number[], seed = 1): TensorSpec =>
  ({ name, dtype: 'F32', shape, data: randomValues(shape.reduce((a, b) => a * b, 1), seed) });

/** A raw header text + data bytes as a file; returns its path. */
async function raw(header: string | Uint8Array, data: number | Uint8Array = 0, lengthOverride?: number | bigint) {
  return writeRawSafetensors(fresh(), header, { data, lengthOverride });
}

const entry = (dtype: string, shape: unknown, offsets: unknown) => JSON.stringify({ dtype, shape, data_offsets: offsets });

describe('hostile safetensors files (openModel)', () => {
  it('empty file, fewer than 8 bytes', async () => {
    const empty = fresh();
    await writeFile(empty, new Uint8Array(0));
    await expectError(openModel(empty), SafetensorsError, 'E_HEADER_EMPTY', { file: empty });
    const short = fresh();
    await writeFile(short, new Uint8Array([2, 0, 0, 0, 0]));
    const e = await expectError(openModel(short), SafetensorsError, 'E_HEADER_SHORT', { file: short });
    expect(e.message).toContain('5 bytes');
  });

  it('header length past EOF, absurdly large header length', async () => {
    const past = await raw('{}', 4, 1000);
    await expectError(openModel(past), SafetensorsError, 'E_HEADER_PAST_EOF', { file: past });
    for (const len of [2n ** 64n - 1n, 2n ** 63n, 100n * 2n ** 20n + 1n]) {
      const huge = await raw('{}', 0, len);
      const e = await expectError(openModel(huge), SafetensorsError, 'E_HEADER_TOO_LARGE', { file: huge });
      expect(e.message).toContain(String(len));
    }
  });

  it('header not JSON, not an object, not UTF-8', async () => {
    for (const text of ['{"w": {"dtype": "F32",', 'not json', '{"a":1}}', '{"a":"\\ud800"}', '\u0000']) {
      const p = await raw(text);
      await expectError(openModel(p), SafetensorsError, 'E_HEADER_JSON', { file: p });
    }
    for (const text of ['[]', '"x"', '42', 'null', 'true']) {
      const p = await raw(text);
      const e = await expectError(openModel(p), SafetensorsError, 'E_HEADER_NOT_OBJECT', { file: p });
      expect(e.message).toMatch(/must be a JSON object/);
    }
    // A name that is not valid UTF-8 (0xC3 0x28): the whole header is rejected before any name is used.
    const bad = new Uint8Array([...Buffer.from('{"'), 0xc3, 0x28, ...Buffer.from(`":${entry('U8', [1], [0, 1])}}`)]);
    const p = await raw(bad, 1);
    const e = await expectError(openModel(p), SafetensorsError, 'E_HEADER_JSON', { file: p });
    expect(e.message).toMatch(/UTF-8/);
    // Lone surrogates encoded raw (ED A0 80) are not UTF-8 either.
    const sur = new Uint8Array([...Buffer.from('{"'), 0xed, 0xa0, 0x80, ...Buffer.from(`":${entry('U8', [1], [0, 1])}}`)]);
    await expectError(openModel(await raw(sur, 1)), SafetensorsError, 'E_HEADER_JSON');
  });

  it('missing or ill-typed fields name the tensor', async () => {
    const cases = [
      `{"w":{"shape":[1],"data_offsets":[0,4]}}`,
      `{"w":{"dtype":"F32","data_offsets":[0,4]}}`,
      `{"w":{"dtype":"F32","shape":[1]}}`,
      `{"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}}`,
      `{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,-4]}}`,
      `{"w":{"dtype":7,"shape":[1],"data_offsets":[0,4]}}`,
      `{"w":{"dtype":"F32","shape":"1","data_offsets":[0,4]}}`,
      `{"w":[1,2]}`,
      `{"w":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}`,
    ];
    for (const c of cases) {
      const p = await raw(c, 4);
      await expectError(openModel(p), SafetensorsError, 'E_HEADER_FIELD', { file: p, tensor: 'w' });
    }
    const md = await raw(`{"__metadata__":{"format":1}}`);
    await expectError(openModel(md), SafetensorsError, 'E_HEADER_FIELD', { file: md });
  });

  it('unknown dtype', async () => {
    for (const dt of ['F31', 'f32', 'FLOAT', '', 'F32 ']) {
      const p = await raw(`{"layer.0":${entry(dt, [1], [0, 4])}}`, 4);
      const e = await expectError(openModel(p), SafetensorsError, 'E_HEADER_DTYPE', { file: p, tensor: 'layer.0' });
      expect(e.message).toContain(`"${dt}"`);
    }
  });

  it('shape with negative, non-integer or overflowing entries', async () => {
    for (const shape of ['[-1]', '[1.5]', '[1e3]', '[1E0]', '["2"]', '[null]', '[[2]]', '[2,-0]', '[18446744073709551616]', '[true]']) {
      const p = await raw(`{"w":{"dtype":"F32","shape":${shape},"data_offsets":[0,4]}}`, 4);
      await expectError(openModel(p), SafetensorsError, 'E_HEADER_SHAPE', { file: p, tensor: 'w' });
    }
    // Each dimension fits in 64 bits but the product does not.
    const p = await raw(`{"w":{"dtype":"F32","shape":[4294967296,4294967296,2],"data_offsets":[0,4]}}`, 4);
    const e = await expectError(openModel(p), SafetensorsError, 'E_HEADER_SHAPE', { file: p, tensor: 'w' });
    expect(e.message).toMatch(/overflows 64 bits/);
    // A product that fits 64 bits but not shape x dtype: a size error, never a wrapped small number.
    const q = await raw(`{"w":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,0]}}`);
    await expectError(openModel(q), SafetensorsError, 'E_HEADER_SIZE', { file: q, tensor: 'w' });
  });

  it('offsets past the data area, reversed, overlapping; out of order is fine', async () => {
    const past = await raw(`{"a":${entry('U8', [8], [0, 8])}}`, 4);
    await expectError(openModel(past), SafetensorsError, 'E_HEADER_OFFSETS', { file: past, tensor: 'a' });
    const huge = await raw(`{"a":${entry('U8', [1], [18446744073709551615, 18446744073709551616])}}`, 4);
    await expectError(openModel(huge), SafetensorsError, 'E_HEADER_OFFSETS', { file: huge, tensor: 'a' });
    const reversed = await raw(`{"a":${entry('U8', [0], [4, 0])}}`, 4);
    await expectError(openModel(reversed), SafetensorsError, 'E_HEADER_OFFSETS', { file: reversed, tensor: 'a' });
    const overlap = await raw(`{"a":${entry('U8', [4], [0, 4])},"b":${entry('U8', [4], [2, 6])}}`, 6);
    const e = await expectError(openModel(overlap), SafetensorsError, 'E_HEADER_OFFSETS', { file: overlap, tensor: 'b' });
    expect(e.message).toContain('overlap tensor "a"');
    // A zero-size tensor inside another one is still an overlap.
    const inside = await raw(`{"a":${entry('U8', [4], [0, 4])},"z":${entry('U8', [0], [2, 2])}}`, 4);
    await expectError(openModel(inside), SafetensorsError, 'E_HEADER_OFFSETS', { file: inside });
    // Listed in another order than their bytes: valid (the spec does not fix the order).
    const swapped = await raw(`{"b":${entry('U8', [2], [2, 4])},"a":${entry('U8', [2], [0, 2])}}`, new Uint8Array([1, 2, 3, 4]));
    const m = await openModel(swapped);
    expect([...m.tensors.keys()]).toEqual(['b', 'a']);
    expect(m.tensors.get('a')!.offset).toBe(m.tensors.get('b')!.offset - 2);
  });

  it('byte length not matching shape x dtype', async () => {
    for (const [dt, shape, end] of [['F32', [3], 8], ['BF16', [2, 2], 6], ['F64', [], 4], ['F32', [0], 4]] as const) {
      const p = await raw(`{"w":${entry(dt, shape, [0, end])}}`, 8);
      const e = await expectError(openModel(p), SafetensorsError, 'E_HEADER_SIZE', { file: p, tensor: 'w' });
      expect(e.message).toContain(`holds ${end} bytes`);
    }
  });

  it('duplicate tensor names', async () => {
    const p = await raw(`{"w":${entry('U8', [1], [0, 1])},"w":${entry('U8', [1], [1, 2])}}`, 2);
    await expectError(openModel(p), SafetensorsError, 'E_HEADER_DUPLICATE', { file: p, tensor: 'w' });
    // Equal after \u unescaping is still a duplicate.
    const q = await raw(`{"w":${entry('U8', [1], [0, 1])},"\\u0077":${entry('U8', [1], [1, 2])}}`, 2);
    await expectError(openModel(q), SafetensorsError, 'E_HEADER_DUPLICATE', { file: q, tensor: 'w' });
  });

  it('valid odd names: non-ASCII UTF-8, escapes, control characters escaped', async () => {
    const names = ['poids.é', '权重', 'emoji.😀', 'tab\tname', 'quote"name', ''];
    const p = await writeSafetensors(fresh(), names.map((name, i) => f32(name, [2], i)));
    const m = await openModel(p.path);
    expect([...m.tensors.keys()]).toEqual(names);
  });

  it('zero-size tensors are valid, and skipped by recover with a reason', async () => {
    const specs = (seed: number): TensorSpec[] => [
      { name: 'empty', dtype: 'F32', shape: [0, 16] }, { name: 'scalar', dtype: 'F32', shape: [], data: [seed] },
      f32('w', [16, 16], seed), f32('v', [8, 8], seed + 10),
    ];
    await mkdir(join(dir, 'zero'));
    const a = await writeSafetensors(join(dir, 'zero', 'a.safetensors'), specs(1));
    await writeSafetensors(join(dir, 'zero', 'b.safetensors'), specs(2));
    const m = await openModel(a.path);
    expect(m.tensors.get('empty')).toMatchObject({ numel: 0, byteLength: 0, shape: [0, 16] });
    const r = await recover([join(dir, 'zero')], { backend: 'cpu', bootstrap: 0 });
    expect(r.models).toHaveLength(2);
    expect(r.diagnostics.tensorsSkipped).toContainEqual({ name: 'empty', reason: 'empty tensor' });
    expect(r.diagnostics.tensorsUsed).toBe(3);
  });

  it('a broken file among good ones is skipped and named; strict fails recover() and the CLI with its name', async () => {
    const d = join(dir, 'one-bad');
    await mkdir(d);
    for (let k = 0; k < 3; k++) await writeSafetensors(join(d, `m${k}.safetensors`), [f32('w', [8, 8], k)]);
    const bad = join(d, 'm3.safetensors');
    await writeRawSafetensors(bad, `{"w":${entry('F32', [8, 8], [0, 256])}}`, { data: 100 });
    const r = await recover([d], { backend: 'cpu' });
    expect(r.models.map((m) => m.id)).toEqual(['m0', 'm1', 'm2']);
    expect(r.diagnostics.skippedModels).toEqual([{ path: bad, code: 'E_HEADER_OFFSETS', message: expect.stringContaining(`invalid safetensors file ${bad} (tensor "w")`) }]);
    await expectError(recover([d], { backend: 'cpu', strict: true }), SafetensorsError, 'E_HEADER_OFFSETS', { file: bad, tensor: 'w' });
    // the CLI: a partial result is exit 3, the report on stdout, the skipped model named on stderr
    const partial = await cli(['recover', d]);
    expect(partial.code).toBe(3);
    expect(JSON.parse(partial.stdout).models).toHaveLength(3);
    expect(JSON.parse(partial.stdout).diagnostics.skippedModels[0].path).toBe(bad);
    expect(partial.stderr).toMatch(new RegExp(`^mother: warning: skipped model ${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .*\\[E_HEADER_OFFSETS\\]\n$`));
    const { code, stderr, stdout } = await cli(['recover', d, '--strict']);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr.split('\n')).toHaveLength(2); // one line + the final newline
    expect(stderr).toMatch(/^mother: .*m3\.safetensors.*\[E_HEADER_OFFSETS\]\n$/);
  });
});

describe('mutated files through the N-API path', () => {
  it('500 random byte mutations of a valid file: a header or a typed error, never anything else', async () => {
    const base = (await writeSafetensors(fresh(), [
      { name: 'a.weight', dtype: 'F16', shape: [3, 5], data: randomValues(15, 1) },
      { name: 'b', dtype: 'BF16', shape: [4], data: randomValues(4, 2) },
      { name: 'c', dtype: 'I8', shape: [2, 2], data: [1, -2, 3, -4] },
    ], { metadata: { format: 'pt' } }));
    const bytes = new Uint8Array(readFileSync(base.path));
    const rand = mulberry32(99);
    const codes = new Map<string, number>();
    const p = fresh();
    for (let i = 0; i < 500; i++) {
      const m = Uint8Array.from(bytes);
      const edits = 1 + Math.floor(rand() * 4);
      for (let e = 0; e < edits; e++) {
        const at = Math.floor(rand() * Math.min(m.length, 8 + base.headerLength));
        m[at] = rand() < 0.5 ? Math.floor(rand() * 256) : '{}[]":,0123456789-.eE"\\'.charCodeAt(Math.floor(rand() * 24));
      }
      const cut = rand() < 0.2 ? Math.floor(rand() * m.length) : m.length;
      await writeFile(p, m.subarray(0, cut));
      const r = await openModel(p).then((model) => { model.dispose(); return 'ok'; }, (err: unknown) => err);
      if (r === 'ok') { codes.set('ok', (codes.get('ok') ?? 0) + 1); continue; }
      const err = r as MotherError;
      expect(err, String(err)).toBeInstanceOf(SafetensorsError);
      expect(err.code).toMatch(/^E_HEADER_[A-Z_]+$/);
      expect(err.file).toBe(p);
      expect(err.message).toContain(p);
      codes.set(err.code, (codes.get(err.code) ?? 0) + 1);
    }
    // The mutations reach many different checks, not one early rejection.
    expect(codes.size).toBeGreaterThanOrEqual(6);
  });
});

describe('hostile sharded models', () => {
  const tensors = [f32('a', [4, 4], 1), f32('b', [4], 2), f32('c', [2, 8], 3)];

  it('index naming a missing shard', async () => {
    const d = join(dir, 'shard-missing');
    await writeSharded(d, tensors, [['a', 'b'], ['c']], (ix) => { ix.weight_map.c = 'model-00009-of-00009.safetensors'; });
    await expectError(openModel(d), ShardError, 'E_SHARD_MISSING', { file: join(d, 'model-00009-of-00009.safetensors') });
  });

  it('a tensor listed in two shards', async () => {
    const d = join(dir, 'shard-dup');
    const s = await writeSharded(d, tensors, [['a', 'b'], ['c']]);
    // Shard 2 holds c and also a copy of a.
    await writeSafetensors(s.shards[1]!.path, [tensors[2]!, tensors[0]!]);
    const e = await expectError(openModel(d), ShardError, 'E_SHARD_DUPLICATE', { tensor: 'a' });
    expect(e.file).toBe(s.shards[1]!.path);
    expect(e.message).toContain(`two shards of ${d}: model-00001-of-00002.safetensors and model-00002-of-00002.safetensors`);
  });

  it('a shard holding a tensor the index does not list', async () => {
    const d = join(dir, 'shard-unlisted');
    const s = await writeSharded(d, tensors, [['a', 'b'], ['c']], (ix) => { delete ix.weight_map.b; });
    await expectError(openModel(d), ShardError, 'E_SHARD_UNLISTED', { file: s.shards[0]!.path, tensor: 'b' });
  });

  it('an index that is not JSON or escapes the folder', async () => {
    const d = join(dir, 'shard-index');
    await writeSharded(d, tensors, [['a', 'b', 'c']]);
    const ix = join(d, 'model.safetensors.index.json');
    await writeFile(ix, '{"weight_map": {"a": "../../etc/passwd"}}');
    await expectError(openModel(d), ShardError, 'E_SHARD_INDEX', { file: ix, tensor: 'a' });
    await writeFile(ix, '{"weight_map":');
    await expectError(openModel(d), ShardError, 'E_SHARD_INDEX', { file: ix });
  });
});

describe('hostile folders', () => {
  it('a folder without models', async () => {
    const d = join(dir, 'nothing');
    await mkdir(join(d, 'sub'), { recursive: true });
    await writeFile(join(d, 'README.md'), 'hi');
    await expectError(recover([d]), InputError, 'E_INPUT_NO_MODELS', { file: d });
    await expectError(recover([join(dir, 'no-such-dir')]), InputError, 'E_INPUT_NOT_FOUND', { file: join(dir, 'no-such-dir') });
  });

  it('an unreadable file', async () => {
    const d = join(dir, 'unreadable');
    await mkdir(d);
    const p = (await writeSafetensors(join(d, 'locked.safetensors'), [f32('w', [4], 1)])).path;
    await chmod(p, 0o000);
    if (process.getuid?.() !== 0) {
      const e = await expectError(openModel(p), ModelIOError, 'E_IO_OPEN', { file: p });
      expect(e.message).toMatch(/Permission denied/);
      return;
    }
    // Root reads anything: run the native open as user "nobody" in a child process instead.
    await chmod(dir, 0o755);
    await chmod(d, 0o755);
    const addon = resolve(process.env.MOTHER_CPU_ADDON ?? 'build/Release/mother_cpu.node');
    const script = `require(${JSON.stringify(addon)}).readHeader(${JSON.stringify(p)})` +
      `.then(() => console.log('OPENED'), (e) => console.log(JSON.stringify({ code: e.code, file: e.file, message: e.message })))`;
    const r = spawnSync(process.execPath, ['-e', script], { uid: 65534, gid: 65534, encoding: 'utf8', env: { ...process.env, LD_PRELOAD: process.env.LD_PRELOAD ?? '' } });
    if (r.error || r.status !== 0 || !r.stdout.trim()) {
      // eslint-disable-next-line no-console
      console.warn(`skipped: cannot run a child as uid 65534 (${r.error?.message ?? r.stderr.slice(0, 200)})`);
      return;
    }
    const out = JSON.parse(r.stdout.trim()) as { code: string; file: string; message: string };
    expect(out).toMatchObject({ code: 'E_IO_OPEN', file: p });
    expect(out.message).toContain(p);
    expect(out.message).toMatch(/Permission denied/);
  });

  it('symlink loops: skipped among the children, an error when given directly', async () => {
    const d = join(dir, 'loops');
    await mkdir(d);
    await writeSafetensors(join(d, 'good.safetensors'), [f32('w', [8, 8], 1)]);
    await writeSafetensors(join(d, 'good2.safetensors'), [f32('w', [8, 8], 2)]);
    await symlink(join(d, 'x.safetensors'), join(d, 'y.safetensors'));
    await symlink(join(d, 'y.safetensors'), join(d, 'x.safetensors'));
    await symlink('.', join(d, 'self')); // a folder link back to the collection itself
    await symlink('..', join(d, 'up'));
    const refs = await discoverModels([d]);
    expect(refs.map((r) => r.id)).toEqual(['good', 'good2']);
    await expectError(openModel(join(d, 'x.safetensors')), InputError, 'E_INPUT_UNREADABLE', { file: join(d, 'x.safetensors') });
    await expectError(recover([join(d, 'x.safetensors')]), InputError, 'E_INPUT_UNREADABLE');
    const r = await recover([d], { backend: 'cpu', bootstrap: 0 });
    expect(r.models.map((m) => m.id)).toEqual(['good', 'good2']);
  });

  it('a FIFO or a folder named like a model file is not read', async () => {
    const d = join(dir, 'specials');
    await mkdir(join(d, 'dir.safetensors'), { recursive: true });
    await writeSafetensors(join(d, 'a.safetensors'), [f32('w', [8, 8], 1)]);
    await writeSafetensors(join(d, 'b.safetensors'), [f32('w', [8, 8], 2)]);
    expect(spawnSync('mkfifo', [join(d, 'pipe.safetensors')]).status).toBe(0);
    // Given directly, a FIFO must be refused, not block the process waiting for a writer.
    await expectError(openModel(join(d, 'pipe.safetensors')), InputError, 'E_INPUT_UNREADABLE', { file: join(d, 'pipe.safetensors') });
    const r = await recover([d], { backend: 'cpu', bootstrap: 0 });
    expect(r.models.map((m) => m.id)).toEqual(['a', 'b']);
    // The native reader itself (reached when a path is swapped for a FIFO after the stat) must
    // refuse it at once: a blocking open would hang a libuv thread until a writer came.
    const fifo = join(d, 'pipe.safetensors');
    const timeout = sleep(5000).then(() => 'HUNG' as const);
    const got = await Promise.race([readHeader(fifo).then(() => 'OPENED', (e: MotherError) => e), timeout]);
    if (got === 'HUNG') {
      const w = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK); // release the blocked reader
      closeSync(w);
    }
    expect(got).toBeInstanceOf(ModelIOError);
    expect((got as MotherError).code).toBe('E_IO_OPEN');
    expect((got as MotherError).message).toContain(`${fifo}: not a regular file`);
  });

  it('a model of another architecture among others is a separate family, not an error', async () => {
    const d = join(dir, 'mixed-arch');
    await mkdir(d);
    for (let k = 0; k < 3; k++) await writeSafetensors(join(d, `vit${k}.safetensors`), [f32('blocks.0.w', [16, 16], k), f32('head', [4, 16], 10 + k)]);
    await writeSafetensors(join(d, 'resnet.safetensors'), [f32('conv1.weight', [8, 3, 3, 3], 5), f32('fc', [10, 8], 6)]);
    const r = await recover([d], { backend: 'cpu', bootstrap: 0 });
    expect(r.models.map((m) => m.id)).toEqual(['resnet', 'vit0', 'vit1', 'vit2']);
    const resnet = r.models.find((m) => m.id === 'resnet')!;
    expect(resnet.parent).toBeNull();
    const fam = r.families[resnet.family]!;
    expect(fam.members).toEqual(['resnet']);
    const vitFamilies = new Set(r.models.filter((m) => m.id.startsWith('vit')).map((m) => m.family));
    expect(vitFamilies.has(resnet.family)).toBe(false);
    expect(new Set(r.families.map((f) => f.architecture)).size).toBe(2);
  });

  it('models that share only some tensors are compared on the shared ones', async () => {
    const d = join(dir, 'partial');
    await mkdir(d);
    const common = (k: number) => [f32('enc.w', [32, 32], 100), f32('enc.b', [32], 200)].map((t) => ({ ...t, data: randomValues(t.data!.length, 1000, { scale: 1 }).map((v, i) => v + 0.01 * k * Math.sin(i + k)) }));
    await writeSafetensors(join(d, 'a.safetensors'), [...common(0), f32('head.w', [10, 32], 1)]);
    await writeSafetensors(join(d, 'b.safetensors'), [...common(1), f32('head.w', [3, 32], 2)]);
    await writeSafetensors(join(d, 'c.safetensors'), [...common(2), f32('extra', [4], 3)]);
    const r = await recover([d], { backend: 'cpu', bootstrap: 0 });
    expect(r.diagnostics.tensorsUsed).toBe(2);
    const skipped = Object.fromEntries(r.diagnostics.tensorsSkipped.map((s) => [s.name, s.reason]));
    expect(skipped['head.w']).toMatch(/missing from 1 of 3|shape differs/);
    expect(skipped.extra).toMatch(/missing from 2 of 3/);
    expect(new Set(r.models.map((m) => m.family)).size).toBe(1);
  });
});

/** Writes a synthetic fine-tuning tree (graph-synth) as F32 files; returns the folder and truth. */
async function writeTree(name: string, parents: (number | null)[], seed: number, edit?: (k: number, t: number, w: Float64Array) => void) {
  const d = join(dir, name);
  await mkdir(d, { recursive: true });
  const models = synthWeights({ parents, seed });
  for (const [k, tensors] of models.entries()) {
    await writeSafetensors(join(d, `m${k}.safetensors`), tensors.map((w, t) => {
      const data = Float64Array.from(w);
      edit?.(k, t, data);
      return { name: `t${t}`, dtype: 'F32' as const, shape: SHAPES[t]![0] === 1 ? [SHAPES[t]![1]] : SHAPES[t]!, data };
    }));
  }
  return d;
}

describe('hostile values', () => {
  const parents = [null, 0, 0, 1, 1, 2];
  const parentIds = (r: Awaited<ReturnType<typeof recover>>) => r.models.map((m) => m.parent);
  let clean: (string | null)[];

  beforeAll(async () => {
    clean = parentIds(await recover([await writeTree('clean', parents, 7)], { backend: 'cpu', bootstrap: 0 }));
  });

  it('the clean tree is recovered (baseline for the cases below)', () => {
    expect(clean).toEqual([null, 'm0', 'm0', 'm1', 'm1', 'm2']);
  });

  it('NaN / Inf weights in one model: the tensor is left out with a warning, the tree is unchanged', async () => {
    const d = await writeTree('nan', parents, 7, (k, t, w) => {
      if (k === 3 && t === 0) { w[5] = NaN; w[6] = Infinity; }
      if (k === 4 && t === 2) w[0] = -Infinity;
    });
    const r = await recover([d], { backend: 'cpu', bootstrap: 0 });
    expect(parentIds(r)).toEqual(clean);
    const w = r.diagnostics.warnings.join('\n');
    expect(w).toMatch(/2 tensor\(s\) with non-finite statistics left out \(t0, t2\)/);
    for (const m of r.models) expect(Number.isFinite(m.confidence)).toBe(true);
  });

  it('every tensor non-finite in some model: a clear error, not a silent tree', async () => {
    const d = await writeTree('all-nan', parents, 7, (k, _t, w) => { if (k === 2) w[0] = NaN; });
    const e = await recover([d], { backend: 'cpu', bootstrap: 0 }).then(() => null, (x: unknown) => x as MotherError);
    expect(e).toBeInstanceOf(GraphError);
    expect(e!.code).toBe('E_GRAPH_INPUT');
    expect(e!.message).toMatch(/family \d \(m2\): no tensor has finite statistics/);
  });

  it('constant tensors (kurtosis undefined) and denormals give defined results', async () => {
    const d = await writeTree('const', parents, 7, (k, t, w) => {
      if (t === 4) w.fill(1); // a LayerNorm weight left at 1 in every model: no spread, no distance
      if (t === 5) for (let i = 0; i < w.length; i++) w[i] = w[i]! * 1e-40; // float32 subnormals
    });
    const r = await recover([d], { backend: 'cpu', bootstrap: 0 });
    expect(parentIds(r)).toEqual(clean);
    for (const m of r.models) {
      expect(Number.isFinite(m.kurtosis)).toBe(true);
      expect(m.confidence >= 0 && m.confidence <= 1).toBe(true);
    }
  });

  it('identical models: a warning that their order is arbitrary', async () => {
    const d = join(dir, 'twins');
    await mkdir(d);
    for (const id of ['a', 'b']) await writeSafetensors(join(d, `${id}.safetensors`), [f32('w', [16, 16], 3)]);
    const r = await recover([d], { backend: 'cpu', bootstrap: 0 });
    expect(r.diagnostics.warnings.join('\n')).toMatch(/identical on the compared tensors/);
  });
});

describe('files changing while being read', () => {
  it('truncated after the headers were read: E_IO_TRUNCATED naming file and tensor', async () => {
    const d = await writeTree('trunc', [null, 0, 0], 3);
    const victim = join(d, 'm1.safetensors');
    const size = statSync(victim).size;
    const e = await expectError(
      recover([d], {
        backend: 'cpu', bootstrap: 0, strict: true,
        onProgress: (ev) => { if (ev.stage === 'headers' && ev.done === ev.total) spawnSync('truncate', ['-s', String(size - 100), victim]); },
      }),
      ModelIOError, 'E_IO_TRUNCATED', { file: victim },
    );
    expect(e.tensor).toMatch(/^t\d$/);
    expect(e.message).toContain(e.tensor!);
    // without strict: the model is left out, named with the same error, and the others recovered
    await writeTree('trunc', [null, 0, 0], 3);
    const r = await recover([d], {
      backend: 'cpu', bootstrap: 0,
      onProgress: (ev) => { if (ev.stage === 'headers' && ev.done === ev.total) spawnSync('truncate', ['-s', String(size - 100), victim]); },
    });
    expect(r.models.map((m) => m.id)).toEqual(['m0', 'm2']);
    expect(r.diagnostics.skippedModels).toEqual([{ path: victim, code: 'E_IO_TRUNCATED', message: expect.stringContaining(victim) }]);
  });

  it('replaced by rename after the headers were read: the new file is checked, never trusted', async () => {
    const d = await writeTree('replace', [null, 0, 0], 3);
    const victim = join(d, 'm2.safetensors');
    const other = join(dir, 'replacement.safetensors');
    await writeSafetensors(other, [f32('t0', [4], 1)]);
    const e = await recover([d], {
      backend: 'cpu', bootstrap: 0, strict: true,
      onProgress: (ev) => { if (ev.stage === 'headers' && ev.done === ev.total) spawnSync('mv', [other, victim]); },
    }).then(() => null, (x: unknown) => x as MotherError);
    expect(e).toBeInstanceOf(ModelIOError);
    expect(e!.code).toBe('E_IO_TRUNCATED');
    expect(e!.file).toBe(victim);
  });

  it('truncated in the middle of the statistics pass: E_IO_TRUNCATED, no crash (mapped and pread)', async () => {
    // MOTHER_MMAP=1: through the mapping; unset: a job with pairwise sums reads with pread.
    for (const mmap of ['1', undefined]) {
      const d = join(dir, `mid-read-${mmap ?? 'default'}`);
      await mkdir(d);
      // 3 models x 4 MiB read 16 elements at a time by one thread: tens of thousands of small reads,
      // so progress events arrive while most of the bytes are still to be read.
      const files: string[] = [];
      for (let k = 0; k < 3; k++) {
        const w = await writeSafetensors(join(d, `m${k}.safetensors`), [{ name: 'big', dtype: 'F32', shape: [1024, 1024], data: new Uint8Array(1024 * 1024 * 4).fill(k + 1) }]);
        files.push(w.path);
      }
      const models = await Promise.all(files.map((f) => openModel(f)));
      let truncated = false;
      const job = {
        tensors: [{ name: 'big', rows: 1024, cols: 1024, sources: models.map((m) => ({ file: m.files[0]!, offset: m.tensors.get('big')!.offset, dtype: 'F32' as const })) }],
        models: 3, kurtosis: true, sumsq: true, sumabs: false, maxabs: false, dot: false, rank: false, perTensor: false, chunkBytes: 3 * 4 * 16,
      };
      if (mmap) process.env.MOTHER_MMAP = mmap;
      const e = await runJob(job, {
        backend: 'cpu', threads: 1,
        onProgress: (done, total) => {
          if (!truncated && done > 0 && done < total / 2) { truncated = true; spawnSync('truncate', ['-s', '4096', files[2]!]); }
        },
      }).then(() => null, (x: unknown) => x as MotherError).finally(() => { delete process.env.MOTHER_MMAP; });
      expect(truncated).toBe(true);
      expect(e).toBeInstanceOf(ModelIOError);
      expect(e!.code).toBe('E_IO_TRUNCATED');
      expect(e!.file).toBe(files[2]);
      expect(e!.tensor).toBe('big');
      expect(e!.message).toMatch(/truncated or replaced while being read/);
      // Mapped: the access past the new end faulted and the guard caught it; pread: a short read.
      expect(e!.message).toMatch(mmap ? /ends at byte 4096 but byte \d+ was needed/ : /ends at byte \d+ but \d+ bytes were expected/);
    }
  });
});

describe('files changing while mapped (4 threads)', () => {
  it('truncated to zero during the statistics pass: recover() leaves it out, the others equal a run without it', async () => {
    // 6 models x 4 tensors of 512 x 1024 F32 (8 MiB each): the statistics pass runs long enough
    // for its first progress event to arrive while the 4 threads are still reading.
    const a = join(dir, 'mapped-zero'), b = join(dir, 'mapped-zero-others');
    await mkdir(a);
    await mkdir(b);
    const rand = mulberry32(77);
    const root = Array.from({ length: 4 }, () => Float64Array.from({ length: 512 * 1024 }, () => (rand() - 0.5) * 0.1));
    const parents = [null, 0, 0, 1, 1, 2];
    const weights: Float64Array[][] = [];
    for (const [k, p] of parents.entries()) {
      const from = p === null ? root : weights[p]!;
      weights.push(from.map((w) => w.map((x) => x + (p === null ? 0 : (rand() - 0.5) * 0.01))));
      const tensors = weights[k]!.map((data, t) => ({ name: `t${t}`, dtype: 'F32' as const, shape: [512, 1024], data }));
      await writeSafetensors(join(a, `m${k}.safetensors`), tensors);
      if (k !== 3) await writeSafetensors(join(b, `m${k}.safetensors`), tensors);
    }
    const victim = join(a, 'm3.safetensors');
    const expected = await recover([b], { backend: 'cpu', bootstrap: 0, threads: 4 });
    let cut = false;
    process.env.MOTHER_MMAP = '1';  // through the mapping (recover()'s pairwise jobs read with pread by default)
    const r = await recover([a], {
      backend: 'cpu', bootstrap: 0, threads: 4,
      onProgress: (ev) => {
        if (!cut && ev.stage === 'statistics' && ev.done < ev.total) { cut = true; truncateSync(victim, 0); }
      },
    }).finally(() => { delete process.env.MOTHER_MMAP; });
    expect(cut).toBe(true);
    expect(r.diagnostics.skippedModels).toEqual([{ path: victim, code: 'E_IO_TRUNCATED', message: expect.stringContaining(victim) }]);
    const norm = (x: unknown, d: string) => JSON.parse(JSON.stringify(x).replaceAll(d, '<dir>'));
    expect(norm(r.models, a)).toEqual(norm(expected.models, b));
    expect(norm(r.families, a)).toEqual(norm(expected.families, b));
  });
});

interface Captured { text: string; isTTY: boolean; write(s: string): boolean }
const stream = (): Captured => ({ text: '', isTTY: false, write(s: string) { this.text += s; return true; } });
async function cli(argv: string[]) {
  const stdout = stream(), stderr = stream();
  const ctx: CliContext = { stdout, stderr, env: {}, cwd: dir };
  const code = await runCli(argv, ctx);
  return { code, stdout: stdout.text, stderr: stderr.text };
}

describe('CLI on hostile input', () => {
  it('exit 2 and one line on stderr for each kind of bad input', async () => {
    const bad = [
      await raw('not json'), await raw('{}', 0, 2n ** 62n), join(dir, 'missing-model'),
      await raw(`{"w":${entry('F32', [2], [0, 4])}}`, 4),
    ];
    for (const p of bad) {
      const r = await cli(['recover', p]);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr.endsWith('\n') && r.stderr.indexOf('\n') === r.stderr.length - 1).toBe(true);
      expect(r.stderr).toContain(p);
      expect(r.stderr).toMatch(/\[E_[A-Z_]+\]/);
    }
  });

  it('--out is written atomically, left untouched on failure, never over an input', async () => {
    const d = await writeTree('cli-out', [null, 0], 5);
    const out = join(dir, 'report.json');
    await writeFile(out, 'OLD');
    const bad = await raw('[]');
    expect((await cli(['recover', bad, '--out', out])).code).toBe(2);
    expect(await readFile(out, 'utf8')).toBe('OLD');
    const ok = await cli(['recover', d, '--out', out, '--format', 'json']);
    expect(ok.code).toBe(0);
    const report = JSON.parse(await readFile(out, 'utf8'));
    expect(report.models.map((m: { id: string }) => m.id)).toEqual(['m0', 'm1']);
    expect((await readdir(dir)).filter((f) => f.includes('report.json') && f.endsWith('.tmp'))).toEqual([]);
    const over = await cli(['recover', d, '--out', join(d, 'm0.safetensors')]);
    expect(over.code).toBe(2);
  });

  it('inputs are only ever opened read-only (fd flags sampled during a run)', async () => {
    const d = join(dir, 'ro');
    await mkdir(d);
    for (let k = 0; k < 3; k++)
      await writeSafetensors(join(d, `m${k}.safetensors`), [f32('w', [1024, 1024], k), f32('v', [512, 512], 10 + k)]);
    const real = resolve(d);
    const seen = new Map<string, number>();
    const sample = () => {
      for (const fd of readdirSync('/proc/self/fd')) {
        let target: string;
        try { target = readlinkSync(`/proc/self/fd/${fd}`); } catch { continue; }
        if (!target.startsWith(real)) continue;
        let flags: number;
        try { flags = parseInt(/flags:\s*([0-7]+)/.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))![1]!, 8); } catch { continue; }
        seen.set(`${target}#${fd}`, flags);
      }
    };
    const timer = setInterval(sample, 1);
    try {
      for (let i = 0; i < 3; i++)
        await recover([d], { backend: 'cpu', threads: 1, bootstrap: 0, onProgress: () => sample() });
    } finally {
      clearInterval(timer);
    }
    expect(seen.size).toBeGreaterThan(0);
    for (const [what, flags] of seen) {
      expect({ what, access: flags & 3 }).toEqual({ what, access: 0 }); // O_RDONLY
      expect(flags & 0o2000000).toBeTruthy(); // O_CLOEXEC: never inherited by a child process
    }
    // The data is unchanged and no file was created in the input folder.
    expect((await readdir(d)).sort()).toEqual(['m0.safetensors', 'm1.safetensors', 'm2.safetensors']);
  });
});

describe('hostile stats jobs (the native contract)', () => {
  it('sources outside the file are refused before any read', async () => {
    const w = await writeSafetensors(fresh(), [f32('w', [4, 4], 1)]);
    const job = (offset: number, rows = 4, cols = 4) => ({
      tensors: [{ name: 'w', rows, cols, sources: [{ file: w.path, offset, dtype: 'F32' as const }, { file: w.path, offset: w.offsets.w!, dtype: 'F32' as const }] }],
      models: 2, kurtosis: true, sumsq: true, sumabs: false, maxabs: false, dot: false, rank: false, perTensor: false,
    });
    await expectError(runJob(job(w.size - 8), { backend: 'cpu' }), ModelIOError, 'E_IO_TRUNCATED', { file: w.path, tensor: 'w' });
    // rows x cols far past the file: refused as a bad job or as bytes past the end, never read.
    await expect(runJob(job(w.offsets.w!, 2 ** 26, 2 ** 26), { backend: 'cpu' }))
      .rejects.toMatchObject({ code: expect.stringMatching(/^E_(JOB_RANGE|IO_TRUNCATED)$/) });
    await expect(runJob(job(w.offsets.w!, 2 ** 40, 2 ** 40), { backend: 'cpu' }))
      .rejects.toMatchObject({ code: expect.stringMatching(/^E_(JOB_RANGE|IO_TRUNCATED)$/) });
  });
});

describe('kernels on empty buffers (under tools/asan-build.sh: no UB)', () => {
  it('convert, moments, pairwise of zero elements are defined for every dtype and ISA', async () => {
    const { cpuAddon } = await import('../src/native.js');
    const k = cpuAddon().kernels;
    for (const dt of ['F64', 'F32', 'F16', 'BF16'] as const) {
      expect(k.convert(new Uint8Array(0), dt, 'f32')).toEqual(new Float32Array(0));
      expect(k.convert(new Uint8Array(0), dt, 'f64')).toEqual(new Float64Array(0));
      for (const isa of ['scalar', 'sse2', 'avx2', 'avx512']) {
        const m = k.moments(new Uint8Array(0), dt, isa);
        expect(m).toMatchObject({ n: 0, nonfinite: 0 });
        expect(m.kurtosis).toBeNaN();
        expect([...k.pairwise([new Uint8Array(0), new Uint8Array(0)], dt, isa).sumsq]).toEqual([0, 0, 0, 0]);
      }
    }
  });
});
