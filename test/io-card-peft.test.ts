// Model cards (src/io/card.ts), PEFT factors (src/io/peft.ts) and typed scoring (report/evaluation.ts).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { mulberry32 } from '../src/graph/confidence.js';
import { frontMatter, readCard, resolveModelName } from '../src/io/card.js';
import { subspaceAlignment, targetName } from '../src/io/peft.js';
import { evaluateTyped, isTyped, typedRows } from '../src/report/evaluation.js';
import { gaussian } from './graph-synth.js';

const dir = mkdtempSync(join(tmpdir(), 'mother-card-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('model cards', () => {
  it('reads base_model (one or a list) and base_model_relation from YAML front matter', async () => {
    expect(await frontMatter('---\nbase_model: org/a\nbase_model_relation: finetune\n---\n# x')).toEqual({ base_model: 'org/a', base_model_relation: 'finetune' });
    expect(await frontMatter('---\nbase_model:\n- org/a\n- org/b\n---\n')).toEqual({ base_model: ['org/a', 'org/b'] });
    expect(await frontMatter('# no front matter')).toBeNull();
    expect(await frontMatter('---\n: : bad: [\n---\n')).toBeNull();
  });

  it('readCard joins README and config.json; nothing there is null', async () => {
    writeFileSync(join(dir, 'README.md'), '---\nbase_model: org/base\nlicense: mit\n---\nhi\n');
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ _name_or_path: 'out/ckpt', architectures: ['LlamaForCausalLM'] }));
    expect(await readCard(dir)).toEqual({ baseModel: 'org/base', relation: null, nameOrPath: 'out/ckpt', architectures: ['LlamaForCausalLM'] });
    expect(await readCard(join(dir, 'missing'))).toBeNull();
  });

  it('resolves hub ids to model ids: as is, the org--name folder and models--org--name cache forms', () => {
    const ids = ['org--a', 'models--org--b', 'other/c', 'x--solo'];
    expect(resolveModelName('org/a', ids)).toBe('org--a');
    expect(resolveModelName('org/b', ids)).toBe('models--org--b');
    expect(resolveModelName('other/c', ids)).toBe('other/c');
    expect(resolveModelName('solo', ids)).toBe('x--solo');
    expect(resolveModelName('checkpoints/a/final', ids)).toBeNull();
  });
});

describe('PEFT factors', () => {
  it('maps lora_A/lora_B keys to the base tensor', () => {
    expect(targetName('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight')).toBe('model.layers.0.self_attn.q_proj.weight');
    expect(targetName('base_model.model.model.layers.0.mlp.up_proj.lora_B.default.weight')).toBe('model.layers.0.mlp.up_proj.weight');
    expect(targetName('model.norm.weight')).toBeNull();
  });

  it('an update aligned with W scores higher than with an unrelated W', () => {
    const rand = mulberry32(5), rows = 32, cols = 24, r = 4;
    const W = Float64Array.from({ length: rows * cols }, () => gaussian(rand));
    const other = Float64Array.from({ length: rows * cols }, () => gaussian(rand));
    // B, A spanning W's leading directions: columns of W and rows of W.
    const B = new Float64Array(rows * r), A = new Float64Array(r * cols);
    for (let k = 0; k < r; k++) {
      for (let i = 0; i < rows; i++) B[i * r + k] = W[i * cols + k]!;
      for (let j = 0; j < cols; j++) A[k * cols + j] = W[k * cols + j]!;
    }
    const f = { target: 'w', A, B, r, rows, cols };
    expect(subspaceAlignment(f, W)).toBeGreaterThan(subspaceAlignment(f, other) * 1.5);
  });
});

describe('typed scoring', () => {
  const truth = {
    models: [
      { id: 'r', parent: null, parents: [] },
      { id: 'a', parent: 'r', parents: [{ id: 'r', relation: 'finetune' }] },
      { id: 'b', parent: 'r', parents: [{ id: 'r', relation: 'finetune' }], declared: { correct: false } },
      { id: 'm', parent: 'a', parents: [{ id: 'a', relation: 'merge' }, { id: 'b', relation: 'merge' }] },
      { id: 'q', parent: 'a', parents: [{ id: 'a', relation: 'quantized' }] },
    ],
  };
  it('precision, recall, F1 untyped and typed, per relation; merges complete; claims; unread models', () => {
    expect(isTyped(truth)).toBe(true);
    const result = {
      models: [
        { id: 'r', parent: null, parents: [] },
        { id: 'a', parent: 'r', parents: [{ id: 'r', relation: 'finetune' }] },
        { id: 'b', parent: 'r', parents: [{ id: 'r', relation: 'adapter' }], declared: { agrees: false } },
        { id: 'm', parent: 'a', parents: [{ id: 'a', relation: 'merge' }, { id: 'b', relation: 'merge' }] },
      ],
    };
    const e = evaluateTyped(typedRows(truth, 't'), typedRows(result, 'r'));
    expect(e.untyped).toMatchObject({ truth: 5, predicted: 4, correct: 4 });
    expect(e.typed).toMatchObject({ truth: 5, predicted: 4, correct: 3 });
    expect(e.perRelation.merge).toMatchObject({ f1: 1 });
    expect(e.perRelation.quantized).toMatchObject({ truth: 1, predicted: 0, recall: 0 });
    expect(e.mergesComplete).toEqual({ merges: 1, complete: 1 });
    expect(e.claims).toMatchObject({ total: 1, judgedRight: 1, wrongFlagged: 1, wrongTotal: 1, rightFlagged: 0 });
    expect(e.missing).toEqual(['q']);
  });
});
