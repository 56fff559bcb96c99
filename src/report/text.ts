/**
 * Terminal report: each family drawn as a tree, one model per line, `id  (conf 0.93)`.
 * Box-drawing by default, ASCII on request (old consoles, logs); ANSI colour only when asked, the CLI
 * asks only when stdout is a TTY and NO_COLOR is unset.
 */
import type { Family, RecoverResult } from '../types.js';
import { buildForest, confidenceThreshold, formatConfidence, isLowConfidence, walk, type TreeNode } from './forest.js';

export interface TextOptions {
  /** ASCII branches (|-- `--) instead of box-drawing (├── └──). */
  ascii?: boolean;
  /** ANSI colours. */
  color?: boolean;
  /** Calls (edges and root calls) below this confidence are marked `[low]`, with a legend line (default 0.5). */
  minConfidence?: number;
  /** Older name of `minConfidence`. */
  lowConfidence?: number;
  /** Summary line with backend, tensors and time, plus warnings (default true). */
  diagnostics?: boolean;
}

const BOX = { tee: '├── ', last: '└── ', pipe: '│   ', blank: '    ', arrow: '→' };
const ASCII = { tee: '|-- ', last: '`-- ', pipe: '|   ', blank: '    ', arrow: '->' };

type Paint = (s: string) => string;
function painter(on: boolean, open: number, close: number): Paint {
  return on ? (s) => `\x1b[${open}m${s}\x1b[${close}m` : (s) => s;
}

/**
 * Ids come from file names: escape control characters so an id cannot break the layout or
 * smuggle terminal escape sequences.
 */
export function printable(s: string): string {
  return s.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function plural(n: number, word: string, many = `${word}s`): string {
  return `${n} ${n === 1 ? word : many}`;
}

function describeDirection(d: Family['direction'], arrow: string): string {
  if (d === 'kurtosis-falls') return `kurtosis falls parent${arrow}child`;
  if (d === 'kurtosis-rises') return `kurtosis rises parent${arrow}child`;
  return 'direction mixed';
}

/** The relation to the primary parent when it is not a plain fine-tune ('merge 0.50', 'cast', ...). */
export function relationTag(m: RecoverResult['models'][number]): string {
  const p = m.parents?.find((x) => x.id === m.parent);
  if (!p || p.relation === 'finetune') return '';
  return p.weight !== undefined ? `${p.relation} ${p.weight.toFixed(2)}` : p.relation;
}

export function formatText(result: RecoverResult, options: TextOptions = {}): string {
  const g = options.ascii ? ASCII : BOX;
  const color = options.color ?? false;
  const bold = painter(color, 1, 22);
  const dim = painter(color, 2, 22);
  const warn = painter(color, 33, 39);
  const low = confidenceThreshold(options);
  let lowCalls = 0;
  const lines: string[] = [];

  const forests = buildForest(result);
  forests.forEach((forest, fi) => {
    if (fi > 0) lines.push('');
    const f = forest.family;
    const parts = [plural(forest.members.length, 'model')];
    if (f) parts.push(`evidence ${f.evidence}`, `distance ${f.distance}`, describeDirection(f.direction, g.arrow));
    lines.push(bold(`Family ${forest.index}`) + ` (${parts.join(', ')})`);

    const label = (node: TreeNode): string => {
      const m = node.model;
      const isRoot = m.parent === null;
      const conf = `conf ${formatConfidence(m.confidence)}`;
      const rel = relationTag(m);
      let s = printable(m.id) + '  ' + dim(`(${isRoot ? 'root, ' : ''}${rel ? `${rel}, ` : ''}${conf})`);
      const extra = (m.parents ?? []).filter((p) => p.id !== m.parent);
      if (extra.length) s += ' ' + dim(`[also ${extra.map((p) => `${p.relation} parent ${printable(p.id)}${p.weight !== undefined ? ` ${p.weight.toFixed(2)}` : ''}`).join(', ')}]`);
      if (m.declared?.agrees === false) s += ' ' + warn('[card claim contradicted]');
      if (isLowConfidence(m.confidence, low)) {
        s += ' ' + warn('[low]');
        lowCalls++;
      }
      if (node.detached) s += ' ' + warn(`[parent ${printable(m.parent!)} not in this tree]`);
      return s;
    };
    for (const root of forest.roots) {
      walk(root, (node, depth, lastFlags) => {
        let prefix = '';
        for (let i = 1; i < depth; i++) prefix += lastFlags[i - 1] ? g.blank : g.pipe;
        if (depth > 0) prefix += lastFlags[depth - 1] ? g.last : g.tee;
        lines.push(prefix + label(node));
      });
    }
  });

  if (lowCalls > 0) {
    lines.push('', dim(`[low]: ${plural(lowCalls, 'call')} with confidence below ${formatConfidence(low)} (--min-confidence)`));
  }

  if (options.diagnostics ?? true) {
    const d = result.diagnostics;
    if (lines.length) lines.push('');
    const skipped = d.tensorsSkipped.length ? `, ${d.tensorsSkipped.length} skipped` : '';
    const c = result.cluster;
    const cluster = c ? `; ${plural(c.completed, 'unit')} on ${plural(Object.keys(c.workers).length, 'cluster worker')}${c.retries ? `, ${plural(c.retries, 'retry', 'retries')}` : ''}` : '';
    lines.push(
      dim(
        `${plural(result.models.length, 'model')}, ${plural(forests.length, 'family', 'families')}; ` +
          `${d.backend} (${printable(d.device)}), ${plural(d.threads, 'thread')}; ` +
          `${plural(d.tensorsUsed, 'tensor')} used${skipped}; ${d.seconds.total.toFixed(2)} s${cluster}`,
      ),
    );
    for (const w of d.warnings) lines.push(warn(`warning: ${printable(w)}`));
  }
  return lines.join('\n') + '\n';
}
