// Safetensors header validation (native readHeader / readHeaderSync): every violation -> its code,
// naming the file (and tensor); valid edge cases parse; the zoo files match a manual JS parse.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { cpuAddon } from '../src/native.js';
import { readHeader } from '../src/io/model.js';
import { SafetensorsError, ModelIOError } from '../src/errors.js';
import {
  buildRawSafetensors,
  makeTempDir,
  removeTempDir,
  writeRawSafetensors,
  writeSafetensors,
  type DType,
} from './helpers/safetensors.js';
import { writeFile } from 'node:fs/promises';
import { skipWithoutZoo, ZOO } from './helpers/zoo.js';

let dir: string;
beforeAll(async () => {
  dir = await makeTempDir('mother-io-header-');
});
afterAll(async () => {
  await removeTempDir(dir);
});

let n = 0;
async function raw(header: string | Uint8Array, opts: Parameters<typeof writeRawSafetensors>[2] = {}): Promise<string> {
  return writeRawSafetensors(join(dir, `raw${n++}.safetensors`), header, opts);
}

async function expectCode(path: string, code: string, tensor?: string): Promise<void> {
  const err = await cpuAddon().readHeader(path).then(
    () => null,
    (e: unknown) => e as { code: string; file: string; tensor?: string; message: string; name: string },
  );
  expect(err, `expected ${code} for ${path}`).not.toBeNull();
  expect(err!.name).toBe('Error');
  expect(err!.code).toBe(code);
  expect(err!.file).toBe(path);
  expect(err!.message).toContain(path);
  if (tensor !== undefined) expect(err!.tensor).toBe(tensor);
  // The sync variant agrees.
  expect(() => cpuAddon().readHeaderSync(path)).toThrowError(expect.objectContaining({ code }) as unknown as Error);
}

const entry = (dtype: string, shape: unknown, offsets: unknown) => ({ dtype, shape, data_offsets: offsets });

describe('readHeader: violations', () => {
  it('empty and short files', async () => {
    const p0 = join(dir, 'empty.safetensors');
    await writeFile(p0, new Uint8Array(0));
    await expectCode(p0, 'E_HEADER_EMPTY');
    const p1 = join(dir, 'short.safetensors');
    await writeFile(p1, new Uint8Array([1, 0, 0]));
    await expectCode(p1, 'E_HEADER_SHORT');
  });

  it('length too large / past EOF', async () => {
    // the reference's MAX_HEADER_SIZE is 100_000_000 bytes (not 100 MiB)
    await expectCode(await raw('{}', { lengthOverride: 100_000_001 }), 'E_HEADER_TOO_LARGE');
    await expectCode(await raw('{}', { lengthOverride: 100_000_000 }), 'E_HEADER_PAST_EOF');
    await expectCode(await raw('{}', { lengthOverride: 2n ** 64n - 1n }), 'E_HEADER_TOO_LARGE');
    await expectCode(await raw('{}', { lengthOverride: 3 }), 'E_HEADER_PAST_EOF');
    // 8 + N == file size is fine (no data area)
    expect((await cpuAddon().readHeader(await raw('{}'))).tensors).toEqual([]);
  });

  it('bad JSON, bad UTF-8, deep nesting', async () => {
    for (const h of ['', '{', '{"a":}', '{"a":1,}', "{'a':1}", '{"a":1} x', '{"a":"\u0001"}', '{"a":"\\x"}', '{"a":01}', '{"a":"\\ud800"}', '{"a":"\\udc00\\ud800"}', '{"a":tru}'])
      await expectCode(await raw(h), 'E_HEADER_JSON');
    await expectCode(await raw(new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])), 'E_HEADER_JSON'); // {"\xff":1}
    await expectCode(await raw(new Uint8Array([0x7b, 0x22, 0xc0, 0xaf, 0x22, 0x3a, 0x31, 0x7d])), 'E_HEADER_JSON'); // overlong '/'
    await expectCode(await raw(new Uint8Array([0x7b, 0x22, 0xed, 0xa0, 0x80, 0x22, 0x3a, 0x31, 0x7d])), 'E_HEADER_JSON'); // UTF-8 surrogate
    await expectCode(await raw('{"a":' + '['.repeat(100000) + ']'.repeat(100000) + '}'), 'E_HEADER_JSON');
  });

  it('not an object', async () => {
    for (const h of ['[]', '1', '"x"', 'null']) await expectCode(await raw(h), 'E_HEADER_NOT_OBJECT');
  });

  it('fields', async () => {
    const cases: unknown[] = [
      { w: 1 },
      { w: { shape: [1], data_offsets: [0, 4] } },
      { w: { dtype: 4, shape: [1], data_offsets: [0, 4] } },
      { w: { dtype: 'F32', data_offsets: [0, 4] } },
      { w: { dtype: 'F32', shape: 1, data_offsets: [0, 4] } },
      { w: { dtype: 'F32', shape: [1] } },
      { w: { dtype: 'F32', shape: [1], data_offsets: [0] } },
      { w: { dtype: 'F32', shape: [1], data_offsets: [0, '4'] } },
      { w: { dtype: 'F32', shape: [1], data_offsets: [-1, 4] } },
      { w: { dtype: 'F32', shape: [1], data_offsets: [0, 4.5] } },
    ];
    for (const c of cases) await expectCode(await raw(JSON.stringify(c), { data: 8 }), 'E_HEADER_FIELD', 'w');
    await expectCode(await raw('{"w":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}', { data: 4 }), 'E_HEADER_FIELD', 'w');
    await expectCode(await raw(JSON.stringify({ __metadata__: { a: 1 } })), 'E_HEADER_FIELD');
    await expectCode(await raw(JSON.stringify({ __metadata__: ['a'] })), 'E_HEADER_FIELD');
  });

  it('dtype, shape', async () => {
    await expectCode(await raw(JSON.stringify({ w: entry('F128', [1], [0, 16]) }), { data: 16 }), 'E_HEADER_DTYPE', 'w');
    await expectCode(await raw(JSON.stringify({ w: entry('f32', [1], [0, 4]) }), { data: 4 }), 'E_HEADER_DTYPE', 'w');
    for (const shape of ['[-1]', '[1.5]', '[1e2]', '["1"]', '[null]', '[18446744073709551616]', '[4294967296,4294967296]'])
      await expectCode(await raw(`{"w":{"dtype":"F32","shape":${shape},"data_offsets":[0,4]}}`, { data: 4 }), 'E_HEADER_SHAPE', 'w');
  });

  it('offsets and sizes', async () => {
    await expectCode(await raw(JSON.stringify({ w: entry('F32', [1], [4, 0]) }), { data: 4 }), 'E_HEADER_OFFSETS', 'w');
    await expectCode(await raw(JSON.stringify({ w: entry('F32', [2], [0, 8]) }), { data: 4 }), 'E_HEADER_OFFSETS', 'w');
    await expectCode(await raw('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551616]}}', { data: 4 }), 'E_HEADER_OFFSETS', 'w');
    // overlap, whichever order the JSON lists them in
    await expectCode(
      await raw(JSON.stringify({ a: entry('F32', [2], [0, 8]), b: entry('F32', [2], [4, 12]) }), { data: 12 }),
      'E_HEADER_OFFSETS', 'b');
    await expectCode(
      await raw(JSON.stringify({ b: entry('F32', [2], [4, 12]), a: entry('F32', [2], [0, 8]) }), { data: 12 }),
      'E_HEADER_OFFSETS', 'b');
    // zero-size tensor strictly inside another
    await expectCode(
      await raw(JSON.stringify({ a: entry('F32', [2], [0, 8]), z: entry('F32', [0], [4, 4]) }), { data: 8 }),
      'E_HEADER_OFFSETS', 'z');
    await expectCode(await raw(JSON.stringify({ w: entry('F32', [3], [0, 8]) }), { data: 8 }), 'E_HEADER_SIZE', 'w');
    await expectCode(await raw(JSON.stringify({ w: entry('F16', [3], [0, 8]) }), { data: 8 }), 'E_HEADER_SIZE', 'w');
    // a product that overflows numel x size but not numel
    await expectCode(await raw('{"w":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,8]}}', { data: 8 }), 'E_HEADER_SIZE', 'w');
  });

  it('holes and trailing bytes are refused, as the reference implementation (Rust safetensors) does', async () => {
    // The data area must be tiled exactly, in (begin, end) order: Metadata::validate and
    // read_metadata's MetadataIncompleteBuffer. No byte may sit outside the header and the tensors.
    const two = { a: entry('F32', [1], [0, 4]), b: entry('F32', [1], [6, 10]) };
    await expectCode(await raw(JSON.stringify(two), { data: 10 }), 'E_HEADER_OFFSETS', 'b');
    // a hole before the first tensor
    await expectCode(await raw(JSON.stringify({ w: entry('F32', [1], [4, 8]) }), { data: 8 }), 'E_HEADER_OFFSETS', 'w');
    // a hole found in offset order although the JSON lists the tensors the other way round
    await expectCode(await raw(JSON.stringify({ b: two.b, a: two.a }), { data: 10 }), 'E_HEADER_OFFSETS', 'b');
    // trailing bytes after the last tensor, and data bytes in a file that lists no tensor
    await expectCode(await raw(JSON.stringify({ w: entry('F32', [1], [0, 4]) }), { data: 5 }), 'E_HEADER_TRAILING');
    await expectCode(await raw('{"__metadata__":{"format":"pt"}}', { data: 1 }), 'E_HEADER_TRAILING');
    const msg = await cpuAddon().readHeader(await raw(JSON.stringify({ w: entry('F32', [1], [0, 4]) }), { data: 7 })).catch((e: Error) => e.message);
    expect(msg).toMatch(/3 byte\(s\) after the last tensor \("w", ending at data offset 4\) belong to no tensor/);
    const hole = await cpuAddon().readHeader(await raw(JSON.stringify(two), { data: 10 })).catch((e: Error) => e.message);
    expect(hole).toMatch(/data bytes \[4, 6\) between tensor "a" and this one belong to no tensor/);
    // the helper's gap/trailing options build exactly these files
    const w = await writeSafetensors(join(dir, 'gap.safetensors'), [{ name: 'x', dtype: 'F32', shape: [2] }, { name: 'y', dtype: 'F32', shape: [2] }], { gap: 4 });
    await expectCode(w.path, 'E_HEADER_OFFSETS', 'y');
    const t = await writeSafetensors(join(dir, 'trail.safetensors'), [{ name: 'x', dtype: 'F32', shape: [2] }], { trailing: 1 });
    await expectCode(t.path, 'E_HEADER_TRAILING');
    // still valid: zero-size tensors at the start, between two tensors and at the end; JSON order free
    const ok = await raw(JSON.stringify({
      z2: entry('F32', [0], [8, 8]), b: entry('F32', [1], [4, 8]), z0: entry('F32', [0], [0, 0]),
      a: entry('F32', [1], [0, 4]), z1: entry('F16', [0, 3], [4, 4]),
    }), { data: 8 });
    expect(cpuAddon().readHeaderSync(ok).tensors.map((x) => x.name)).toEqual(['z2', 'b', 'z0', 'a', 'z1']);
    // an empty file body after an empty header is valid (the reference's serialize of no tensors)
    expect(cpuAddon().readHeaderSync(await raw('{}', { data: 0 })).tensors).toEqual([]);
  });

  it('duplicate tensor names (duplicate JSON keys)', async () => {
    const e = JSON.stringify(entry('F32', [1], [0, 4]));
    await expectCode(await raw(`{"w":${e},"w":${e}}`, { data: 4 }), 'E_HEADER_DUPLICATE', 'w');
    // the same name written with an escape is the same name
    await expectCode(await raw(`{"w":${e},"\\u0077":${e}}`, { data: 4 }), 'E_HEADER_DUPLICATE', 'w');
  });

  it('missing file / folder -> E_IO_OPEN', async () => {
    const p = join(dir, 'nope.safetensors');
    const err = (await cpuAddon().readHeader(p).catch((e: unknown) => e)) as { code: string; file: string };
    expect(err.code).toBe('E_IO_OPEN');
    expect(err.file).toBe(p);
    const e2 = (await cpuAddon().readHeader(dir).catch((e: unknown) => e)) as { code: string };
    expect(e2.code).toBe('E_IO_OPEN');
  });

  it('the TS wrapper maps codes to classes and keeps the caller stack', async () => {
    const p = await raw('[]');
    const err = await readHeader(p).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SafetensorsError);
    expect((err as SafetensorsError).code).toBe('E_HEADER_NOT_OBJECT');
    expect((err as Error).stack).toContain('io-header.test.ts');
    const e2 = await readHeader(join(dir, 'missing.safetensors')).catch((e: unknown) => e);
    expect(e2).toBeInstanceOf(ModelIOError);
  });
});

describe('readHeader: valid files', () => {
  it('every dtype, metadata, zero-size tensors, unicode names', async () => {
    const dtypes: DType[] = ['BOOL', 'U8', 'I8', 'U16', 'I16', 'F16', 'BF16', 'U32', 'I32', 'F32', 'U64', 'I64', 'F64', 'F8_E4M3', 'F8_E5M2'];
    const tensors = dtypes.map((d, i) => ({ name: `t.${d}`, dtype: d, shape: [i + 1, 3] }));
    tensors.push({ name: 'empty', dtype: 'F32', shape: [0, 7] });
    tensors.push({ name: 'scalar', dtype: 'F64', shape: [] });
    tensors.push({ name: 'ünï🙂', dtype: 'F16', shape: [2] });
    const w = await writeSafetensors(join(dir, 'valid.safetensors'), tensors, {
      metadata: { format: 'pt', 'ключ': 'значение' },
      align: 1,
    });
    const h = await cpuAddon().readHeader(w.path);
    expect(h.path).toBe(w.path);
    expect(h.fileSize).toBe(w.size);
    expect(h.headerLength).toBe(w.headerLength);
    expect(h.dataOffset).toBe(w.dataOffset);
    expect(h.metadata).toEqual({ format: 'pt', 'ключ': 'значение' });
    expect(h.tensors.map((t) => t.name)).toEqual(tensors.map((t) => t.name));
    for (const t of h.tensors) {
      const spec = tensors.find((s) => s.name === t.name)!;
      expect(t.dtype).toBe(spec.dtype);
      expect(t.shape).toEqual(spec.shape);
      expect(h.dataOffset + t.begin).toBe(w.offsets[t.name]);
    }
    expect(cpuAddon().readHeaderSync(w.path)).toEqual(h);
  });

  it('F8_E8M0, null metadata, escapes in names, JSON order differing from offset order', async () => {
    const p = await raw(
      '{"__metadata__":null,"b\\n\\"q\\"":{"dtype":"F8_E8M0","shape":[2],"data_offsets":[4,6]},"\\ud83d\\ude00":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}   ',
      { data: 6 },
    );
    const h = cpuAddon().readHeaderSync(p);
    expect(h.metadata).toBeNull();
    expect(h.tensors.map((t) => t.name)).toEqual(['b\n"q"', '😀']);
  });

  it('metadata keys that are Object.prototype names (__proto__, constructor) are kept as own keys', async () => {
    const p = await raw('{"__metadata__":{"__proto__":"x","constructor":"y","format":"pt"}}');
    for (const h of [cpuAddon().readHeaderSync(p), await cpuAddon().readHeader(p)]) {
      expect(Object.entries(h.metadata!)).toEqual([['__proto__', 'x'], ['constructor', 'y'], ['format', 'pt']]);
      expect(Object.getPrototypeOf(h.metadata)).toBe(Object.prototype);
    }
  });

  const zoo = ZOO;
  it('zoo files parse and match a manual JS parse', async (ctx) => {
    skipWithoutZoo('ft')(ctx);
    let checked = 0;
    for (const split of ['ft', 'lora', 'chain']) {
      for (const id of readdirSync(join(zoo, split)).sort()) {
        const file = join(zoo, split, id, 'model.safetensors');
        if (!existsSync(file)) continue;
        const bytes = readFileSync(file);
        const len = Number(bytes.readBigUInt64LE(0));
        const json = JSON.parse(bytes.subarray(8, 8 + len).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
        const h = await cpuAddon().readHeader(file);
        expect(h.fileSize).toBe(bytes.byteLength);
        expect(h.dataOffset).toBe(8 + len);
        const expected = Object.entries(json)
          .filter(([k]) => k !== '__metadata__')
          .map(([name, v]) => ({ name, dtype: v.dtype, shape: v.shape, begin: v.data_offsets[0], end: v.data_offsets[1] }));
        expect(h.tensors).toEqual(expected);
        checked++;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(90); // ft 39 + lora 39 + chain (16 on disk)
  });
});
