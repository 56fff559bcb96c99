/** `mother recover <dir|model>...`: recover the trees and print (or --out) a report. */
import { extname, resolve } from 'node:path';
import { recover as realRecover } from '../../recover.js';
import { formatReport, REPORT_FORMATS, type ReportFormat } from '../../report/index.js';
import type { Backend, RecoverOptions, RecoverResult } from '../../types.js';
import { resolveOutputTarget, writeOutput, type OutputTarget } from '../../util/atomic-write.js';
import { MAX_THREADS } from '../../util/limits.js';
import { collectHtmlExtras } from '../../report/html-facts.js';
import { minConfidenceArg } from './report.js';
import { integer, nonEmpty, number, oneOf, parseCommand, UsageError, type OptionSpec } from '../args.js';
import { useColor, type CliContext } from '../context.js';
import { EXIT_CODES_HELP, EXIT_OK, EXIT_PARTIAL } from '../exit.js';
import { ProgressBar } from '../progress.js';
import { checkQueueName, checkRedisUrl } from '../../cluster/options.js';

export const RECOVER_HELP = `Usage: mother recover <dir|model>... [options]

Recover the family trees of the models found in the given folders or model files. A model given
twice (also as its folder and as its file) counts once, under the id it was first found with.

Output
  --format F        json|text|dot|mermaid|newick|html. Default: text when stdout is a terminal,
                    json otherwise; with --out, taken from the file extension
                    (.json .txt .dot/.gv .mmd/.mermaid .nwk/.newick .html); an unknown extension,
                    or a --format the extension contradicts, is a usage error
  --min-confidence X
                    mark calls below X, a number in [0, 1] (default 0.5)
  --out FILE        write the report to FILE instead of stdout ('-': stdout). A regular file
                    is replaced atomically (through a symbolic link, whose target is replaced);
                    a device or FIFO (/dev/null, a named pipe) is written in place. Checked
                    before any work: a missing or unwritable folder is exit 2 at once
  --ascii           text format: ASCII branches instead of box-drawing characters
  --quiet, -q       no progress bar, no notes and no warnings on stderr

Input
  --strict          fail at the first model that cannot be read (default: leave it out, name
                    it in a warning and in diagnostics.skippedModels, and exit 3)

Compute
  --backend B       auto|cpu|cuda (default auto: CUDA when available, else CPU, quietly)
  --device N        CUDA device index (default 0)
  --threads N       CPU worker threads, 1 to ${MAX_THREADS} (default: all cores)

Method
  --method M        mother|paper (default mother; paper = the MoTHer paper's recipe)
  --distance D      auto|ft|lora (default auto)
  --lambda X        weight of the kurtosis direction term (default 0.3); --method paper only
  --families K      number of families to form (default: inferred)
  --bootstrap N     tensor-bootstrap replicates behind each confidence (default 50; 0: margins)
  --seed N          seed of the bootstrap (default 0); equal seeds give equal results
  --include PAT     only tensors whose name matches PAT (glob-like; repeatable)
  --exclude PAT     skip tensors whose name matches PAT (repeatable)
  --square-only     only 2-D square tensors, as the paper does
  --min-elements N  skip tensors with fewer elements (default 1)

Scale (docs/scale.md)
  --scale S         auto|exact|sketch (default auto: groups over 512 models are sketched first)
  --cache FILE      SQLite cache of per-model sketches and per-family results, keyed by file
                    content: a second run, or one after adding models, reuses the work
  --redis URL       compute the scale path's units on 'mother worker --redis URL' processes
                    (BullMQ on Redis); the trees are built here, the result is the local one
  --queue NAME      the workers' queue (default mother); only with --redis

Formats: text draws each family as a tree ([low] marks confidence < --min-confidence); json has the
rows of a zoo truth.json (id, path, parent) plus confidence, family, kurtosis (schema:
docs/result.schema.json); dot and mermaid draw doubtful edges dashed; html is one self-contained
page (docs/report.md); newick writes one tree per family with branch length = 1 - confidence.
Warnings go to stderr, never into the report on stdout.
Colour only on a terminal, and never with NO_COLOR set. Ctrl-C cancels; a second Ctrl-C quits at once.
${EXIT_CODES_HELP}
`;

const OPTIONS: OptionSpec = {
  format: { type: 'string' },
  'min-confidence': { type: 'string' },
  out: { type: 'string', short: 'o' },
  ascii: { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
  strict: { type: 'boolean' },
  backend: { type: 'string' },
  device: { type: 'string' },
  threads: { type: 'string' },
  method: { type: 'string' },
  distance: { type: 'string' },
  lambda: { type: 'string' },
  families: { type: 'string' },
  bootstrap: { type: 'string' },
  seed: { type: 'string' },
  include: { type: 'string', multiple: true },
  exclude: { type: 'string', multiple: true },
  'square-only': { type: 'boolean' },
  'min-elements': { type: 'string' },
  scale: { type: 'string' },
  cache: { type: 'string' },
  redis: { type: 'string' },
  queue: { type: 'string' },
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
  const hint = "see 'mother recover --help'";
  if (!help && positionals.length === 0) throw new UsageError('recover needs at least one model file or folder', hint);
  const options: RecoverOptions = {};
  if (v.backend !== undefined) options.backend = oneOf<Backend>('--backend', v.backend, ['auto', 'cpu', 'cuda']);
  if (v.device !== undefined) options.device = integer('--device', v.device, 0);
  if (v.threads !== undefined) options.threads = integer('--threads', v.threads, 1, MAX_THREADS);
  if (v.method !== undefined) options.method = oneOf('--method', v.method, ['mother', 'paper'] as const);
  if (v.distance !== undefined) options.distance = oneOf('--distance', v.distance, ['auto', 'ft', 'lora'] as const);
  if (v.lambda !== undefined) options.lambda = number('--lambda', v.lambda, 0);
  if (options.lambda !== undefined && options.method !== 'paper')
    throw new UsageError(`--lambda has an effect only with --method paper (method is ${options.method ?? 'mother'})`, hint);
  if (v.families !== undefined) options.families = integer('--families', v.families, 1);
  if (v.bootstrap !== undefined) options.bootstrap = integer('--bootstrap', v.bootstrap, 0, 100_000);
  if (v.seed !== undefined) options.seed = integer('--seed', v.seed, Number.MIN_SAFE_INTEGER);
  if (v['min-elements'] !== undefined) options.minElements = integer('--min-elements', v['min-elements'], 1);
  if (v.include !== undefined) options.include = (v.include as string[]).map((p) => nonEmpty('--include', p));
  if (v.exclude !== undefined) options.exclude = (v.exclude as string[]).map((p) => nonEmpty('--exclude', p));
  if (v['square-only'] === true) options.squareOnly = true;
  if (v.strict === true) options.strict = true;
  if (v.scale !== undefined) options.scale = oneOf('--scale', v.scale, ['auto', 'exact', 'sketch'] as const);
  if (v.cache !== undefined) options.cache = nonEmpty('--cache', v.cache as string);
  if (v.queue !== undefined && v.redis === undefined) throw new UsageError('--queue has an effect only with --redis', hint);
  if (v.redis !== undefined) options.cluster = clusterArgs(v.redis, v.queue);
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

/** --redis URL [--queue NAME]: checked here so that a bad URL is a usage error (exit 2) at once. */
function clusterArgs(redis: unknown, queue: unknown): NonNullable<RecoverOptions['cluster']> {
  try {
    return { redis: checkRedisUrl(nonEmpty('--redis', redis), '--redis'), ...(queue !== undefined ? { queue: checkQueueName(queue, '--queue') } : {}) };
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError((err as Error).message, "see 'mother recover --help'");
  }
}

const EXTENSION_FORMATS: Record<string, string> = {
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

/** The format a file extension names, when the report layer offers that format. */
function extensionFormat(ext: string): ReportFormat | undefined {
  const f = EXTENSION_FORMATS[ext.toLowerCase()];
  return f !== undefined && (REPORT_FORMATS as readonly string[]).includes(f) ? (f as ReportFormat) : undefined;
}

/**
 * --out's extension names the format (an unknown one is a usage error; no extension, as with
 * /dev/stdout or a FIFO, names none); --format must agree with it. Without either: text for a
 * person at a terminal, json for a pipe or file, which is what a script wants to parse.
 */
export function chooseFormat(args: Pick<RecoverArgs, 'format' | 'out'>, stdoutIsTTY: boolean): ReportFormat {
  const hint = "see 'mother recover --help'";
  if (args.out !== undefined && args.out !== '-') {
    const ext = extname(args.out);
    const byExt = ext ? extensionFormat(ext) : undefined;
    if (ext && !byExt) {
      const known = Object.keys(EXTENSION_FORMATS).filter((e) => extensionFormat(e)).join(' ');
      throw new UsageError(`--out ${args.out}: unknown report extension '${ext}' (known: ${known})`, 'choose a known extension or none');
    }
    if (byExt && args.format && args.format !== byExt)
      throw new UsageError(`--format ${args.format} contradicts the extension of --out ${args.out} (${ext} is ${byExt})`, hint);
    if (byExt) return byExt;
  }
  if (args.format) return args.format;
  if (args.out !== undefined && args.out !== '-') return 'json';
  return stdoutIsTTY ? 'text' : 'json';
}

/** Refuses an --out that would overwrite one of the inputs: inputs are never opened for writing. */
function checkOut(paths: string[], inputs: string[]): void {
  for (const p of paths)
    if (inputs.includes(p) || /\.safetensors$/i.test(p))
      throw new UsageError(`refusing to write the report over a model file: ${p}`, 'choose another --out');
}

export interface RecoverDeps {
  recover?: (inputs: string[], options: RecoverOptions) => Promise<RecoverResult>;
}

/** Text reports carry no warnings: those go to stderr. */
function withoutWarnings(result: RecoverResult): RecoverResult {
  return { ...result, diagnostics: { ...result.diagnostics, warnings: [] } };
}

export async function recoverCommand(argv: string[], ctx: CliContext, deps: RecoverDeps = {}): Promise<number> {
  const args = parseRecoverArgs(argv);
  if (args.help) {
    ctx.stdout.write(RECOVER_HELP);
    return EXIT_OK;
  }
  const inputs = args.inputs.map((p) => resolve(ctx.cwd, p));
  // Everything about the output is checked before the work: a bad --out fails in a moment.
  const toStdout = args.out === undefined || args.out === '-';
  if (!toStdout) checkOut([resolve(ctx.cwd, args.out!)], inputs);
  const format = chooseFormat(args, Boolean(ctx.stdout.isTTY));
  const target: OutputTarget = toStdout ? { kind: 'stdout' } : await resolveOutputTarget(resolve(ctx.cwd, args.out!));
  if (target.kind !== 'stdout') checkOut([target.path], inputs); // a symbolic link to a model file

  const bar = !args.quiet && ctx.stderr.isTTY ? new ProgressBar(ctx.stderr, { now: ctx.now }) : undefined;
  const options: RecoverOptions = { ...args.options, signal: ctx.signal };
  if (bar) options.onProgress = (ev) => bar.update(ev);
  let result: RecoverResult;
  try {
    result = await (deps.recover ?? realRecover)(inputs, options);
  } finally {
    bar?.clear();
  }

  const color = toStdout && format === 'text' && useColor(ctx);
  const html = format === 'html' ? await collectHtmlExtras(result, { ...args.options, signal: ctx.signal }) : undefined;
  const report = formatReport(format === 'text' ? withoutWarnings(result) : result, format, { ascii: args.ascii, color, minConfidence: args.minConfidence, html });
  await writeOutput(target, report, ctx.stdout);
  if (!args.quiet) {
    for (const w of result.diagnostics.warnings) ctx.stderr.write(`mother: warning: ${w.replace(/[\x00-\x1f\x7f-\x9f]/g, '?')}\n`);
    if (target.kind !== 'stdout')
      ctx.stderr.write(`wrote ${format} report to ${target.given} (${result.models.length} models, ${result.families.length} families)\n`);
  }
  return result.diagnostics.skippedModels?.length ? EXIT_PARTIAL : EXIT_OK;
}
