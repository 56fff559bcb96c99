/**
 * Graphviz DOT report: one cluster per family, edges parent -> child labelled with confidence,
 * doubtful edges dashed. Render with `dot -Tsvg tree.dot -o tree.svg`.
 */
import type { RecoverResult } from '../types.js';
import { buildForest, confidenceThreshold, formatConfidence, isLowConfidence, walk } from './forest.js';
import { relationTag } from './text.js';

/**
 * A DOT double-quoted string. Backslash is escaped too: in labels DOT reads `\n`, `\l`, `\N` ... as
 * escapes, and a trailing backslash would swallow the closing quote. Newlines become `\n`.
 */
export function dotQuote(s: string): string {
  return '"' + s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\r\n|\r|\n/g, '\\n') + '"';
}

export interface DotOptions {
  /** Edges below this confidence are dashed, and a legend says so (default 0.5). */
  minConfidence?: number;
  /** Older name of `minConfidence`. */
  lowConfidence?: number;
}

export function formatDot(result: RecoverResult, options: DotOptions = {}): string {
  const low = confidenceThreshold(options);
  const out: string[] = ['digraph mother {', '  rankdir=TB;', '  node [shape=box, fontname="Helvetica"];', '  edge [fontname="Helvetica", fontsize=10];'];
  const edges: string[] = [];
  let lowEdges = 0;
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
        if (m.declared?.agrees === false) attrs.push('color=red', `tooltip=${dotQuote(`card claim contradicted: ${m.declared.note}`)}`);
        // Parents other than the primary one (a merge's), dotted, with their relation and weight.
        for (const p of m.parents ?? [])
          if (p.id !== m.parent)
            edges.push(`  ${dotQuote(p.id)} -> ${dotQuote(m.id)} [label=${dotQuote(`${p.relation}${p.weight !== undefined ? ` ${p.weight.toFixed(2)}` : ''}`)}, style=dotted, constraint=false];`);
        out.push(`    ${dotQuote(m.id)} [${attrs.join(', ')}];`);
        for (const c of node.children) {
          const conf = c.model.confidence;
          const doubtful = isLowConfidence(conf, low);
          if (doubtful) lowEdges++;
          const style = doubtful ? ', style=dashed' : '';
          const rel = relationTag(c.model);
          edges.push(`  ${dotQuote(m.id)} -> ${dotQuote(c.model.id)} [label=${dotQuote(rel ? `${rel} ${formatConfidence(conf)}` : formatConfidence(conf))}${style}];`);
        }
      });
    }
    out.push('  }');
  }
  if (lowEdges > 0) {
    // A legend box, so the dashes explain themselves when the graph is rendered.
    const text = `dashed edge: confidence below ${formatConfidence(low)} (${lowEdges} edge${lowEdges === 1 ? '' : 's'})`;
    out.push('  subgraph cluster_legend {', '    label="legend";', `    legend [shape=note, label=${dotQuote(text)}];`, '  }');
  }
  const wrong = result.models.filter((m) => m.declared?.agrees === false);
  for (const m of wrong) out.push(`  // warning: card claim of ${m.id.replace(/[\r\n]/g, ' ')} contradicted: ${m.declared!.note.replace(/[\r\n]/g, ' ')}`);
  out.push(...edges, '}');
  return out.join('\n') + '\n';
}
