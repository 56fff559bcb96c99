/**
 * Undirected minimum spanning tree of a dense symmetric distance matrix (Prim, O(n^2)).
 * Ties go to the lowest index (as numpy's argmin does), so the tree never depends on float noise in ordering.
 */
export function minSpanningTree(n: number, D: ArrayLike<number>): [number, number][] {
  const edges: [number, number][] = [];
  if (n < 2) return edges;
  const inTree = new Uint8Array(n), best = new Float64Array(n), from = new Int32Array(n);
  inTree[0] = 1;
  for (let v = 0; v < n; v++) best[v] = D[v];
  for (let step = 1; step < n; step++) {
    let j = -1, bj = Infinity;
    for (let v = 0; v < n; v++) if (!inTree[v] && (j < 0 || best[v] < bj)) { j = v; bj = best[v]; }
    inTree[j] = 1;
    edges.push([from[j], j]);
    for (let v = 0; v < n; v++) if (!inTree[v] && D[j * n + v] < best[v]) { best[v] = D[j * n + v]; from[v] = j; }
  }
  return edges;
}
