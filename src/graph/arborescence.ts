/**
 * Minimum directed spanning tree (arborescence): Chu-Liu/Edmonds in Tarjan's path-growing form on a
 * dense cost matrix, O(V^2) time and one V x V Uint32 matrix of working memory.
 *
 * Instead of copying costs at every contraction, each (super)node pair keeps the id of the original
 * edge that currently represents it; an edge's current cost is its original cost minus the
 * accumulated cost of the cycle edges its head was contracted with (`offset`), so the matrix is
 * never rewritten. Exact for any real costs (ties may pick any optimum); with a virtual root it
 * returns the best forest or the best single-rooted tree.
 */
import { GraphError } from './types.js';

export interface WeightedEdge { from: number; to: number; weight: number }

export interface ArborescenceOptions {
  /** The root. Without it, a virtual root is added (see rootCost) and the best root is chosen. */
  root?: number;
  /**
   * Without `root`: the cost of making each node a root (number: the same for all). Omitted: exactly
   * one root is allowed, the one giving the cheapest tree.
   */
  rootCost?: number | ArrayLike<number>;
}

export interface Arborescence {
  /** parent[v], -1 for a root. */
  parent: Int32Array;
  /** Sum of the chosen edges' costs (root costs included when rootCost was given). */
  cost: number;
}

/** `costs`: n*n row-major, costs[u*n+v] = cost of edge u -> v (Infinity or NaN: no edge), or an edge list. */
export function minDirectedSpanningTree(
  n: number,
  costs: ArrayLike<number> | WeightedEdge[],
  rootOrOptions?: number | ArborescenceOptions,
): Arborescence {
  if (!Number.isInteger(n) || n < 1) throw new GraphError('E_GRAPH_INPUT', `Expected a positive integer for n but received ${n}`);
  const opts: ArborescenceOptions = typeof rootOrOptions === 'number' ? { root: rootOrOptions } : rootOrOptions ?? {};
  if (opts.root !== undefined) {
    if (!Number.isInteger(opts.root) || opts.root < 0 || opts.root >= n)
      throw new GraphError('E_GRAPH_INPUT', `Expected a root in [0, ${n}) but received ${opts.root}`);
    const W = toMatrix(n, costs, n);
    const parent = edmonds(n, W, opts.root);
    return { parent, cost: treeCost(n, n, W, parent) };
  }
  // Virtual root n with an edge to every node.
  const m = n + 1;
  const V = toMatrix(n, costs, m);
  let spread = 0;
  for (let i = 0; i < m * m; i++) if (V[i] !== Infinity) spread = Math.max(spread, Math.abs(V[i]));
  const rc = opts.rootCost;
  // A single root: a virtual edge dearer than any whole tree, so the optimum uses exactly one.
  const big = 2 * (n + 1) * (spread + 1);
  for (let v = 0; v < n; v++) {
    const c = rc === undefined ? big : typeof rc === 'number' ? rc : rc[v];
    if (c === undefined || Number.isNaN(c)) throw new GraphError('E_GRAPH_INPUT', `rootCost[${v}] is missing or NaN`);
    V[v * m + n] = c;
  }
  const p = edmonds(m, V, n);
  const parent = new Int32Array(n);
  let cost = 0;
  for (let v = 0; v < n; v++) {
    parent[v] = p[v] === n ? -1 : p[v];
    if (parent[v] >= 0) cost += V[v * m + parent[v]];
    else if (rc !== undefined) cost += typeof rc === 'number' ? rc : rc[v];
  }
  return { parent, cost };
}

/**
 * The costs as a dst-major dense m x m matrix (m >= n; rows and columns past n stay Infinity):
 * out[v*m+u] = cost of u -> v, Infinity where there is no edge. Transposed in tiles for the cache.
 */
function toMatrix(n: number, costs: ArrayLike<number> | WeightedEdge[], m: number): Float64Array {
  const W = new Float64Array(m * m).fill(Infinity);
  if (Array.isArray(costs) && (costs.length === 0 || typeof costs[0] === 'object')) {
    for (const e of costs as WeightedEdge[]) {
      const { from: u, to: v, weight: w } = e;
      if (!Number.isInteger(u) || !Number.isInteger(v) || u < 0 || v < 0 || u >= n || v >= n)
        throw new GraphError('E_GRAPH_INPUT', `Edge ${u} -> ${v} is outside [0, ${n})`);
      if (w === -Infinity) throw new GraphError('E_GRAPH_INPUT', `Cost ${u} -> ${v} is -Infinity`);
      if (u !== v && !Number.isNaN(w) && w < W[v * m + u]) W[v * m + u] = w; // parallel edges: keep the cheapest
    }
    return W;
  }
  const c = costs as ArrayLike<number>;
  if (c.length !== n * n) throw new GraphError('E_GRAPH_INPUT', `Expected an n*n = ${n * n} cost matrix but received ${c.length} entries`);
  const B = 64;
  for (let u0 = 0; u0 < n; u0 += B)
    for (let v0 = 0; v0 < n; v0 += B)
      for (let u = u0; u < Math.min(n, u0 + B); u++)
        for (let v = v0; v < Math.min(n, v0 + B); v++) {
          const w = c[u * n + v];
          if (w === -Infinity) throw new GraphError('E_GRAPH_INPUT', `Cost ${u} -> ${v} is -Infinity`);
          if (!Number.isNaN(w) && u !== v) W[v * m + u] = w;
        }
  return W;
}

function treeCost(n: number, m: number, WT: Float64Array, parent: Int32Array): number {
  let cost = 0;
  for (let v = 0; v < n; v++) if (parent[v] >= 0) cost += WT[v * m + parent[v]];
  return cost;
}

/**
 * Core. WT is dst-major: WT[v*n+u] = cost of u -> v (Infinity: none), so that scanning a node's
 * incoming edges is a contiguous read. Edge ids are v*n+u as well. Returns parents, -1 at root.
 *
 * IN[x*n+s] is the cheapest (reduced) edge from ORIGINAL node s into the group held by slot x.
 * Columns are never merged: the source group of s is found by union-find when a row is scanned,
 * so every pass over the matrix is a contiguous row read.
 */
function edmonds(n: number, WT: Float64Array, root: number): Int32Array {
  if (n * n > 0xffffffff) throw new GraphError('E_GRAPH_INPUT', `Too many nodes for a dense arborescence: ${n}`);
  const IN = new Uint32Array(n * n);
  for (let i = 0; i < n * n; i++) IN[i] = i;
  const offset = new Float64Array(n); // per original node: cycle costs subtracted from edges into it
  const grp = new Int32Array(n); // union-find over slots; a group's root is its slot
  for (let i = 0; i < n; i++) grp[i] = i;
  const find = (s: number) => {
    while (grp[s] !== s) { grp[s] = grp[grp[s]]; s = grp[s]; }
    return s;
  };
  const idOf = new Int32Array(n); // slot -> current (super)node id
  for (let i = 0; i < n; i++) idOf[i] = i;
  const superOf = new Int32Array(2 * n).fill(-1); // node id -> the supernode it was contracted into
  const inEdge = new Float64Array(2 * n).fill(-1); // node id -> chosen incoming original edge
  const inCost = new Float64Array(2 * n);
  const members: number[][] = []; // (supernode id - n) -> member ids
  // Original nodes per slot as linked lists, to update offsets on contraction.
  const head = new Int32Array(n), next = new Int32Array(n).fill(-1), tail = new Int32Array(n);
  for (let i = 0; i < n; i++) { head[i] = i; tail[i] = i; }
  const state = new Uint8Array(n); // per slot: 0 new, 1 on the path, 2 attached to the root
  state[root] = 2;
  let nextId = n;

  for (let start = 0; start < n; start++) {
    if (state[start] !== 0 || grp[start] !== start) continue;
    const path: number[] = [start];
    state[start] = 1;
    for (;;) {
      const x = path[path.length - 1];
      const row = x * n;
      let best = Infinity, bs = -1;
      for (let s = 0; s < n; s++) {
        const e = IN[row + s];
        const c = WT[e] - offset[(e / n) | 0];
        if (c < best && find(s) !== x) { best = c; bs = s; }
      }
      if (bs < 0) {
        throw new GraphError('E_NO_ARBORESCENCE', `No spanning arborescence: node ${head[x]} cannot be reached from the root`);
      }
      const bu = find(bs);
      inEdge[idOf[x]] = IN[row + bs];
      inCost[idOf[x]] = best;
      if (state[bu] === 2) {
        for (const s of path) state[s] = 2;
        break;
      }
      if (state[bu] === 0) { path.push(bu); state[bu] = 1; continue; }
      // Cycle: the path from bu to x. Contract it into slot bu.
      const cyc = path.splice(path.lastIndexOf(bu));
      const S = nextId++;
      members.push(cyc.map((s) => idOf[s]));
      for (const s of cyc) {
        superOf[idOf[s]] = S;
        const c = inCost[idOf[s]];
        for (let o = head[s]; o !== -1; o = next[o]) offset[o] += c;
      }
      const rep = bu, repRow = rep * n;
      // The supernode's incoming row: per original source, the cheapest reduced edge into any member.
      for (const c of cyc) {
        if (c === rep) continue;
        const cRow = c * n;
        for (let s = 0; s < n; s++) {
          const a = IN[repRow + s], b = IN[cRow + s];
          if (WT[b] - offset[(b / n) | 0] < WT[a] - offset[(a / n) | 0]) IN[repRow + s] = b;
        }
      }
      for (const c of cyc) {
        if (c === rep) continue;
        grp[c] = rep;
        next[tail[rep]] = head[c];
        tail[rep] = tail[c];
      }
      idOf[rep] = S;
      path.push(rep);
      state[rep] = 1;
    }
  }

  // Expand: the edge entering a supernode enters one member; the others keep their cycle edge.
  const finalIn = new Float64Array(nextId).fill(-1);
  for (let id = nextId - 1; id >= 0; id--) {
    if (id === root) continue;
    if (superOf[id] === -1) finalIn[id] = inEdge[id];
    if (id < n) continue;
    const e = finalIn[id];
    let c = Math.floor(e / n); // the original head of the entering edge, then up to S's member
    while (superOf[c] !== id) c = superOf[c];
    for (const y of members[id - n]) finalIn[y] = y === c ? e : inEdge[y];
  }
  const parent = new Int32Array(n).fill(-1);
  for (let v = 0; v < n; v++) if (v !== root) parent[v] = finalIn[v] % n;
  return parent;
}
