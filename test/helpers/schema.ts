/**
 * The JSON reports validated against the published schemas (docs/result.schema.json,
 * docs/inspect.schema.json) with Ajv, a maintained JSON Schema validator (draft 2020-12).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { formatJson } from '../../src/report/json.js';
import type { RecoverResult } from '../../src/types.js';
import { REPO_ROOT } from './zoo.js';

export const RESULT_SCHEMA = JSON.parse(readFileSync(join(REPO_ROOT, 'docs', 'result.schema.json'), 'utf8'));
export const INSPECT_SCHEMA = JSON.parse(readFileSync(join(REPO_ROOT, 'docs', 'inspect.schema.json'), 'utf8'));

const ajv = new Ajv2020({ allErrors: true, strict: true });
const validateResult = ajv.compile(RESULT_SCHEMA);
const validateInspect = ajv.compile(INSPECT_SCHEMA);

function check(validate: ReturnType<typeof ajv.compile>, what: string, doc: unknown): unknown {
  if (!validate(doc)) {
    const errs = (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}${e.params ? ` ${JSON.stringify(e.params)}` : ''}`);
    throw new Error(`${what} does not match its schema:\n  ${errs.join('\n  ')}`);
  }
  return doc;
}

/**
 * Throws (failing the test) unless the recover JSON report matches the schema: given as the report
 * text, or as a RecoverResult (validated as formatJson writes it). Returns the parsed report.
 */
export function expectValidResult(x: string | RecoverResult): unknown {
  return check(validateResult, 'recover JSON report', JSON.parse(typeof x === 'string' ? x : formatJson(x)));
}

/** The same for an already parsed report document. */
export function expectValidResultDoc(doc: unknown): unknown {
  return check(validateResult, 'recover JSON report', doc);
}

/** Throws unless the inspect JSON report (text or parsed document) matches the schema. */
export function expectValidInspect(x: unknown): unknown {
  return check(validateInspect, 'inspect JSON report', typeof x === 'string' ? JSON.parse(x) : x);
}
