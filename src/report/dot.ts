/**
 * Graphviz DOT report: one cluster per family, edges parent -> child labelled with confidence,
 * doubtful edges dashed. Render with `dot -Tsvg tree.dot -o tree.svg`.
 */
import type { RecoverResult } from '../types.js';
import { buildForest, formatConfidence, LOW_CONFIDENCE, walk } from './forest.js';

/**
 * A DOT double-quoted string. Backslash is escaped too: in labels DOT reads `\n`, `\l`, `\N` ... as
 * escapes, and a trailing backslash would swallow the closing quote. Newlines become `\n`.
 */
export function dotQuote(s: string): string {
  return '"' + s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\r\n|\r|\n/g, '\\n') + '"';
}

export interface DotOptions {
  /** Edges below this confidence are dashed (default 0.5). */
  lowConfidence?: number;
}

export function formatDot(result: RecoverResult, options: DotOptions = {}): string {
  const low = options.lowConfidence ?? LOW_CONFIDENCE;
  const out: string[] = ['digraph mother {', '  rankdir=TB;', '  node [shape=box, fontname="Helvetica"];', '  edge [fontname="Helvetica", fontsize=10];'];
  const edges: string[] = [];
  for (const forest of buildForest(result)) {
    const f = forest.family;
    const label = `family ${forest.index} (${forest.members.length} model${forest.members.length === 1 ? '' : 's'}${f ? `, ${f.distance}` : ''})`;
    out.push(`  subgraph cluster_${forest.index} {`, `    label=${dotQuote(label)};`);
    for (const root of forest.roots) {
      walk(root, (node) => {
        const m = node.model;
        // Node name and label are the same escaped id: the label is explicit so that Graphviz never
        // re-reads the name through its escString rules.
        const attrs = [`label=${dotQuote(m.id)}`];
        if (m.parent === null) attrs.push('peripheries=2');
        out.push(`    ${dotQuote(m.id)} [${attrs.join(', ')}];`);
        for (const c of node.children) {
          const conf = c.model.confidence;
          const style = conf >= low ? '' : ', style=dashed';
          edges.push(`  ${dotQuote(m.id)} -> ${dotQuote(c.model.id)} [label=${dotQuote(formatConfidence(conf))}${style}];`);
        }
      });
    }
    out.push('  }');
  }
  out.push(...edges, '}');
  return out.join('\n') + '\n';
}
