// Minimum directed spanning tree (Chu-Liu/Edmonds, src/graph/arborescence.ts) on dense N x N cost
// matrices: wall time per N, a validity check of every result (one root, no cycle, every edge
// finite, reported cost = sum of the chosen edges) and, where affordable, optimality against an
// independent textbook Chu-Liu/Edmonds (cost only).
//   node bench/mst.js [--quick] [--dist DIR] [--json FILE]
// Cases: uniform random costs (few cycles to contract), and a "line metric" (models at random
// points on a line, cost |x_u - x_v|, 10% dearer downhill): every node's cheapest parent is a
// neighbour that picks it back, so nearly every step contracts a cycle -- the algorithm's hard case.
// Its optimum is known: max(x) - min(x) (a path rooted at the lowest point).
import { writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const arg = (name) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };
const quick = argv.includes('--quick');
const dist = resolve(arg('--dist') ?? join(root, 'dist'));
const jsonOut = arg('--json');

const { minDirectedSpanningTree, mulberry32 } = await import(pathToFileURL(join(dist, 'graph/index.js')).href);


export function randomCosts(n, seed) {
  const rand = mulberry32(seed), W = new Float64Array(n * n);
  for (let i = 0; i < n * n; i++) W[i] = rand();
  for (let v = 0; v < n; v++) W[v * n + v] = Infinity;
  return { W, optimum: undefined };
}

export function lineCosts(n, seed) {
  const rand = mulberry32(seed), x = Float64Array.from({ length: n }, rand), W = new Float64Array(n * n);
  for (let u = 0; u < n; u++)
    for (let v = 0; v < n; v++) W[u * n + v] = u === v ? Infinity : x[v] >= x[u] ? x[v] - x[u] : 1.1 * (x[u] - x[v]);
  let lo = Infinity, hi = -Infinity;
  for (const t of x) { lo = Math.min(lo, t); hi = Math.max(hi, t); }
  return { W, optimum: hi - lo };
}

/** One root, parents in range, no cycle, finite edges, cost matches. Returns a problem or null. */
export function checkArborescence(n, W, { parent, cost }) {
  if (parent.length !== n) return `parent has length ${parent.length}, expected ${n}`;
  let roots = 0, sum = 0;
  for (let v = 0; v < n; v++) {
    const p = parent[v];
    if (p === -1) { roots++; continue; }
    if (!(p >= 0 && p < n) || p === v) return `node ${v} has parent ${p}`;
    if (!Number.isFinite(W[p * n + v])) return `edge ${p} -> ${v} does not exist`;
    sum += W[p * n + v];
  }
  if (roots !== 1) return `${roots} roots, expected 1`;
  // Cycle check: walk up from every node, marking nodes known to reach the root.
  const state = new Uint8Array(n); // 0 unknown, 1 on the current walk, 2 reaches the root
  for (let s = 0; s < n; s++) {
    const walk = [];
    let x = s;
    while (x !== -1 && state[x] === 0) { state[x] = 1; walk.push(x); x = parent[x]; }
    if (x !== -1 && state[x] === 1) return `cycle through node ${x}`;
    for (const w of walk) state[w] = 2;
  }
  if (Math.abs(sum - cost) > 1e-9 * Math.max(1, Math.abs(sum))) return `reported cost ${cost} but edges sum to ${sum}`;
  return null;
}

/**
 * Reference optimum (cost only): the textbook Chu-Liu/Edmonds iteration (pick the cheapest incoming
 * edge per node, contract cycles, reduce edge costs, repeat), with a virtual root whose edges cost
 * more than any tree, so the optimum has exactly one real root -- what minDirectedSpanningTree returns.
 */
export function referenceCost(n, W) {
  let spread = 0;
  for (let i = 0; i < n * n; i++) if (Number.isFinite(W[i])) spread = Math.max(spread, Math.abs(W[i]));
  const big = 2 * (n + 1) * (spread + 1);
  const E = n * n + n;
  let from = new Int32Array(E), to = new Int32Array(E), w = new Float64Array(E), m = 0;
  for (let u = 0; u < n; u++)
    for (let v = 0; v < n; v++) if (u !== v && Number.isFinite(W[u * n + v])) { from[m] = u; to[m] = v; w[m] = W[u * n + v]; m++; }
  for (let v = 0; v < n; v++) { from[m] = n; to[m] = v; w[m] = big; m++; }
  let N = n + 1, rootNode = n, total = 0;
  for (;;) {
    const inW = new Float64Array(N).fill(Infinity), pre = new Int32Array(N).fill(-1);
    for (let e = 0; e < m; e++) if (from[e] !== to[e] && w[e] < inW[to[e]]) { inW[to[e]] = w[e]; pre[to[e]] = from[e]; }
    for (let v = 0; v < N; v++) if (v !== rootNode && inW[v] === Infinity) throw new Error('reference: unreachable node');
    inW[rootNode] = 0;
    const id = new Int32Array(N).fill(-1), seen = new Int32Array(N).fill(-1);
    let cnt = 0;
    for (let v = 0; v < N; v++) {
      total += inW[v];
      let x = v;
      while (seen[x] !== v && id[x] === -1 && x !== rootNode) { seen[x] = v; x = pre[x]; }
      if (x !== rootNode && id[x] === -1) {
        for (let y = pre[x]; y !== x; y = pre[y]) id[y] = cnt;
        id[x] = cnt++;
      }
    }
    if (cnt === 0) break;
    for (let v = 0; v < N; v++) if (id[v] === -1) id[v] = cnt++;
    let k = 0;
    for (let e = 0; e < m; e++) {
      const a = id[from[e]], b = id[to[e]];
      if (a === b) continue;
      w[k] = w[e] - inW[to[e]]; from[k] = a; to[k] = b; k++;
    }
    m = k; N = cnt; rootNode = id[rootNode];
  }
  return total - big;
}

export async function runMst({ quick: q = quick } = {}) {
  const cases = [
    ...[500, 1000, 2000, ...(q ? [] : [5000])].map((n) => ({ kind: 'random', n })),
    { kind: 'line', n: q ? 2000 : 5000 },
  ];
  const refLimit = q ? 500 : 1000;
  const rows = [];
  console.log('minimum directed spanning tree, dense N x N (best of runs; one V x V working matrix)');
  for (let i = 0; i < 3; i++) minDirectedSpanningTree(300, randomCosts(300, i).W); // JIT warm-up
  for (const { kind, n } of cases) {
    const { W, optimum } = (kind === 'random' ? randomCosts : lineCosts)(n, 1234 + n);
    const runs = n >= 5000 ? 2 : 3;
    let best = Infinity, result;
    for (let r = 0; r < runs; r++) {
      const t0 = performance.now();
      result = minDirectedSpanningTree(n, W);
      best = Math.min(best, (performance.now() - t0) / 1000);
    }
    const problem = checkArborescence(n, W, result);
    let optimal = null, how = '';
    if (optimum !== undefined) { optimal = Math.abs(result.cost - optimum) <= 1e-9 * Math.max(1, optimum); how = 'known optimum'; }
    else if (n <= refLimit) {
      const ref = referenceCost(n, W);
      optimal = Math.abs(result.cost - ref) <= 1e-9 * Math.max(1, Math.abs(ref));
      how = 'reference Chu-Liu/Edmonds';
    }
    const row = { kind, n, seconds: best, runs, valid: problem === null, problem, optimal, optimalityCheck: how || null, cost: result.cost };
    rows.push(row);
    console.log(`  ${kind.padEnd(6)} N=${String(n).padStart(5)}  ${best.toFixed(3).padStart(7)} s  ` +
      `${problem === null ? 'valid arborescence' : `INVALID: ${problem}`}` +
      `${optimal === null ? '' : optimal ? `, optimal (${how})` : `, NOT OPTIMAL vs ${how}`}`);
  }
  const big = rows.find((r) => r.kind === 'random' && r.n === 5000);
  if (big) console.log(`  target: 5,000 models well under 10 s -> ${big.seconds.toFixed(2)} s ${big.seconds < 10 ? 'ok' : 'MISSED'}`);
  return { cases: rows };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = await runMst();
  if (jsonOut) writeFileSync(jsonOut, JSON.stringify(out, null, 1));
  if (out.cases.some((r) => !r.valid || r.optimal === false)) process.exitCode = 1;
}
