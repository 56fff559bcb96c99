/**
 * `mother demo`: recovers the small example zoo shipped in examples/zoo/<split>/ and prints each
 * split's trees and their accuracy against its truth.json. `npm start` runs it.
 */
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { recover as realRecover } from '../../recover.js';
import { evaluate, formatEvaluationText, parentRows } from '../../report/evaluation.js';
import { formatText } from '../../report/text.js';
import type { Backend, RecoverOptions, RecoverResult } from '../../types.js';
import { MAX_THREADS } from '../../util/limits.js';
import { integer, oneOf, parseCommand, type OptionSpec } from '../args.js';
import { useColor, type CliContext } from '../context.js';
import { ProgressBar } from '../progress.js';
import { readJsonFile } from './eval.js';

export const DEMO_HELP = `Usage: mother demo [options]

Recover the example zoo that ships with mother-tree (examples/zoo/<split>/) and compare each
recovered forest with its truth.json.

  --backend B    auto|cpu|cuda (default auto)
  --threads N    CPU worker threads, 1 to ${MAX_THREADS} (default: all cores)
  --ascii        ASCII branches instead of box-drawing characters
  --quiet, -q    no progress bar and no warnings on stderr
`;

const OPTIONS: OptionSpec = {
  backend: { type: 'string' },
  threads: { type: 'string' },
  ascii: { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
  help: { type: 'boolean', short: 'h' },
};

/** Same relative place from src/cli/commands (tests) and dist/cli/commands (installed). */
export const DEFAULT_ZOO = fileURLToPath(new URL('../../../examples/zoo', import.meta.url));

export interface DemoDeps {
  recover?: (inputs: string[], options: RecoverOptions) => Promise<RecoverResult>;
  zoo?: string;
}

export async function demoCommand(argv: string[], ctx: CliContext, deps: DemoDeps = {}): Promise<number> {
  const { values: v } = parseCommand('demo', argv, OPTIONS, false);
  if (v.help === true) {
    ctx.stdout.write(DEMO_HELP);
    return 0;
  }
  const options: RecoverOptions = { signal: ctx.signal };
  if (v.backend !== undefined) options.backend = oneOf<Backend>('--backend', v.backend, ['auto', 'cpu', 'cuda']);
  if (v.threads !== undefined) options.threads = integer('--threads', v.threads, 1, MAX_THREADS);
  const zoo = deps.zoo ?? DEFAULT_ZOO;
  const splits = existsSync(zoo)
    ? (await readdir(zoo, { withFileTypes: true }))
        .filter((d) => d.isDirectory() && existsSync(join(zoo, d.name, 'truth.json')))
        .map((d) => d.name)
        .sort()
    : [];
  if (splits.length === 0) {
    // The zoo ships with the package; its absence is a broken install, not bad input.
    ctx.stderr.write(`mother: the example zoo is missing (looked for <split>/truth.json under ${zoo})\n`);
    return 1;
  }
  const color = useColor(ctx);
  for (const [i, split] of splits.entries()) {
    const dir = join(zoo, split);
    const bar = v.quiet !== true && ctx.stderr.isTTY ? new ProgressBar(ctx.stderr, { now: ctx.now }) : undefined;
    let result: RecoverResult;
    try {
      result = await (deps.recover ?? realRecover)([dir], bar ? { ...options, onProgress: (ev) => bar.update(ev) } : options);
    } finally {
      bar?.clear();
    }
    const truth = parentRows(await readJsonFile(join(dir, 'truth.json'), 'truth file', ctx.signal), `${split}/truth.json`);
    const e = evaluate(truth, result.models, { truth: `${split}/truth.json`, result: 'the recovered forest' });
    if (i > 0) ctx.stdout.write('\n');
    ctx.stdout.write(`== ${split}: ${result.models.length} models ==\n\n`);
    // Warnings go to stderr, not into the report.
    ctx.stdout.write(formatText({ ...result, diagnostics: { ...result.diagnostics, warnings: [] } }, { ascii: v.ascii === true, color }));
    if (v.quiet !== true) for (const w of result.diagnostics.warnings) ctx.stderr.write(`mother: warning: ${split}: ${w}\n`);
    ctx.stdout.write('\n' + formatEvaluationText(e));
  }
  return 0;
}
