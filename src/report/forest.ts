/**
 * The shape every report draws: families, each a forest of parent -> children edges.
 * Built defensively, so a malformed result (unknown parent, parent in another family, a cycle)
 * still prints every model exactly once instead of looping or dropping rows.
 */
import { InputError } from '../errors.js';
import type { Family, RecoveredModel, RecoverResult } from '../types.js';

export interface TreeNode {
  model: RecoveredModel;
  children: TreeNode[];
  /** Drawn as a root although its recorded parent is not null (parent unknown, elsewhere, or cyclic). */
  detached: boolean;
}

export interface FamilyForest {
  index: number;
  /** The result's Family entry, when the result has one for this index. */
  family: Family | undefined;
  members: RecoveredModel[];
  roots: TreeNode[];
}

/** Families in index order; members and children keep the result's model order. */
export function buildForest(result: RecoverResult): FamilyForest[] {
  const byFamily = new Map<number, RecoveredModel[]>();
  for (const f of result.families) byFamily.set(f.index, []);
  for (const m of result.models) {
    let list = byFamily.get(m.family);
    if (!list) byFamily.set(m.family, (list = []));
    list.push(m);
  }
  const familyInfo = new Map(result.families.map((f) => [f.index, f]));
  const indices = [...byFamily.keys()].sort((a, b) => a - b);
  return indices.map((index) => {
    const members = byFamily.get(index)!;
    return { index, family: familyInfo.get(index), members, roots: buildTrees(members) };
  });
}

function buildTrees(members: RecoveredModel[]): TreeNode[] {
  const nodes = new Map<string, TreeNode>();
  for (const m of members) if (!nodes.has(m.id)) nodes.set(m.id, { model: m, children: [], detached: false });
  const roots: TreeNode[] = [];
  for (const node of nodes.values()) {
    const p = node.model.parent;
    const parent = p === null ? undefined : nodes.get(p);
    if (parent && parent !== node) parent.children.push(node);
    else {
      node.detached = p !== null;
      roots.push(node);
    }
  }
  // Members on a parent cycle are reachable from no root: cut each cycle at its first member.
  const seen = new Set<TreeNode>();
  const mark = (n: TreeNode): void => {
    const stack = [n];
    while (stack.length) {
      const x = stack.pop()!;
      if (seen.has(x)) continue;
      seen.add(x);
      stack.push(...x.children);
    }
  };
  roots.forEach(mark);
  for (const node of nodes.values()) {
    if (seen.has(node)) continue;
    const parent = nodes.get(node.model.parent!)!;
    parent.children = parent.children.filter((c) => c !== node);
    node.detached = true;
    roots.push(node);
    mark(node);
  }
  return roots;
}

/**
 * Pre-order walk; `visit` gets the node, its depth and, for each level below the root, whether the
 * node on the path is its parent's last child (what tree drawing needs). Iterative: long chains
 * must not exhaust the JS stack.
 */
export function walk(root: TreeNode, visit: (node: TreeNode, depth: number, lastFlags: readonly boolean[]) => void): void {
  // One shared flags array trimmed to the current depth: copying it per node would be quadratic.
  const flags: boolean[] = [];
  const stack: Array<{ node: TreeNode; depth: number; last: boolean }> = [{ node: root, depth: 0, last: true }];
  while (stack.length) {
    const { node, depth, last } = stack.pop()!;
    flags.length = depth;
    if (depth > 0) flags[depth - 1] = last;
    visit(node, depth, flags);
    const kids = node.children;
    for (let i = kids.length - 1; i >= 0; i--) stack.push({ node: kids[i]!, depth: depth + 1, last: i === kids.length - 1 });
  }
}

/** Confidence printed with a fixed number of decimals; NaN prints as '?'. */
export function formatConfidence(c: number, decimals = 2): string {
  return Number.isFinite(c) ? c.toFixed(decimals) : '?';
}

/** Below this an edge is flagged as doubtful in text, dot, mermaid and html output (`--min-confidence`). */
export const LOW_CONFIDENCE = 0.5;

/**
 * The threshold a report uses: `minConfidence`, else the older name `lowConfidence`, else 0.5.
 * Anything but a number in [0, 1] is an InputError (E_INPUT_OPTION).
 */
export function confidenceThreshold(options: { minConfidence?: number; lowConfidence?: number } = {}): number {
  const t = options.minConfidence ?? options.lowConfidence ?? LOW_CONFIDENCE;
  if (typeof t !== 'number' || !Number.isFinite(t) || t < 0 || t > 1)
    throw new InputError('E_INPUT_OPTION', `Expected a number in [0, 1] for minConfidence but received ${String(t)}`);
  return t;
}

/** A call is doubtful when its confidence is below the threshold; NaN (unknown) counts as doubtful. */
export function isLowConfidence(confidence: number, threshold: number): boolean {
  return !(confidence >= threshold);
}
