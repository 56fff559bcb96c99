/** `mother inspect <model>`: tensors, dtypes, shapes and kurtosis of one model. */
import { resolve } from 'node:path';
import { inspectModel as realInspect, type InspectResult } from '../../inspect.js';
import { formatInspectJson, formatInspectText } from '../../report/inspect.js';
import type { Backend } from '../../types.js';
import { MAX_THREADS } from '../../util/limits.js';
import { integer, oneOf, parseCommand, UsageError, type OptionSpec } from '../args.js';
import type { CliContext } from '../context.js';

export const INSPECT_HELP = `Usage: mother inspect <model> [options]

Show a model's files, parameter count, and per tensor: dtype, shape, excess kurtosis, NaN/Inf count.
<model> is a .safetensors file, a sharded index, or a folder holding one model; a folder of
several models is refused with their list (inspect one of them).

  --format F     text|json (default: text on a terminal, json otherwise). In json, kurtosis is
                 null where it is not a number; kurtosisComputed tells a constant tensor (true:
                 computed, NaN) from a dtype the kernels do not compute (false)
  --backend B    auto|cpu|cuda (default auto)
  --threads N    CPU worker threads, 1 to ${MAX_THREADS} (default: all cores)

Exit codes: 0 ok, 1 internal error, 2 bad input or usage, 130 cancelled.
`;

const OPTIONS: OptionSpec = {
  format: { type: 'string' },
  backend: { type: 'string' },
  threads: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

export interface InspectDeps {
  inspectModel?: (path: string, options: { backend?: Backend; threads?: number; signal?: AbortSignal }) => Promise<InspectResult>;
}

export async function inspectCommand(argv: string[], ctx: CliContext, deps: InspectDeps = {}): Promise<number> {
  const { values: v, positionals } = parseCommand('inspect', argv, OPTIONS, true);
  if (v.help === true) {
    ctx.stdout.write(INSPECT_HELP);
    return 0;
  }
  if (positionals.length !== 1)
    throw new UsageError(`inspect takes exactly one model but received ${positionals.length}`, "see 'mother inspect --help'");
  const format = v.format === undefined ? (ctx.stdout.isTTY ? 'text' : 'json') : oneOf('--format', v.format, ['text', 'json'] as const);
  const options: { backend?: Backend; threads?: number; signal?: AbortSignal } = { signal: ctx.signal };
  if (v.backend !== undefined) options.backend = oneOf<Backend>('--backend', v.backend, ['auto', 'cpu', 'cuda']);
  if (v.threads !== undefined) options.threads = integer('--threads', v.threads, 1, MAX_THREADS);
  const result = await (deps.inspectModel ?? realInspect)(resolve(ctx.cwd, positionals[0]!), options);
  ctx.stdout.write(format === 'json' ? formatInspectJson(result) : formatInspectText(result));
  return 0;
}
