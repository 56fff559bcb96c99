/** `mother eval --truth truth.json result.json`: accuracy of a recovered forest against the truth. */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import {
  evaluate,
  evaluateTyped,
  formatEvaluationJson,
  formatEvaluationText,
  formatTypedJson,
  formatTypedText,
  isTyped,
  parentRows,
  typedRows,
} from '../../report/evaluation.js';
import { InputError } from '../../errors.js';
import { nonEmpty, oneOf, parseCommand, UsageError, type OptionSpec } from '../args.js';
import type { CliContext } from '../context.js';

export const EVAL_HELP = `Usage: mother eval --truth truth.json result.json [options]

Score a recovered forest (a 'mother recover --format json' report, or any file with
{"models":[{"id","parent"}]}) against the true one (the zoo's truth.json). Models are matched
by id; every model must appear in both files.

  --truth FILE   the true parents (required)
  --format F     text|json (default: text on a terminal, json otherwise)

Reports: edge accuracy (the paper's metric: a model counts when its parent is right, a root
when it is predicted as a root), undirected accuracy (edges the wrong way round count too),
clustering ARI (true families = connected components of the true parents; predicted families
= the result's "family" fields, else components of its parents), and the wrong edges.

A typed truth (models with "parents": [{id, relation}], e.g. a hub folder's truth.json) is also
scored as a typed graph, TensorLock-style: precision, recall and F1 of the edges untyped and
typed, per relation type (finetune, adapter, merge, quantized, cast, duplicate), merges with all
their parents, and card claims ("declared") judged as the truth does. Truth models missing from
the result count as missed there; the tree metrics then need every model and are left out.
`;

const OPTIONS: OptionSpec = {
  truth: { type: 'string' },
  format: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

/** Reads and parses a JSON file; unreadable or malformed files are bad input (exit 2). */
export async function readJsonFile(path: string, what: string, signal?: AbortSignal): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, { encoding: 'utf8', signal });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    const code = (err as { code?: string }).code ?? 'error';
    throw new InputError('E_INPUT_READ', `cannot read ${what} ${path} (${code})`, { file: path });
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InputError('E_INPUT_JSON', `${what} ${path} is not valid JSON: ${(err as Error).message}`, { file: path });
  }
}

export async function evalCommand(argv: string[], ctx: CliContext): Promise<number> {
  const { values: v, positionals } = parseCommand('eval', argv, OPTIONS, true);
  if (v.help === true) {
    ctx.stdout.write(EVAL_HELP);
    return 0;
  }
  const hint = "see 'mother eval --help'";
  if (v.truth === undefined) throw new UsageError('eval needs --truth FILE', hint);
  if (positionals.length !== 1) throw new UsageError(`eval takes exactly one result file but received ${positionals.length}`, hint);
  const format = v.format === undefined ? (ctx.stdout.isTTY ? 'text' : 'json') : oneOf('--format', v.format, ['text', 'json'] as const);
  const truthPath = resolve(ctx.cwd, nonEmpty('--truth', v.truth));
  const resultPath = resolve(ctx.cwd, positionals[0]!);
  const truthJson = await readJsonFile(truthPath, 'truth file', ctx.signal);
  const resultJson = await readJsonFile(resultPath, 'result file', ctx.signal);
  const truth = parentRows(truthJson, `truth file ${truthPath}`, truthPath);
  const result = parentRows(resultJson, `result file ${resultPath}`, resultPath);
  const names = { truth: `the truth (${truthPath})`, result: `the result (${resultPath})` };
  if (!isTyped(truthJson)) {
    const e = evaluate(truth, result, names);
    ctx.stdout.write(format === 'json' ? formatEvaluationJson(e) : formatEvaluationText(e));
    return 0;
  }
  const typed = evaluateTyped(typedRows(truthJson, `truth file ${truthPath}`, truthPath), typedRows(resultJson, `result file ${resultPath}`, resultPath));
  // The tree metrics need every model; with some unread they are left out (the typed ones count them missed).
  const tree = typed.missing.length ? null : evaluate(truth, result, names);
  if (format === 'json') {
    const doc = tree ? JSON.parse(formatEvaluationJson(tree)) : { tree: null };
    ctx.stdout.write(JSON.stringify({ ...doc, typed: formatTypedJson(typed) }, null, 2) + '\n');
  } else ctx.stdout.write((tree ? formatEvaluationText(tree) : 'tree metrics: left out (models missing from the result)\n') + formatTypedText(typed));
  return 0;
}
