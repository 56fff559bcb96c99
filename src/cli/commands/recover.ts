/** `mother recover <dir|model>...`: recover the trees and print (or --out) a report. */
import { extname, resolve } from 'node:path';
import { recover as realRecover } from '../../recover.js';
import { formatReport, REPORT_FORMATS, type ReportFormat } from '../../report/index.js';
import type { Backend, RecoverOptions, RecoverResult } from '../../types.js';
import { writeFileAtomic } from '../../util/atomic-write.js';
import { collectHtmlExtras } from '../../report/html-facts.js';
import { minConfidenceArg } from './report.js';
import { integer, nonEmpty, number, oneOf, parseCommand, UsageError, type OptionSpec } from '../args.js';
import { useColor, type CliContext } from '../context.js';
import { ProgressBar } from '../progress.js';

export const RECOVER_HELP = `Usage: mother recover <dir|model>... [options]

Recover the family trees of the models found in the given folders or model files.

Output
  --format F        json|text|dot|mermaid|newick|html. Default: text when stdout is a terminal,
                    json otherwise; with --out, taken from the file extension
                    (.json .txt .dot/.gv .mmd .nwk/.newick .html), else json
  --min-confidence X
                    mark calls below X, a number in [0, 1] (default 0.5)
  --out FILE        write the report to FILE (atomically) instead of stdout
  --ascii           text format: ASCII branches instead of box-drawing characters
  --quiet, -q       no progress bar and no notes on stderr

Compute
  --backend B       auto|cpu|cuda (default auto: CUDA when available, else CPU)
  --device N        CUDA device index (default 0)
  --threads N       CPU worker threads (default: all cores)

Method
  --method M        mother|paper (default mother; paper = the MoTHer paper's recipe)
  --distance D      auto|ft|lora (default auto)
  --lambda X        weight of the kurtosis direction term (paper: 0.3)
  --families K      number of families to form (default: inferred)
  --include PAT     only tensors whose name matches PAT (glob-like; repeatable)
  --exclude PAT     skip tensors whose name matches PAT (repeatable)
  --square-only     only 2-D square tensors, as the paper does
  --min-elements N  skip tensors with fewer elements (default 1)

Formats: text draws each family as a tree ([low] marks confidence < --min-confidence); json has the
rows of a zoo truth.json (id, path, parent) plus confidence, family, kurtosis; dot and mermaid draw
doubtful edges dashed; html is one self-contained page (docs/report.md); newick writes one tree
per family with branch length = 1 - confidence.
Colour only on a terminal, and never with NO_COLOR set. Ctrl-C cancels; a second Ctrl-C quits at once.
Exit codes: 0 ok, 1 internal error, 2 bad input or usage, 130 cancelled.
`;

const OPTIONS: OptionSpec = {
  format: { type: 'string' },
  'min-confidence': { type: 'string' },
  out: { type: 'string', short: 'o' },
  ascii: { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
  backend: { type: 'string' },
  device: { type: 'string' },
  threads: { type: 'string' },
  method: { type: 'string' },
  distance: { type: 'string' },
  lambda: { type: 'string' },
  families: { type: 'string' },
  include: { type: 'string', multiple: true },
  exclude: { type: 'string', multiple: true },
  'square-only': { type: 'boolean' },
  'min-elements': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

export interface RecoverArgs {
  inputs: string[];
  options: RecoverOptions;
  /** Undefined: chosen from --out or the terminal (see chooseFormat). */
  format: ReportFormat | undefined;
  minConfidence?: number;
  out: string | undefined;
  ascii: boolean;
  quiet: boolean;
  help: boolean;
}

export function parseRecoverArgs(argv: string[]): RecoverArgs {
  const { values: v, positionals } = parseCommand('recover', argv, OPTIONS, true);
  const help = v.help === true;
  if (!help && positionals.length === 0) throw new UsageError('recover needs at least one model file or folder', "see 'mother recover --help'");
  const options: RecoverOptions = {};
  if (v.backend !== undefined) options.backend = oneOf<Backend>('--backend', v.backend, ['auto', 'cpu', 'cuda']);
  if (v.device !== undefined) options.device = integer('--device', v.device, 0);
  if (v.threads !== undefined) options.threads = integer('--threads', v.threads, 1, 4096);
  if (v.method !== undefined) options.method = oneOf('--method', v.method, ['mother', 'paper'] as const);
  if (v.distance !== undefined) options.distance = oneOf('--distance', v.distance, ['auto', 'ft', 'lora'] as const);
  if (v.lambda !== undefined) options.lambda = number('--lambda', v.lambda, 0);
  if (v.families !== undefined) options.families = integer('--families', v.families, 1);
  if (v['min-elements'] !== undefined) options.minElements = integer('--min-elements', v['min-elements'], 1);
  if (v.include !== undefined) options.include = (v.include as string[]).map((p) => nonEmpty('--include', p));
  if (v.exclude !== undefined) options.exclude = (v.exclude as string[]).map((p) => nonEmpty('--exclude', p));
  if (v['square-only'] === true) options.squareOnly = true;
  return {
    inputs: positionals,
    options,
    format: v.format === undefined ? undefined : oneOf('--format', v.format, REPORT_FORMATS),
    ...(v['min-confidence'] === undefined ? {} : { minConfidence: minConfidenceArg(v['min-confidence']) }),
    out: v.out === undefined ? undefined : nonEmpty('--out', v.out),
    ascii: v.ascii === true,
    quiet: v.quiet === true,
    help,
  };
}

const EXTENSION_FORMATS: Record<string, ReportFormat> = {
  '.json': 'json',
  '.txt': 'text',
  '.dot': 'dot',
  '.gv': 'dot',
  '.mmd': 'mermaid',
  '.mermaid': 'mermaid',
  '.nwk': 'newick',
  '.newick': 'newick',
  '.html': 'html',
  '.htm': 'html',
};

/**
 * --format wins; else --out's extension (json when unknown); else text for a person at a terminal
 * and json for a pipe or file, which is what a script wants to parse.
 */
export function chooseFormat(args: Pick<RecoverArgs, 'format' | 'out'>, stdoutIsTTY: boolean): ReportFormat {
  if (args.format) return args.format;
  if (args.out !== undefined) return EXTENSION_FORMATS[extname(args.out).toLowerCase()] ?? 'json';
  return stdoutIsTTY ? 'text' : 'json';
}

/** Refuses an --out that would overwrite one of the inputs: inputs are never opened for writing. */
function checkOut(out: string, inputs: string[]): void {
  if (inputs.includes(out) || /\.safetensors$/i.test(out))
    throw new UsageError(`refusing to write the report over a model file: ${out}`, 'choose another --out');
}

export interface RecoverDeps {
  recover?: (inputs: string[], options: RecoverOptions) => Promise<RecoverResult>;
}

export async function recoverCommand(argv: string[], ctx: CliContext, deps: RecoverDeps = {}): Promise<number> {
  const args = parseRecoverArgs(argv);
  if (args.help) {
    ctx.stdout.write(RECOVER_HELP);
    return 0;
  }
  const inputs = args.inputs.map((p) => resolve(ctx.cwd, p));
  const out = args.out === undefined ? undefined : resolve(ctx.cwd, args.out);
  if (out !== undefined) checkOut(out, inputs);
  const format = chooseFormat(args, Boolean(ctx.stdout.isTTY));

  const bar = !args.quiet && ctx.stderr.isTTY ? new ProgressBar(ctx.stderr, { now: ctx.now }) : undefined;
  const options: RecoverOptions = { ...args.options, signal: ctx.signal };
  if (bar) options.onProgress = (ev) => bar.update(ev);
  let result: RecoverResult;
  try {
    result = await (deps.recover ?? realRecover)(inputs, options);
  } finally {
    bar?.clear();
  }

  const color = out === undefined && format === 'text' && useColor(ctx);
  const html = format === 'html' ? await collectHtmlExtras(result, { ...args.options, signal: ctx.signal }) : undefined;
  const report = formatReport(result, format, { ascii: args.ascii, color, minConfidence: args.minConfidence, html });
  if (out === undefined) {
    ctx.stdout.write(report);
  } else {
    await writeFileAtomic(out, report);
    if (!args.quiet)
      ctx.stderr.write(`wrote ${format} report to ${out} (${result.models.length} models, ${result.families.length} families)\n`);
  }
  return 0;
}
