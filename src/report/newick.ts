/**
 * Newick report: one tree per family, one per line, each `;`-terminated, internal nodes labelled
 * (every model is a real node, not just the leaves).
 *
 * Branch lengths: a child's branch is `1 - confidence` (0 = certain edge, 1 = a guess), rounded to
 * 4 decimals. It is a measure of doubt, not a weight distance; pass `branchLengths: false` to omit
 * them. Roots carry no branch length. A family whose members form several trees (should not happen)
 * prints one line per tree.
 */
import type { RecoverResult } from '../types.js';
import { buildForest, type TreeNode } from './forest.js';

/**
 * Newick label: unquoted when it has no blank, underscore (which Newick reads as a blank) or
 * punctuation ()[]':;, ; else single-quoted with inner quotes doubled.
 */
export function newickLabel(s: string): string {
  if (s.length > 0 && !/[\s_()[\]':;,]/.test(s)) return s;
  return `'${s.replace(/'/g, "''")}'`;
}

export interface NewickOptions {
  /** `:1-confidence` after each non-root node (default true). */
  branchLengths?: boolean;
}

function branch(node: TreeNode, withLengths: boolean, isRoot: boolean): string {
  if (!withLengths || isRoot || !Number.isFinite(node.model.confidence)) return '';
  const d = Math.min(1, Math.max(0, 1 - node.model.confidence));
  return ':' + Number(d.toFixed(4)).toString();
}

function subtree(root: TreeNode, withLengths: boolean): string {
  // Iterative post-order: a long fine-tuning chain must not exhaust the JS stack.
  const done = new Map<TreeNode, string>();
  const stack: Array<{ node: TreeNode; expanded: boolean }> = [{ node: root, expanded: false }];
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    if (!top.expanded && top.node.children.length) {
      top.expanded = true;
      for (let i = top.node.children.length - 1; i >= 0; i--) stack.push({ node: top.node.children[i]!, expanded: false });
      continue;
    }
    stack.pop();
    const n = top.node;
    const kids = n.children.map((c) => done.get(c)!);
    const inner = kids.length ? `(${kids.join(',')})` : '';
    done.set(n, inner + newickLabel(n.model.id) + branch(n, withLengths, n === root));
    for (const c of n.children) done.delete(c);
  }
  return done.get(root)!;
}

export function formatNewick(result: RecoverResult, options: NewickOptions = {}): string {
  const withLengths = options.branchLengths ?? true;
  const lines: string[] = [];
  // Newick holds trees, not DAGs: the primary parents only, and a comment says so.
  const extra = result.models.reduce((a, m) => a + (m.parents ?? []).filter((p) => p.id !== m.parent).length, 0);
  if (extra > 0) lines.push(`[primary tree only: ${extra} further parent edge(s) of merges are not shown; see the JSON report]`);
  const wrong = result.models.filter((m) => m.declared?.agrees === false).map((m) => m.id);
  if (wrong.length) lines.push(`[warning: ${wrong.length} model card claim(s) contradicted by the weights: ${wrong.join(', ').replace(/[[\]]/g, '')}]`);
  for (const forest of buildForest(result)) for (const root of forest.roots) lines.push(subtree(root, withLengths) + ';');
  return lines.join('\n') + (lines.length ? '\n' : '');
}
