/** Scoring a recovered forest against the truth (parents as indices, null for roots). */

function checkSameLength(a: unknown[], b: unknown[]): void {
  if (a.length !== b.length) throw new RangeError(`Expected arrays of equal length but received ${a.length} and ${b.length}`);
}

/** Fraction of models whose parent is right (a root counts as right when predicted as a root). */
export function edgeAccuracy(truth: (number | null)[], pred: (number | null)[]): number {
  checkSameLength(truth, pred);
  if (truth.length === 0) return 1;
  let ok = 0;
  for (let i = 0; i < truth.length; i++) if ((truth[i] ?? null) === (pred[i] ?? null)) ok++;
  return ok / truth.length;
}

/** As edgeAccuracy, but an edge also counts when the prediction has it the other way round. */
export function undirectedAccuracy(truth: (number | null)[], pred: (number | null)[]): number {
  checkSameLength(truth, pred);
  if (truth.length === 0) return 1;
  const key = (a: number, b: number) => (a < b ? `${a},${b}` : `${b},${a}`);
  const predEdges = new Set<string>();
  pred.forEach((p, i) => { if (p !== null && p !== undefined) predEdges.add(key(i, p)); });
  let ok = 0;
  truth.forEach((t, i) => {
    if (t === null || t === undefined) { if (pred[i] === null || pred[i] === undefined) ok++; }
    else if (predEdges.has(key(i, t))) ok++;
  });
  return ok / truth.length;
}

const choose2 = (n: number) => (n * (n - 1)) / 2;

/** Hubert-Arabie adjusted Rand index of two labelings (any label values); 1 for identical partitions. */
export function adjustedRandIndex(a: ArrayLike<number | string>, b: ArrayLike<number | string>): number {
  if (a.length !== b.length) throw new RangeError(`Expected labelings of equal length but received ${a.length} and ${b.length}`);
  const n = a.length;
  if (n < 2) return 1;
  const cells = new Map<string, number>(), rows = new Map<number | string, number>(), cols = new Map<number | string, number>();
  for (let i = 0; i < n; i++) {
    const k = `${typeof a[i]}:${a[i]}\u0000${typeof b[i]}:${b[i]}`;
    cells.set(k, (cells.get(k) ?? 0) + 1);
    rows.set(a[i], (rows.get(a[i]) ?? 0) + 1);
    cols.set(b[i], (cols.get(b[i]) ?? 0) + 1);
  }
  let index = 0, sa = 0, sb = 0;
  for (const v of cells.values()) index += choose2(v);
  for (const v of rows.values()) sa += choose2(v);
  for (const v of cols.values()) sb += choose2(v);
  const expected = (sa * sb) / choose2(n), max = (sa + sb) / 2;
  // Both partitions trivial (all singletons or one block each): identical partitions score 1.
  if (max === expected) return index === max ? 1 : 0;
  return (index - expected) / (max - expected);
}

/** The root each model descends from (families of a forest given as parent indices). */
export function rootsOf(parent: (number | null)[]): number[] {
  return parent.map((_, i) => {
    let x = i, steps = 0;
    while (parent[x] !== null && parent[x] !== undefined) {
      x = parent[x] as number;
      if (++steps > parent.length) throw new RangeError('parent array has a cycle');
    }
    return x;
  });
}
