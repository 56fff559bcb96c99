/**
 * Mermaid flowchart report (`graph TD`), e.g. for a Markdown page. Mermaid node names must be plain
 * identifiers, so each id gets a sanitised, unique node name and the real id is shown as the label.
 */
import type { RecoverResult } from '../types.js';
import { buildForest, confidenceThreshold, formatConfidence, isLowConfidence, walk } from './forest.js';
import { relationTag } from './text.js';

/** Mermaid label text inside ["..."]: quotes and markup characters as Mermaid entity codes. */
export function mermaidLabel(s: string): string {
  return s
    .replace(/#/g, '#35;')
    .replace(/"/g, '#quot;')
    .replace(/</g, '#lt;')
    .replace(/>/g, '#gt;')
    .replace(/[\r\n]+/g, ' ');
}

/**
 * Safe node names: `m_` + id with every character outside [A-Za-z0-9_] turned into `_` (the prefix
 * keeps names off Mermaid keywords such as `end`); clashes get `_2`, `_3`, ...
 */
export function mermaidNames(ids: string[]): Map<string, string> {
  const names = new Map<string, string>();
  const used = new Set<string>();
  for (const id of ids) {
    if (names.has(id)) continue;
    const base = 'm_' + id.replace(/[^A-Za-z0-9_]/g, '_');
    let name = base;
    for (let k = 2; used.has(name); k++) name = `${base}_${k}`;
    used.add(name);
    names.set(id, name);
  }
  return names;
}

export interface MermaidOptions {
  /** Edges below this confidence are dotted (`-.->`), and a comment says so (default 0.5). */
  minConfidence?: number;
  /** Older name of `minConfidence`. */
  lowConfidence?: number;
}

export function formatMermaid(result: RecoverResult, options: MermaidOptions = {}): string {
  const low = confidenceThreshold(options);
  let lowEdges = 0;
  const names = mermaidNames(result.models.map((m) => m.id));
  const out: string[] = ['graph TD'];
  const edges: string[] = [];
  for (const forest of buildForest(result)) {
    const f = forest.family;
    const n = forest.members.length;
    const title = `family ${forest.index} (${n} model${n === 1 ? '' : 's'}${f ? `, ${f.distance}` : ''})`;
    out.push(`  subgraph family_${forest.index}["${mermaidLabel(title)}"]`);
    for (const root of forest.roots) {
      walk(root, (node) => {
        const m = node.model;
        const name = names.get(m.id)!;
        // Roots get the rounded shape so they stand out without colour.
        out.push(m.parent === null ? `    ${name}(["${mermaidLabel(m.id)}"])` : `    ${name}["${mermaidLabel(m.id)}"]`);
        for (const p of m.parents ?? [])
          if (p.id !== m.parent && names.has(p.id))
            edges.push(`  ${names.get(p.id)!} -.->|${mermaidLabel(`${p.relation}${p.weight !== undefined ? ` ${p.weight.toFixed(2)}` : ''}`)}| ${name}`);
        for (const c of node.children) {
          const conf = c.model.confidence;
          const doubtful = isLowConfidence(conf, low);
          if (doubtful) lowEdges++;
          const arrow = doubtful ? '-.->' : '-->';
          const rel = relationTag(c.model);
          edges.push(`  ${name} ${arrow}|${rel ? `${mermaidLabel(rel)} ` : ''}${formatConfidence(conf)}| ${names.get(c.model.id)!}`);
        }
      });
    }
    out.push('  end');
  }
  out.push(...edges);
  for (const m of result.models)
    if (m.declared?.agrees === false) out.push(`  %% warning: card claim of ${mermaidLabel(m.id)} contradicted: ${mermaidLabel(m.declared.note)}`);
  if (lowEdges > 0) out.push(`  %% dotted links: confidence below ${formatConfidence(low)} (${lowEdges} link${lowEdges === 1 ? '' : 's'})`);
  return out.join('\n') + '\n';
}
