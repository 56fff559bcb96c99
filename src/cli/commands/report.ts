/**
 * `mother report result.json [--out report.html]`: turns a saved JSON result (`mother recover
 * --format json`) into the self-contained HTML page (or any other format), without recomputing the
 * trees. Model files that are still where the result says are read for dtype, format, declared base
 * and the distance heatmaps; `--no-read` skips that.
 */
import { dirname, extname, isAbsolute, resolve } from 'node:path';
import { InputError } from '../../errors.js';
import { collectHtmlExtras } from '../../report/html-facts.js';
import { formatReport, REPORT_FORMATS, type ReportFormat } from '../../report/index.js';
import type { RecoverResult } from '../../types.js';
import { writeFileAtomic } from '../../util/atomic-write.js';
import { nonEmpty, oneOf, parseCommand, UsageError, type OptionSpec } from '../args.js';
import { useColor, type CliContext } from '../context.js';
import { readJsonFile } from './eval.js';

export const REPORT_HELP = `Usage: mother report <result.json> [options]

Turn a saved JSON result (mother recover --format json) into a report, by default the
self-contained HTML page (one file, no network; open it from disk in any browser).

  --format F            html|text|dot|mermaid|newick|json (default html; with --out, from the
                        extension: .html .htm .txt .dot/.gv .mmd .nwk .json)
  --out FILE            write to FILE (atomically) instead of stdout
  --min-confidence X    mark calls below X, a number in [0, 1] (default 0.5)
  --no-read             html: do not read the model files (no dtype, format, declared base, heatmaps)
  --quiet, -q           no note on stderr
`;

const OPTIONS: OptionSpec = {
  format: { type: 'string' },
  out: { type: 'string', short: 'o' },
  'min-confidence': { type: 'string' },
  'no-read': { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
  help: { type: 'boolean', short: 'h' },
};

/** `--min-confidence`: a plain decimal number in [0, 1]; anything else is a usage error (exit 2). */
export function minConfidenceArg(value: unknown, flag = '--min-confidence'): number {
  const s = typeof value === 'string' ? value.trim() : '';
  const n = /^[+]?(\d+\.?\d*|\.\d+)$/.test(s) ? Number(s) : NaN;
  if (!(n >= 0 && n <= 1)) throw new UsageError(`Expected a number in [0, 1] for ${flag} but received ${typeof value === 'string' ? `'${value}'` : String(value)}`);
  return n;
}

const EXTENSIONS: Record<string, ReportFormat> = {
  '.html': 'html', '.htm': 'html', '.json': 'json', '.txt': 'text', '.dot': 'dot', '.gv': 'dot',
  '.mmd': 'mermaid', '.mermaid': 'mermaid', '.nwk': 'newick', '.newick': 'newick',
};

/** A JSON report read back into a RecoverResult (null kurtosis and confidence become NaN). */
export function resultFromJson(json: unknown, file: string): RecoverResult {
  const o = json as Partial<Record<'models' | 'families' | 'diagnostics', unknown>> | null;
  if (!o || !Array.isArray(o.models)) throw new InputError('E_INPUT_FORMAT', 'result has no "models" array', { file });
  const num = (v: unknown) => (typeof v === 'number' ? v : NaN);
  const models = o.models.map((row, i) => {
    const r = row as Record<string, unknown> | null;
    if (!r || typeof r.id !== 'string') throw new InputError('E_INPUT_FORMAT', `result: models[${i}] has no string "id"`, { file });
    if (r.parent !== null && r.parent !== undefined && typeof r.parent !== 'string')
      throw new InputError('E_INPUT_FORMAT', `result: model '${r.id}' has a "parent" that is neither a string nor null`, { file });
    const m: RecoverResult['models'][number] = {
      id: r.id, path: typeof r.path === 'string' ? r.path : '', parent: (r.parent as string | null | undefined) ?? null,
      confidence: num(r.confidence), family: Number.isInteger(r.family) ? (r.family as number) : 0, kurtosis: num(r.kurtosis),
    };
    const ru = r.runnerUp as { parent?: unknown; confidence?: unknown } | undefined;
    if (ru && typeof ru === 'object') m.runnerUp = { parent: typeof ru.parent === 'string' ? ru.parent : null, confidence: num(ru.confidence) };
    return m;
  });
  const families = (Array.isArray(o.families) ? o.families : []) as RecoverResult['families'];
  const d = (o.diagnostics ?? {}) as Partial<RecoverResult['diagnostics']>;
  const diagnostics: RecoverResult['diagnostics'] = {
    backend: d.backend ?? 'cpu', device: d.device ?? '', threads: d.threads ?? 0, tensorsUsed: d.tensorsUsed ?? 0,
    tensorsSkipped: Array.isArray(d.tensorsSkipped) ? d.tensorsSkipped : [], bytesRead: d.bytesRead ?? 0,
    seconds: { total: NaN, headers: NaN, statistics: NaN, graph: NaN, ...(d.seconds ?? {}) },
    warnings: Array.isArray(d.warnings) ? d.warnings : [],
    skippedModels: Array.isArray(d.skippedModels) ? d.skippedModels : [],
    backendFallback: typeof d.backendFallback === 'string' ? d.backendFallback : null,
  };
  // Keep fields this version does not know (e.g. skippedModels) for the page to show.
  return { ...(o as object), models, families, diagnostics } as RecoverResult;
}

export async function reportCommand(argv: string[], ctx: CliContext): Promise<number> {
  const { values: v, positionals } = parseCommand('report', argv, OPTIONS, true);
  if (v.help === true) {
    ctx.stdout.write(REPORT_HELP);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError('report needs exactly one result.json', "see 'mother report --help'");
  const minConfidence = v['min-confidence'] === undefined ? undefined : minConfidenceArg(v['min-confidence']);
  const outArg = v.out === undefined ? undefined : nonEmpty('--out', v.out);
  const format: ReportFormat =
    v.format !== undefined ? oneOf('--format', v.format, REPORT_FORMATS) : outArg !== undefined ? (EXTENSIONS[extname(outArg).toLowerCase()] ?? 'html') : 'html';
  const file = resolve(ctx.cwd, positionals[0]!);
  const out = outArg === undefined ? undefined : resolve(ctx.cwd, outArg);
  if (out === file) throw new UsageError(`refusing to write the report over its input: ${out}`, 'choose another --out');
  const result = resultFromJson(await readJsonFile(file, 'result file', ctx.signal), file);
  // Relative model paths are read relative to the result file.
  const located = { ...result, models: result.models.map((m) => (m.path && !isAbsolute(m.path) ? { ...m, path: resolve(dirname(file), m.path) } : m)) };
  const html = format === 'html' && v['no-read'] !== true ? await collectHtmlExtras(located, { signal: ctx.signal }) : undefined;
  const color = out === undefined && format === 'text' && useColor(ctx);
  const report = formatReport(result, format, { minConfidence, color, html });
  if (out === undefined) ctx.stdout.write(report);
  else {
    await writeFileAtomic(out, report);
    if (v.quiet !== true) ctx.stderr.write(`wrote ${format} report to ${out} (${result.models.length} models, ${result.families.length} families)\n`);
  }
  return 0;
}
