// The published JSON Schemas (docs/*.schema.json) against the reports, and against the TypeScript
// types: every field of RecoveredModel, Family, Diagnostics and InspectedTensor is in the schema,
// and the schema has no field the types lack.
import { describe, expect, it } from 'vitest';
import { formatJson } from '../src/report/json.js';
import { formatInspectJson } from '../src/report/inspect.js';
import type { InspectResult, InspectedTensor } from '../src/inspect.js';
import type { Diagnostics, Family, RecoveredModel, RecoverResult, SkippedModel } from '../src/types.js';
import { expectValidInspect, expectValidResult, expectValidResultDoc, INSPECT_SCHEMA, RESULT_SCHEMA } from './helpers/schema.js';

function sample(): RecoverResult {
  return {
    models: [
      { id: 'a', path: '/z/a', parent: null, confidence: 1, family: 0, kurtosis: 2.5 },
      { id: 'b', path: '/z/b', parent: 'a', confidence: 0.51234567, family: 0, kurtosis: NaN, runnerUp: { parent: null, confidence: 0.25 } },
    ],
    families: [{ index: 0, root: 'a', size: 2, members: ['a', 'b'], distance: 'lora', evidence: 'rank', direction: 'mixed', architecture: 'abc' }],
    diagnostics: {
      backend: 'cpu', device: 'avx2', threads: 2, tensorsUsed: 3,
      tensorsSkipped: [{ name: 'head', reason: 'shape differs', models: ['b'] }, { name: 'ids', reason: 'dtype I64' }],
      bytesRead: 10, seconds: { total: 1, headers: 0.1, statistics: NaN, graph: 0 }, warnings: ['w'],
      skippedModels: [{ path: '/z/c.safetensors', code: 'E_HEADER_JSON', message: 'invalid safetensors file /z/c.safetensors: ...' }],
      backendFallback: 'CUDA not used: the CUDA addon is not built',
    },
  };
}

const keysOf = (o: Record<string, unknown>) => Object.keys(o).sort();

describe('result schema', () => {
  it('accepts the JSON report, NaN written as null', () => {
    const doc = expectValidResult(formatJson(sample())) as { models: { kurtosis: unknown }[] };
    expect(doc.models[1]!.kurtosis).toBeNull();
  });

  it('refuses what breaks the contract', () => {
    const bad: [string, (d: any) => void, RegExp][] = [
      ['no size', (d) => delete d.families[0].size, /families\/0 must have required property 'size'/],
      ['an unknown field', (d) => (d.models[0].score = 1), /models\/0 must NOT have additional properties/],
      ['a confidence above 1', (d) => (d.models[0].confidence = 1.5), /models\/0\/confidence must be <= 1/],
      ['an unknown distance', (d) => (d.families[0].distance = 'l2'), /families\/0\/distance must be equal to one of the allowed values/],
      ['a skipped model without code', (d) => delete d.diagnostics.skippedModels[0].code, /skippedModels\/0 must have required property 'code'/],
      ['a lowercase code', (d) => (d.diagnostics.skippedModels[0].code = 'oops'), /code must match pattern/],
      ['no backendFallback', (d) => delete d.diagnostics.backendFallback, /must have required property 'backendFallback'/],
    ];
    expect(() => expectValidResultDoc(JSON.parse(formatJson(sample())))).not.toThrow();
    for (const [what, edit, msg] of bad) {
      const d = JSON.parse(formatJson(sample()));
      edit(d);
      expect(() => expectValidResultDoc(d), what).toThrow(msg);
    }
  });

  it('lists exactly the fields of the TypeScript types', () => {
    // Records over keyof: adding a field to a type without adding it here fails the typecheck.
    const model: Record<keyof RecoveredModel, true> = { id: true, path: true, parent: true, confidence: true, family: true, kurtosis: true, runnerUp: true, parents: true, declared: true, format: true };
    const family: Record<keyof Family, true> = { index: true, root: true, size: true, members: true, distance: true, evidence: true, direction: true, architecture: true };
    const diagnostics: Record<keyof Diagnostics, true> = {
      backend: true, device: true, threads: true, tensorsUsed: true, tensorsSkipped: true, bytesRead: true, seconds: true,
      warnings: true, skippedModels: true, backendFallback: true,
    };
    const skipped: Record<keyof SkippedModel, true> = { path: true, code: true, message: true };
    const d = RESULT_SCHEMA.$defs;
    expect(keysOf(d.model.properties)).toEqual(keysOf(model));
    expect(keysOf(d.family.properties)).toEqual(keysOf(family));
    expect(keysOf(d.diagnostics.properties)).toEqual(keysOf(diagnostics));
    expect(keysOf(d.diagnostics.properties.skippedModels.items.properties)).toEqual(keysOf(skipped));
    expect(keysOf(RESULT_SCHEMA.properties)).toEqual(['diagnostics', 'families', 'models']);
    // and the report writes every field of the sample
    const doc = JSON.parse(formatJson(sample()));
    expect(keysOf(doc.families[0])).toEqual(keysOf(family));
    expect(keysOf(doc.diagnostics)).toEqual(keysOf(diagnostics));
  });
});

describe('inspect schema', () => {
  const r: InspectResult = {
    id: 'm', path: '/z/m', files: ['/z/m/model.safetensors'], parameters: 7, bytes: 24, metadata: { format: 'pt' },
    tensors: [
      { name: 'w', dtype: 'F32', shape: [2, 2], numel: 4, kurtosis: -1.3600000001, nonFinite: 0 },
      { name: 'c', dtype: 'F16', shape: [2], numel: 2, kurtosis: NaN, nonFinite: 1 },
      { name: 'i', dtype: 'I64', shape: [], numel: 1, kurtosis: null, nonFinite: 0 },
    ],
  };

  it('accepts the report; kurtosisComputed tells a constant tensor from an uncomputed dtype', () => {
    const doc = expectValidInspect(formatInspectJson(r)) as { tensors: { kurtosis: unknown; kurtosisComputed: boolean }[] };
    expect(doc.tensors.map((t) => [t.kurtosis, t.kurtosisComputed])).toEqual([[-1.36, true], [null, true], [null, false]]);
    const t: Record<keyof InspectedTensor, true> = { name: true, dtype: true, shape: true, numel: true, kurtosis: true, nonFinite: true };
    // the JSON adds kurtosisComputed to the type's fields
    expect(keysOf(INSPECT_SCHEMA.properties.tensors.items.properties)).toEqual([...keysOf(t), 'kurtosisComputed'].sort());
    const bad = JSON.parse(formatInspectJson(r));
    delete bad.tensors[0].kurtosisComputed;
    expect(() => expectValidInspect(bad)).toThrow(/must have required property 'kurtosisComputed'/);
  });
});
