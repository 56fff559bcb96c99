/**
 * The GGUF reader (native/io/gguf.cc + src/io/gguf.ts): a valid file's metadata and tensor infos,
 * the llama.cpp -> Hugging Face names, shapes (ne reversed) and permuteHeads, types the kernels
 * cannot read (skipped by the catalogue with a reason), and malformed files: each one a clear
 * E_GGUF_* error naming the file and the field, never a crash; recover() skips a bad GGUF model.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildCatalogue, discoverModels, openModel } from '../src/io/index.js';
import { GgufError } from '../src/errors.js';
import { cpuAddon } from '../src/native.js';
import { recover } from '../src/recover.js';
import { ggufBytes, llamaKvs, tempDir, writeGguf, type GgufTensorSpec, type KV } from './helpers/gguf.js';
import { randomValues, writeSafetensors } from './helpers/safetensors.js';

let dir: string;
beforeAll(async () => {
  dir = await tempDir('gguf-parse');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const f32 = (n: number, seed = 1) => new Uint8Array(Float32Array.from(randomValues(n, seed)).buffer);
const q8 = (blocks: number) => {
  const b = new Uint8Array(blocks * 34);
  for (let i = 0; i < blocks; i++) (b[i * 34] = 0x00), (b[i * 34 + 1] = 0x20); // d = 2^-7
  return b;
};

const TENSORS: GgufTensorSpec[] = [
  { name: 'token_embd.weight', ne: [32, 4], type: 'F32', data: f32(128) },
  { name: 'blk.0.attn_q.weight', ne: [32, 8], type: 'Q8_0', data: q8(8) },
  { name: 'blk.0.attn_k.weight', ne: [32, 4], type: 'Q8_0', data: q8(4) },
  { name: 'blk.0.attn_norm.weight', ne: [32], type: 'F32', data: f32(32, 2) },
  { name: 'blk.0.ffn_up.weight', ne: [256, 2], type: 'IQ2_XXS', data: new Uint8Array(2 * 66) },
  { name: 'rope_freqs.weight', ne: [32], type: 99, data: new Uint8Array(64) },
];
const KVS: KV[] = llamaKvs(2, 1, [{ key: 'general.tags', type: 'ARRAY', itemType: 'STRING', value: ['a', 'b'] }]);

describe('a valid GGUF file', () => {
  it('metadata and tensor infos as written', async () => {
    const p = await writeGguf(join(dir, 'ok.gguf'), KVS, TENSORS);
    const g = cpuAddon().readGgufSync!(p);
    expect(g).toMatchObject({ version: 3, alignment: 32 });
    expect(g.kv.map((e) => e.key)).toEqual(KVS.map((k) => k.key));
    expect(g.kv.find((e) => e.key === 'general.tags')!.value).toEqual({ itemType: 'STRING', length: 2, items: ['a', 'b'] });
    expect(g.tensors.map((t) => [t.name, t.type, t.ne, t.byteLength])).toEqual([
      ['token_embd.weight', 'F32', [32, 4], 512],
      ['blk.0.attn_q.weight', 'Q8_0', [32, 8], 272],
      ['blk.0.attn_k.weight', 'Q8_0', [32, 4], 136],
      ['blk.0.attn_norm.weight', 'F32', [32], 128],
      ['blk.0.ffn_up.weight', 'IQ2_XXS', [256, 2], 132],
      ['rope_freqs.weight', null, [32], null],
    ]);
    expect(g.tensors[0]!.offset % 32).toBe(0);
    expect(g.dataOffset % 32).toBe(0);
    await expect(cpuAddon().readGguf!(p)).resolves.toEqual(g);
  });

  it('becomes a Model with Hugging Face names, reversed shapes and q/k head counts', async () => {
    const m = await openModel(join(dir, 'ok.gguf'));
    expect(m.id).toBe('ok');
    expect([...m.tensors.keys()]).toEqual([
      'model.embed_tokens.weight', 'model.layers.0.self_attn.q_proj.weight', 'model.layers.0.self_attn.k_proj.weight',
      'model.layers.0.input_layernorm.weight', 'model.layers.0.mlp.up_proj.weight', 'rope_freqs.weight',
    ]);
    const q = m.tensors.get('model.layers.0.self_attn.q_proj.weight')!;
    expect(q).toMatchObject({ dtype: 'Q8_0', shape: [8, 32], numel: 256, permuteHeads: 2, byteLength: 272 });
    expect(m.tensors.get('model.layers.0.self_attn.k_proj.weight')!.permuteHeads).toBe(1);
    expect(m.tensors.get('model.embed_tokens.weight')!.permuteHeads).toBeUndefined();
    expect(m.tensors.get('rope_freqs.weight')!.dtype).toBe('ggml type 99');
    expect(m.gguf).toMatchObject({ version: 3, architecture: 'llama', hfNames: true, unmapped: ['rope_freqs.weight'] });
    expect(m.metadata!['general.architecture']).toBe('llama');
    expect(m.metadata!['general.tags']).toBe('["a","b"]');
  });

  it('types the kernels cannot dequantise are skipped by the catalogue with a reason', async () => {
    const m = await openModel(join(dir, 'ok.gguf'));
    const [g] = buildCatalogue([m]);
    expect(g!.tensors.map((t) => t.name)).toHaveLength(4);
    expect(g!.skipped).toEqual([
      { name: 'model.layers.0.mlp.up_proj.weight', reason: 'dtype IQ2_XXS not supported', models: ['ok'] },
      { name: 'rope_freqs.weight', reason: 'dtype ggml type 99 not supported', models: ['ok'] },
    ]);
  });

  it('a folder holding one .gguf is a model; an architecture without a mapping keeps llama.cpp names', async () => {
    const f = join(dir, 'org--repo-GGUF');
    await mkdir(f, { recursive: true });
    await writeFile(join(f, 'README.md'), '# card\n');
    await writeGguf(join(f, 'repo.Q8_0.gguf'), [{ key: 'general.architecture', type: 'STRING', value: 'gpt2' }], TENSORS.slice(0, 2));
    const m = await openModel(f);
    expect(m.id).toBe('org--repo-GGUF');
    expect([...m.tensors.keys()]).toEqual(['token_embd.weight', 'blk.0.attn_q.weight']);
    expect(m.tensors.get('blk.0.attn_q.weight')!.permuteHeads).toBeUndefined();
    expect((await discoverModels([f])).map((r) => r.id)).toEqual(['org--repo-GGUF']);
  });

  it('version 2 reads like version 3', async () => {
    const p = await writeGguf(join(dir, 'v2.gguf'), KVS, TENSORS, { version: 2 });
    expect(cpuAddon().readGgufSync!(p).version).toBe(2);
  });
});

// ---- malformed files -------------------------------------------------------------------------

const one: GgufTensorSpec[] = [{ name: 'a.weight', ne: [32, 2], type: 'Q8_0', data: q8(2) }];
const u8 = (...v: number[]) => new Uint8Array(v);
const u64le = (v: bigint) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(v); return new Uint8Array(b); };

const BAD: { name: string; bytes: () => Uint8Array; code: string; message: RegExp }[] = [
  { name: 'empty file', bytes: () => new Uint8Array(0), code: 'E_GGUF_SHORT', message: /0 bytes/ },
  { name: 'a safetensors file', bytes: () => new Uint8Array(Buffer.from('\x10\0\0\0\0\0\0\0{"a":1}         ')), code: 'E_GGUF_MAGIC', message: /not the magic "GGUF"/ },
  { name: 'version 1', bytes: () => ggufBytes(KVS, one, { version: 1 }), code: 'E_GGUF_VERSION', message: /version 1/ },
  { name: 'big-endian', bytes: () => ggufBytes(KVS, one, { version: 0x03000000 }), code: 'E_GGUF_VERSION', message: /big-endian/ },
  { name: 'version 4', bytes: () => ggufBytes(KVS, one, { version: 4 }), code: 'E_GGUF_VERSION', message: /version 4 is not supported/ },
  { name: 'absurd tensor count', bytes: () => ggufBytes(KVS, one, { tensorCount: 1n << 40n }), code: 'E_GGUF_COUNT', message: /1099511627776 tensors/ },
  { name: 'absurd KV count', bytes: () => ggufBytes(KVS, one, { kvCount: 1n << 62n }), code: 'E_GGUF_COUNT', message: /KV pairs/ },
  { name: 'overlong string', bytes: () => ggufBytes([{ key: 'general.name', type: 'RAW', vt: 8, raw: u64le(1n << 50n) }], one), code: 'E_GGUF_STRING', message: /KV pair 0 \("general.name"\): string length 1125899906842624 at byte 48 runs past the end of the file/ },
  { name: 'unknown value type', bytes: () => ggufBytes([{ key: 'x', type: 'RAW', vt: 13, raw: u8(0) }], one), code: 'E_GGUF_TYPE', message: /KV pair 0 \("x"\).*unknown value type 13/ },
  { name: 'unknown array item type', bytes: () => ggufBytes([{ key: 'x', type: 'RAW', vt: 9, raw: new Uint8Array([99, 0, 0, 0, ...u64le(1n)]) }], one), code: 'E_GGUF_TYPE', message: /unknown array item type 99/ },
  { name: 'absurd array length', bytes: () => ggufBytes([{ key: 'x', type: 'RAW', vt: 9, raw: new Uint8Array([4, 0, 0, 0, ...u64le(1n << 60n)]) }], one), code: 'E_GGUF_COUNT', message: /array of 1152921504606846976 UINT32/ },
  { name: 'bool 2', bytes: () => ggufBytes([{ key: 'x', type: 'RAW', vt: 7, raw: u8(2) }], one), code: 'E_GGUF_TYPE', message: /BOOL must be 0 or 1/ },
  { name: 'duplicate key', bytes: () => ggufBytes([...KVS, KVS[0]!], one), code: 'E_GGUF_KEY', message: /"general.architecture"\): the key appears twice/ },
  { name: 'alignment 3', bytes: () => ggufBytes([{ key: 'general.alignment', type: 'UINT32', value: 3 }], one), code: 'E_GGUF_KEY', message: /not a power of two/ },
  { name: 'alignment a string', bytes: () => ggufBytes([{ key: 'general.alignment', type: 'STRING', value: '32' }], one), code: 'E_GGUF_KEY', message: /must be a UINT32, found STRING/ },
  { name: 'empty key', bytes: () => ggufBytes([{ key: '', type: 'UINT32', value: 1 }], one), code: 'E_GGUF_STRING', message: /KV pair 0 key is empty/ },
  { name: 'invalid UTF-8 name', bytes: () => { const b = ggufBytes(KVS, [{ ...one[0]!, name: 'a.wei\u00e9' }]); const i = b.indexOf(Buffer.from('a.wei')); b[i + 5] = 0xff; return b; }, code: 'E_GGUF_STRING', message: /tensor info 0 name is not valid UTF-8/ },
  { name: 'duplicate tensor', bytes: () => ggufBytes(KVS, [one[0]!, one[0]!]), code: 'E_GGUF_TENSOR', message: /"a.weight"\): the name appears twice/ },
  { name: '0 dimensions', bytes: () => ggufBytes(KVS, [{ ...one[0]!, ne: [], nDims: 0 }]), code: 'E_GGUF_TENSOR', message: /0 dimensions/ },
  { name: '5 dimensions', bytes: () => ggufBytes(KVS, [{ ...one[0]!, ne: [32, 1, 1, 1, 1] }]), code: 'E_GGUF_TENSOR', message: /5 dimensions/ },
  { name: 'size overflow', bytes: () => ggufBytes(KVS, [{ ...one[0]!, ne: [2 ** 40, 2 ** 40] }]), code: 'E_GGUF_TENSOR', message: /ne\[1\] = 1099511627776 makes the size overflow/ },
  { name: 'ne[0] not whole blocks', bytes: () => ggufBytes(KVS, [{ ...one[0]!, ne: [33, 2] }]), code: 'E_GGUF_TENSOR', message: /ne\[0\] = 33 is not a multiple of the Q8_0 block of 32/ },
  { name: 'misaligned offset', bytes: () => ggufBytes(KVS, [{ ...one[0]!, offset: 4 }]), code: 'E_GGUF_OFFSETS', message: /tensor "a.weight": data offset 4 is not a multiple of the alignment 32/ },
  { name: 'offset past the end', bytes: () => ggufBytes(KVS, [{ ...one[0]!, offset: 1 << 20 }]), code: 'E_GGUF_OFFSETS', message: /runs past the end of the file/ },
  { name: 'data past the end', bytes: () => ggufBytes(KVS, [{ ...one[0]!, ne: [32, 64] }]), code: 'E_GGUF_OFFSETS', message: /"a.weight": data .* runs past the end/ },
  { name: 'overlapping tensors', bytes: () => ggufBytes(KVS, [one[0]!, { ...one[0]!, name: 'b.weight', offset: 32 }]), code: 'E_GGUF_OFFSETS', message: /"b.weight": data at offset 32 overlaps tensor "a.weight" \[0, 68\)/ },
  { name: 'nested too deep', bytes: () => { let raw = new Uint8Array([4, 0, 0, 0, ...u64le(0n)]); for (let i = 0; i < 5; i++) raw = new Uint8Array([9, 0, 0, 0, ...u64le(1n), ...raw]); return ggufBytes([{ key: 'x', type: 'RAW', vt: 9, raw: raw.subarray(12) }], one); }, code: 'E_GGUF_TYPE', message: /nested deeper than 4/ },
];

describe('malformed GGUF files: a clear error naming the file and the field', () => {
  for (const c of BAD)
    it(c.name, async () => {
      const p = join(dir, `bad-${c.name.replace(/\W+/g, '-')}.gguf`);
      await writeFile(p, c.bytes());
      const err = await openModel(p).then(() => null, (e: unknown) => e);
      expect(err, 'must be rejected').toBeInstanceOf(GgufError);
      expect(err).toMatchObject({ code: c.code, file: p });
      expect((err as Error).message).toContain(`invalid GGUF file ${p}: `);
      expect((err as Error).message).toMatch(c.message);
    });

  it('every truncation of a valid file is an E_GGUF_* error (never a crash)', async () => {
    // Known types only, the last one unpadded: every byte of this file is needed.
    const full = ggufBytes(KVS, TENSORS.slice(0, 4));
    const p = join(dir, 'trunc.gguf');
    const codes = new Set<string>();
    for (let n = 0; n < full.length; n += n < 400 ? 1 : 13) {
      await writeFile(p, full.subarray(0, n));
      let code = 'none';
      try {
        cpuAddon().readGgufSync!(p);
      } catch (e) {
        code = (e as { code: string }).code;
        if (!/^E_GGUF_/.test(code) || !(e as Error).message.includes(p)) throw e;
      }
      expect(code, `truncated to ${n} bytes`).not.toBe('none');
      codes.add(code);
    }
    expect([...codes].sort()).toEqual(['E_GGUF_COUNT', 'E_GGUF_OFFSETS', 'E_GGUF_SHORT', 'E_GGUF_STRING', 'E_GGUF_TRUNCATED']);
  });

  it('random byte flips never crash the parser', async () => {
    const full = ggufBytes(KVS, TENSORS);
    const p = join(dir, 'flip.gguf');
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    for (let i = 0; i < 300; i++) {
      const b = Buffer.from(full);
      for (let k = 0; k < 3; k++) b[Math.floor(rand() * 600)] = Math.floor(rand() * 256);
      await writeFile(p, b);
      try {
        cpuAddon().readGgufSync!(p);
      } catch (e) {
        expect((e as { code: string }).code).toMatch(/^E_GGUF_/);
      }
    }
  });
});

describe('recover() over a folder with one bad GGUF', () => {
  it('skips that model and compares the good GGUF with the safetensors models', async () => {
    const hub = join(dir, 'hub');
    const names = ['model.embed_tokens.weight', 'model.layers.0.self_attn.q_proj.weight', 'model.norm.weight'];
    const base = [randomValues(64 * 8, 1), randomValues(64 * 8, 2), randomValues(64, 3)];
    const shapes = [[8, 64], [8, 64], [64]];
    for (const [k, id] of ['base', 'ft1', 'ft2'].entries()) {
      await mkdir(join(hub, id), { recursive: true });
      const vals = base.map((v, t) => v.map((x, i) => x + (k ? 0.05 * Math.sin(i * (k + 1) + t) : 0)));
      await writeSafetensors(join(hub, id, 'model.safetensors'), names.map((name, t) => ({ name, dtype: 'F32', shape: shapes[t]!, data: vals[t]! })));
    }
    // A GGUF copy of ft1 as F32 (llama names, q rows permuted with 2 heads).
    const ft1 = base.map((v, t) => v.map((x, i) => x + 0.05 * Math.sin(i * 2 + t)));
    const q = Float32Array.from(ft1[1]!);
    const perm = new Float32Array(q.length);
    for (let r = 0; r < 8; r++) {
      const hd = 4, h = Math.floor(r / hd), rem = r % hd, stored = h * hd + 2 * (rem % 2) + Math.floor(rem / 2);
      perm.set(q.subarray(r * 64, r * 64 + 64), stored * 64);
    }
    await mkdir(join(hub, 'ft1-GGUF'));
    await writeGguf(join(hub, 'ft1-GGUF', 'ft1.F32.gguf'), llamaKvs(2, 2), [
      { name: 'token_embd.weight', ne: [64, 8], type: 'F32', data: new Uint8Array(Float32Array.from(ft1[0]!).buffer) },
      { name: 'blk.0.attn_q.weight', ne: [64, 8], type: 'F32', data: new Uint8Array(perm.buffer) },
      { name: 'output_norm.weight', ne: [64], type: 'F32', data: new Uint8Array(Float32Array.from(ft1[2]!).buffer) },
    ]);
    await mkdir(join(hub, 'broken-GGUF'));
    await writeFile(join(hub, 'broken-GGUF', 'broken.gguf'), ggufBytes(KVS, one, { tensorCount: 1n << 40n }));
    const r = await recover(hub, { backend: 'cpu', bootstrap: 0, threads: 2 });
    expect(r.diagnostics.skippedModels).toEqual([
      { path: join(hub, 'broken-GGUF'), code: 'E_GGUF_COUNT', message: expect.stringContaining('broken.gguf') },
    ]);
    expect(r.models.map((m) => m.id).sort()).toEqual(['base', 'ft1', 'ft1-GGUF', 'ft2']);
    // The F32 GGUF copy is bit-identical to ft1 once un-permuted: its nearest model is ft1.
    const byId = new Map(r.models.map((m) => [m.id, m]));
    const g = byId.get('ft1-GGUF')!, f = byId.get('ft1')!;
    expect(g.family).toBe(f.family);
    expect(g.parent === 'ft1' || f.parent === 'ft1-GGUF').toBe(true);
  });
});
