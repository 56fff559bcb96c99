/**
 * The code and style that run inside the HTML report. `pageMain` is serialised with
 * Function.prototype.toString and inlined into the page, so it must be self-contained: it may use
 * only browser globals and the inlined d3-hierarchy (`d3`), never an import of this module.
 *
 * Layout: d3-hierarchy's tidy tree (Reingold-Tilford/Buchheim, linear time) per family, roots at
 * the top. A family with several roots (detached members) hangs them under a hidden virtual root.
 * Extra parents of merges (a model row's `parents`) are drawn as additional curved edges between
 * the placed nodes; the tree itself follows the primary parent.
 */

/* eslint-disable */
export const PAGE_CSS = `
:root { --fg:#1b1f24; --muted:#57606a; --bg:#fff; --panel:#f6f8fa; --line:#d0d7de; --focus:#0969da; --low:#b35900; --sel:#8250df; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color:var(--fg); background:var(--bg); }
header { position:sticky; top:0; z-index:2; background:var(--bg); border-bottom:1px solid var(--line); padding:8px 16px; display:flex; flex-wrap:wrap; gap:8px 16px; align-items:center; }
header h1 { font-size:18px; margin:0; }
#summary { color:var(--muted); }
#search-box { position:relative; }
#search { width:22em; padding:4px 6px; font:inherit; }
#search-results { position:absolute; top:100%; left:0; z-index:3; background:var(--bg); border:1px solid var(--line); list-style:none; margin:0; padding:0; max-height:20em; overflow:auto; min-width:22em; }
#search-results:empty { display:none; }
#search-results li { padding:3px 8px; cursor:pointer; font-family:ui-monospace, monospace; font-size:12px; }
#search-results li[aria-selected="true"], #search-results li:hover { background:var(--panel); }
button { font:inherit; padding:2px 8px; }
.layout { display:grid; grid-template-columns:minmax(0,1fr) 24em; gap:16px; padding:12px 16px; align-items:start; }
#details { position:sticky; top:64px; border:1px solid var(--line); border-radius:6px; padding:8px 12px; background:var(--panel); max-height:calc(100vh - 80px); overflow:auto; }
#details h2 { font-size:15px; margin:4px 0 8px; word-break:break-all; }
#details dl { display:grid; grid-template-columns:auto 1fr; gap:2px 10px; margin:0; }
#details dt { color:var(--muted); }
#details dd { margin:0; word-break:break-word; }
details.family { border:1px solid var(--line); border-radius:6px; margin:0 0 12px; }
details.family > summary { padding:6px 10px; cursor:pointer; background:var(--panel); border-radius:6px; font-weight:600; }
details.family > summary .meta { font-weight:400; color:var(--muted); }
.tree-wrap { overflow:auto; max-height:75vh; padding:4px; }
svg.tree text { font:12px ui-monospace, "DejaVu Sans Mono", monospace; }
svg.tree .node rect { fill:#fff; stroke:#57606a; stroke-width:1; }
svg.tree .node.root rect { stroke-width:2.5; }
svg.tree .node.low rect { stroke:var(--low); stroke-dasharray:4 2; }
svg.tree .node:focus { outline:none; }
svg.tree .node:focus rect { stroke:var(--focus); stroke-width:3; }
svg.tree .node.selected rect { fill:#fbefff; stroke:var(--sel); stroke-width:3; }
svg.tree .node.hit rect { fill:#fff8c5; }
svg.tree .node { cursor:pointer; }
svg.tree .edge path { fill:none; stroke-width:2; }
svg.tree .edge.rel-adapter path { stroke-dasharray:9 3; }
svg.tree .edge.rel-quantized path { stroke-dasharray:2 3; }
svg.tree .edge.rel-cast path { stroke-dasharray:6 2 2 2; }
svg.tree .edge.rel-duplicate path { stroke-width:5; }
svg.tree .edge.rel-merge path { stroke-width:1.5; }
svg.tree .edge text { font-size:10px; fill:#1b1f24; paint-order:stroke; stroke:#fff; stroke-width:3px; }
svg.tree .edge.low text { fill:var(--low); font-weight:700; }
svg.tree .badge circle { fill:#fff; stroke:var(--low); stroke-width:1.5; }
svg.tree .badge text { fill:var(--low); font-weight:700; font-size:11px; }
.legend { display:flex; flex-wrap:wrap; gap:4px 14px; align-items:center; color:var(--muted); font-size:12px; }
.legend svg { vertical-align:middle; }
.text-tree { font:12px ui-monospace, monospace; }
.text-tree ul { list-style:none; margin:0; padding-left:1.4em; border-left:1px dotted var(--line); }
.text-tree > ul { padding-left:0; border:none; }
.text-tree button { font:inherit; border:none; background:none; padding:0 2px; cursor:pointer; color:inherit; text-align:left; }
.text-tree button:focus { outline:2px solid var(--focus); }
.lowtag { color:var(--low); font-weight:700; }
.sub { margin:6px 10px 10px; }
.sub > summary { cursor:pointer; color:var(--muted); }
.charts { display:flex; flex-wrap:wrap; gap:16px; align-items:flex-start; padding:6px 0; }
.charts figure { margin:0; }
.charts figcaption { color:var(--muted); font-size:12px; max-width:40em; }
canvas.heatmap { image-rendering:pixelated; border:1px solid var(--line); }
table { border-collapse:collapse; font-size:12px; }
td, th { border:1px solid var(--line); padding:2px 6px; text-align:left; vertical-align:top; }
section#diagnostics { padding:0 16px 24px; }
.warn { color:var(--low); }
.visually-hidden { position:absolute; width:1px; height:1px; overflow:hidden; clip:rect(0 0 0 0); white-space:nowrap; }
@media (max-width: 900px) { .layout { grid-template-columns:1fr; } #details { position:static; max-height:none; } }
`;

/** Runs in the page. Reads the JSON in #mother-data, draws everything, wires selection and search. */
export function pageMain(): void {
  type Row = {
    id: string; path: string; parent: string | null; confidence: number | null; family: number; kurtosis: number | null;
    runnerUp?: { parent: string | null; confidence: number | null };
    parents?: { id: string; relation?: string; weight?: number }[];
    relation?: string; dtype?: string; format?: string; files?: number;
    declared?: { baseModel: string[]; relation?: string; source: string } | null;
  };
  type Fam = { index: number; root: string; size: number; members: string[]; distance: string; evidence?: string; direction: string; architecture: string };
  type Dist = { metric: string; ids: string[]; values: (number | null)[] };
  type Data = {
    minConfidence: number;
    models: Row[];
    families: Fam[];
    diagnostics: any;
    distances?: Record<string, Dist>;
    notes?: string[];
  };
  type TNode = { row: Row | null; children: TNode[]; depth?: number; x?: number; y?: number; data?: TNode; parent?: TNode | null };

  const w = window as any;
  const d3 = w.d3;
  const data: Data = JSON.parse(document.getElementById('mother-data')!.textContent!);
  const T = data.minConfidence;
  const SVGNS = 'http://www.w3.org/2000/svg';
  const byId = new Map<string, Row>();
  for (const m of data.models) byId.set(m.id, m);
  const famInfo = new Map<number, Fam>();
  for (const f of data.families) famInfo.set(f.index, f);
  const nodeEls = new Map<string, SVGGElement>();
  const children = new Map<string, string[]>();
  const famMembers = new Map<number, Row[]>();
  for (const m of data.models) {
    let l = famMembers.get(m.family);
    if (!l) famMembers.set(m.family, (l = []));
    l.push(m);
  }
  const t0 = performance.now();

  const el = <K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, text?: string): HTMLElementTagNameMap[K] => {
    const e = document.createElement(tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]!);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const sv = (tag: string, attrs: Record<string, string | number> = {}, text?: string): SVGElement => {
    const e = document.createElementNS(SVGNS, tag) as SVGElement;
    for (const k in attrs) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const fmt = (c: number | null | undefined, d = 2): string => (typeof c === 'number' && isFinite(c) ? c.toFixed(d) : '?');
  const isLow = (c: number | null | undefined): boolean => !(typeof c === 'number' && c >= T);
  /** Red (0) through amber to green (1); colour is never alone: labels and dashes carry the same. */
  const confColor = (c: number | null): string => {
    if (typeof c !== 'number' || !isFinite(c)) return '#8c959f';
    const h = Math.max(0, Math.min(1, c)) * 125;
    return `hsl(${h.toFixed(0)}, 75%, ${c < 0.5 ? 40 : 32}%)`;
  };
  const relationOf = (m: Row): string => {
    if (m.relation) return m.relation;
    const f = famInfo.get(m.family);
    return f && f.distance === 'lora' ? 'adapter' : 'finetune';
  };
  const plural = (n: number, w1: string, many = w1 + 's') => `${n} ${n === 1 ? w1 : many}`;

  // ---- forest per family (defensive, as the server-side reports: unknown parents and cycles) ----
  function buildTrees(members: Row[]): TNode[] {
    const nodes = new Map<string, TNode>();
    for (const m of members) if (!nodes.has(m.id)) nodes.set(m.id, { row: m, children: [] });
    const roots: TNode[] = [];
    for (const n of nodes.values()) {
      const p = n.row!.parent;
      const pn = p === null ? undefined : nodes.get(p);
      if (pn && pn !== n) pn.children.push(n);
      else roots.push(n);
    }
    const seen = new Set<TNode>();
    const mark = (n: TNode) => {
      const st = [n];
      while (st.length) {
        const x = st.pop()!;
        if (seen.has(x)) continue;
        seen.add(x);
        st.push(...x.children);
      }
    };
    roots.forEach(mark);
    for (const n of nodes.values()) {
      if (seen.has(n)) continue;
      const pn = nodes.get(n.row!.parent!)!;
      pn.children = pn.children.filter((c) => c !== n);
      roots.push(n);
      mark(n);
    }
    return roots;
  }
  /** Pre-order ids: the order of the heatmap rows and of keyboard navigation. */
  function preorder(roots: TNode[]): Row[] {
    const out: Row[] = [];
    const st = [...roots].reverse();
    while (st.length) {
      const n = st.pop()!;
      out.push(n.row!);
      for (let i = n.children.length - 1; i >= 0; i--) st.push(n.children[i]!);
    }
    return out;
  }

  // ---- page skeleton ----
  const summary = document.getElementById('summary')!;
  const lowCount = data.models.filter((m) => m.parent !== null && isLow(m.confidence)).length;
  summary.textContent = `${plural(data.models.length, 'model')}, ${plural(famMembers.size, 'family', 'families')}; ` +
    `${plural(lowCount, 'edge')} below the confidence threshold ${fmt(T)}`;
  const forestEl = document.getElementById('forest')!;
  const open = data.models.length <= 300;

  const legend = document.getElementById('legend')!;
  const legendItem = (cls: string, label: string, low = false) => {
    const s = sv('svg', { width: 46, height: 14, 'aria-hidden': 'true', class: 'tree swatch' });
    const g = sv('g', { class: `edge ${cls}${low ? ' low' : ''}` });
    g.appendChild(sv('path', { d: 'M2 7 H44', stroke: low ? confColor(0.2) : confColor(0.9) }));
    s.appendChild(g);
    const span = el('span');
    span.appendChild(s);
    span.appendChild(document.createTextNode(' ' + label));
    legend.appendChild(span);
  };
  legendItem('rel-finetune', 'fine-tune');
  legendItem('rel-adapter', 'adapter / LoRA');
  legendItem('rel-merge', 'merge (extra parent)');
  legendItem('rel-quantized', 'quantized');
  legendItem('rel-cast', 'cast');
  legendItem('rel-duplicate', 'duplicate');
  legend.appendChild(el('span', {}, `colour: confidence, red 0 to green 1; ? and orange dashed box: below ${fmt(T)}; thick box: root`));

  const sortedFamilies = [...famMembers.keys()].sort((a, b) => a - b);
  const familyOrder = new Map<number, Row[]>();
  const panels = new Map<number, HTMLDetailsElement>();

  for (const fi of sortedFamilies) {
    const members = famMembers.get(fi)!;
    const f = famInfo.get(fi);
    const roots = buildTrees(members);
    const order = preorder(roots);
    familyOrder.set(fi, order);
    for (const r of roots) walkChildren(r);

    const det = el('details', { class: 'family', id: `family-${fi}` }) as HTMLDetailsElement;
    det.open = open;
    const sum = el('summary');
    sum.appendChild(document.createTextNode(`Family ${fi} `));
    const lowHere = members.filter((m) => m.parent !== null && isLow(m.confidence)).length;
    const meta = [plural(members.length, 'model'), f ? `distance ${f.distance}` : '', f ? f.direction.replace('-', ' ') : '', lowHere ? `${lowHere} low` : '']
      .filter(Boolean).join(', ');
    sum.appendChild(el('span', { class: 'meta' }, `(${meta})`));
    det.appendChild(sum);

    const wrap = el('div', { class: 'tree-wrap' });
    wrap.appendChild(drawTree(fi, roots));
    det.appendChild(wrap);

    const textDet = el('details', { class: 'sub' });
    textDet.appendChild(el('summary', {}, 'Tree as text'));
    const tt = el('div', { class: 'text-tree' });
    tt.appendChild(textTree(roots));
    textDet.appendChild(tt);
    det.appendChild(textDet);

    const chartsDet = el('details', { class: 'sub' });
    chartsDet.appendChild(el('summary', {}, 'Distances and kurtosis down the tree'));
    const charts = el('div', { class: 'charts' });
    chartsDet.appendChild(charts);
    det.appendChild(chartsDet);
    let drawn = false;
    const drawCharts = () => {
      if (drawn) return;
      drawn = true;
      charts.appendChild(heatmap(fi, order));
      charts.appendChild(kurtosisChart(fi, roots));
    };
    chartsDet.addEventListener('toggle', () => chartsDet.open && drawCharts());
    if (members.length <= 40 && open) {
      chartsDet.open = true;
      drawCharts();
    }
    panels.set(fi, det);
    forestEl.appendChild(det);
  }

  function walkChildren(n: TNode) {
    const st = [n];
    while (st.length) {
      const x = st.pop()!;
      children.set(x.row!.id, x.children.map((c) => c.row!.id));
      st.push(...x.children);
    }
  }

  // ---- the SVG tree ----
  function drawTree(fi: number, roots: TNode[]): SVGElement {
    const members = famMembers.get(fi)!;
    const maxLen = members.reduce((a, m) => Math.max(a, m.id.length), 4);
    const boxW = Math.min(360, maxLen * 7.3 + 14);
    const boxH = 22;
    const dx = boxW + 16;
    const dy = 78;
    const virtual: TNode = { row: null, children: roots };
    const h = d3.hierarchy(virtual, (n: TNode) => n.children);
    d3.tree().nodeSize([dx, dy]).separation((a: any, b: any) => (a.parent === b.parent ? 1 : 1.15))(h);
    const nodes = h.descendants().filter((n: any) => n.data.row !== null);
    let minX = Infinity, maxX = -Infinity, maxY = 0;
    for (const n of nodes) {
      minX = Math.min(minX, n.x);
      maxX = Math.max(maxX, n.x);
      maxY = Math.max(maxY, n.y);
    }
    const pad = 12;
    const width = maxX - minX + boxW + 2 * pad;
    const height = maxY - dy + boxH + 2 * pad + 6;
    const X = (n: any) => n.x - minX + boxW / 2 + pad;
    const Y = (n: any) => n.y - dy + pad;
    const svg = sv('svg', { class: 'tree', width: width.toFixed(0), height: height.toFixed(0), viewBox: `0 0 ${width.toFixed(0)} ${height.toFixed(0)}`, role: 'group', 'aria-label': `Family ${fi}: tree of ${plural(members.length, 'model')}; use Tab to reach a model, arrow keys to move along the tree, Enter to select` });
    svg.appendChild(sv('title', {}, `Family ${fi} heritage tree`));
    const edges = sv('g', { class: 'edges' });
    const nodeLayer = sv('g', { class: 'nodes' });
    svg.appendChild(edges);
    svg.appendChild(nodeLayer);
    const pos = new Map<string, any>();
    for (const n of nodes) pos.set(n.data.row.id, n);

    const edge = (from: any, to: any, row: Row, conf: number | null, rel: string, extra: string) => {
      const low = isLow(conf);
      const g = sv('g', { class: `edge rel-${rel}${low ? ' low' : ''}${extra ? ' ' + extra : ''}`, 'data-child': row.id, 'data-parent': from.data.row.id, 'data-confidence': fmt(conf, 4), 'data-relation': rel });
      const x1 = X(from), y1 = Y(from) + boxH, x2 = X(to), y2 = Y(to);
      const my = (y1 + y2) / 2;
      const d = extra ? `M${x1},${y1} C${x1},${y2 + 10} ${x2},${y1 - 10} ${x2},${y2}` : `M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${y2}`;
      const p = sv('path', { d, stroke: confColor(conf) });
      if (rel === 'duplicate') {
        g.appendChild(sv('path', { d, stroke: confColor(conf) }));
        p.setAttribute('stroke', '#fff');
        p.setAttribute('style', 'stroke-width:1.5');
      }
      g.appendChild(p);
      g.appendChild(sv('title', {}, `${from.data.row.id} → ${row.id}: ${rel}, confidence ${fmt(conf)}${low ? ' (below ' + fmt(T) + ')' : ''}`));
      const lx = (x1 + x2) / 2, ly = my;
      g.appendChild(sv('text', { x: (lx + 6).toFixed(1), y: (ly + 4).toFixed(1) }, fmt(conf) + (extra ? ' merge' : '')));
      if (low) {
        const b = sv('g', { class: 'badge', 'aria-hidden': 'true' });
        b.appendChild(sv('circle', { cx: (lx - 8).toFixed(1), cy: ly.toFixed(1), r: 7 }));
        b.appendChild(sv('text', { x: (lx - 8).toFixed(1), y: (ly + 4).toFixed(1), 'text-anchor': 'middle' }, '?'));
        g.appendChild(b);
      }
      edges.appendChild(g);
    };

    for (const n of nodes) {
      const row: Row = n.data.row;
      if (n.parent && n.parent.data.row) edge(n.parent, n, row, row.confidence, relationOf(row), '');
      for (const p of row.parents ?? []) {
        if (p.id === row.parent) continue;
        const from = pos.get(p.id);
        if (from) edge(from, n, row, row.confidence, p.relation ?? 'merge', 'extra');
      }
    }
    for (const n of nodes) {
      const row: Row = n.data.row;
      const isRoot = !n.parent || !n.parent.data.row;
      const low = isLow(row.confidence);
      const label = `${row.id}; ${isRoot ? 'root' : 'parent ' + row.parent}; confidence ${fmt(row.confidence)}${low ? ', below threshold' : ''}`;
      const g = sv('g', { class: `node${isRoot ? ' root' : ''}${low ? ' low' : ''}`, tabindex: 0, role: 'button', 'aria-label': label, 'data-id': row.id, transform: `translate(${(X(n) - boxW / 2).toFixed(1)},${Y(n).toFixed(1)})` }) as SVGGElement;
      g.appendChild(sv('rect', { width: boxW.toFixed(1), height: boxH, rx: isRoot ? 11 : 3 }));
      g.appendChild(sv('text', { x: (boxW / 2).toFixed(1), y: 15, 'text-anchor': 'middle' }, row.id));
      g.appendChild(sv('title', {}, label));
      g.addEventListener('click', () => select(row.id, false));
      g.addEventListener('keydown', (ev) => onNodeKey(ev as KeyboardEvent, row.id));
      nodeEls.set(row.id, g);
      nodeLayer.appendChild(g);
    }
    return svg;
  }

  function textTree(roots: TNode[]): HTMLUListElement {
    const top = el('ul');
    const st: [TNode, HTMLUListElement][] = [];
    for (let i = roots.length - 1; i >= 0; i--) st.push([roots[i]!, top]);
    while (st.length) {
      const [n, ul] = st.pop()!;
      const m = n.row!;
      const li = el('li');
      const b = el('button', { type: 'button', 'data-id': m.id, tabindex: '-1' }, m.id);
      b.addEventListener('click', () => select(m.id, true));
      li.appendChild(b);
      li.appendChild(document.createTextNode(` (${m.parent === null ? 'root, ' : ''}conf ${fmt(m.confidence)}) `));
      if (isLow(m.confidence)) li.appendChild(el('span', { class: 'lowtag' }, '[low]'));
      ul.appendChild(li);
      if (n.children.length) {
        const sub = el('ul');
        li.appendChild(sub);
        for (let i = n.children.length - 1; i >= 0; i--) st.push([n.children[i]!, sub]);
      }
    }
    return top;
  }

  // ---- heatmap and kurtosis ----
  function heatmap(fi: number, order: Row[]): HTMLElement {
    const fig = el('figure');
    const dist = data.distances ? data.distances[String(fi)] : undefined;
    if (!dist) {
      fig.appendChild(el('figcaption', {}, order.length < 2 ? 'One model: no distances.' : 'No distances recorded for this family (see the notes under Diagnostics).'));
      return fig;
    }
    const n = dist.ids.length;
    const at = new Map<string, number>();
    dist.ids.forEach((id, i) => at.set(id, i));
    const ids = order.map((r) => r.id).filter((id) => at.has(id));
    const N = ids.length;
    const cell = Math.max(2, Math.min(18, Math.floor(480 / Math.max(1, N))));
    const c = el('canvas', { class: 'heatmap', width: String(N * cell), height: String(N * cell), role: 'img' }) as HTMLCanvasElement;
    let lo = Infinity, hi = -Infinity;
    for (const v of dist.values) if (typeof v === 'number') { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    const ctx = c.getContext('2d')!;
    const val = (a: number, b: number) => dist.values[at.get(ids[a]!)! * n + at.get(ids[b]!)!];
    for (let i = 0; i < N; i++)
      for (let j = 0; j < N; j++) {
        const v = val(i, j);
        const t = typeof v === 'number' && hi > lo ? (v - lo) / (hi - lo) : 0;
        ctx.fillStyle = typeof v === 'number' ? `hsl(${(220 - 180 * t).toFixed(0)}, 70%, ${(25 + 60 * t).toFixed(0)}%)` : '#ccc';
        ctx.fillRect(j * cell, i * cell, cell, cell);
      }
    // Text alternative: every model's nearest other model, with the distance.
    const nearest = ids.map((id, i) => {
      let best = -1, bv = Infinity;
      for (let j = 0; j < N; j++) {
        const v = val(i, j);
        if (j !== i && typeof v === 'number' && v < bv) { bv = v; best = j; }
      }
      return { id, near: best >= 0 ? ids[best]! : '-', v: bv };
    });
    c.setAttribute('aria-label', `${dist.metric} distance heatmap of family ${fi}, ${N} by ${N}, rows and columns in tree order (pre-order); dark = near, light = far; range ${fmt(lo, 4)} to ${fmt(hi, 4)}`);
    const tip = el('div', { 'aria-live': 'polite', class: 'tip' }, 'Point at a cell to read it.');
    c.addEventListener('mousemove', (ev) => {
      const r = c.getBoundingClientRect();
      const j = Math.floor((ev.clientX - r.left) / cell), i = Math.floor((ev.clientY - r.top) / cell);
      if (i >= 0 && j >= 0 && i < N && j < N) tip.textContent = `${ids[i]} ↔ ${ids[j]}: ${fmt(val(i, j) as number, 4)}`;
    });
    fig.appendChild(c);
    fig.appendChild(tip);
    fig.appendChild(el('figcaption', {}, `${dist.metric} distance between members, rows and columns in tree order (${ids.slice(0, 3).join(', ')}${N > 3 ? ', …' : ''}). Dark: near; light: far. A good tree shows dark blocks along the diagonal.`));
    const nd = el('details');
    nd.appendChild(el('summary', {}, 'Nearest model of each member (text)'));
    const tb = el('table');
    const hr = el('tr');
    ['model', 'parent', 'nearest model', 'distance'].forEach((h) => hr.appendChild(el('th', {}, h)));
    tb.appendChild(hr);
    for (const r of nearest) {
      const tr = el('tr');
      [r.id, byId.get(r.id)!.parent ?? '(root)', r.near, fmt(r.v, 4)].forEach((t) => tr.appendChild(el('td', {}, t)));
      tb.appendChild(tr);
    }
    nd.appendChild(tb);
    fig.appendChild(nd);
    return fig;
  }

  function kurtosisChart(fi: number, roots: TNode[]): HTMLElement {
    const fig = el('figure');
    const pts: { row: Row; depth: number; parent: Row | null }[] = [];
    const st: [TNode, number, Row | null][] = roots.map((r) => [r, 0, null]);
    while (st.length) {
      const [n, d, p] = st.pop()!;
      pts.push({ row: n.row!, depth: d, parent: p });
      for (const c of n.children) st.push([c, d + 1, n.row!]);
    }
    const ks = pts.map((p) => p.row.kurtosis).filter((k): k is number => typeof k === 'number' && isFinite(k));
    if (ks.length === 0) {
      fig.appendChild(el('figcaption', {}, 'No kurtosis recorded for this family.'));
      return fig;
    }
    const maxD = pts.reduce((a, p) => Math.max(a, p.depth), 0);
    let lo = Math.min(...ks), hi = Math.max(...ks);
    if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
    // Enough decimals that the two axis ends differ.
    const dec = Math.min(8, Math.max(2, Math.ceil(-Math.log10(hi - lo)) + 2));
    const W = 380, H = 220, L = 76, B = 30;
    const xs = (d: number) => L + (maxD === 0 ? (W - L) / 2 : ((W - L - 16) * d) / maxD);
    const ys = (k: number) => 10 + (H - B - 10) * (1 - (k - lo) / (hi - lo));
    const mean = (d: number) => {
      const v = pts.filter((p) => p.depth === d && typeof p.row.kurtosis === 'number').map((p) => p.row.kurtosis as number);
      return v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN;
    };
    const means = Array.from({ length: maxD + 1 }, (_, d) => mean(d));
    const s = sv('svg', { width: W, height: H, role: 'img', class: 'kurt', 'aria-label': `Kurtosis down the tree of family ${fi}: mean by depth ${means.map((m, d) => `depth ${d}: ${fmt(m, 3)}`).join('; ')}` });
    s.appendChild(sv('line', { x1: L, y1: H - B, x2: W, y2: H - B, stroke: '#57606a' }));
    s.appendChild(sv('line', { x1: L, y1: 10, x2: L, y2: H - B, stroke: '#57606a' }));
    for (let d = 0; d <= maxD; d++) s.appendChild(sv('text', { x: xs(d), y: H - B + 14, 'text-anchor': 'middle', 'font-size': 10 }, String(d)));
    s.appendChild(sv('text', { x: (W + L) / 2, y: H - 4, 'text-anchor': 'middle', 'font-size': 11 }, 'depth in the tree'));
    s.appendChild(sv('text', { x: L - 4, y: 14, 'text-anchor': 'end', 'font-size': 10 }, fmt(hi, dec)));
    s.appendChild(sv('text', { x: L - 4, y: H - B, 'text-anchor': 'end', 'font-size': 10 }, fmt(lo, dec)));
    s.appendChild(sv('text', { x: 12, y: (H - B) / 2, 'font-size': 11, transform: `rotate(-90 12 ${(H - B) / 2})`, 'text-anchor': 'middle' }, 'kurtosis'));
    for (const p of pts) {
      const k = p.row.kurtosis;
      if (p.parent && typeof k === 'number' && typeof p.parent.kurtosis === 'number')
        s.appendChild(sv('line', { x1: xs(p.depth - 1), y1: ys(p.parent.kurtosis), x2: xs(p.depth), y2: ys(k), stroke: '#afb8c1' }));
    }
    for (const p of pts) {
      const k = p.row.kurtosis;
      if (typeof k !== 'number') continue;
      const c = sv('circle', { cx: xs(p.depth), cy: ys(k), r: 3.5, fill: isLow(p.row.confidence) ? '#b35900' : '#0969da' });
      c.appendChild(sv('title', {}, `${p.row.id}: kurtosis ${fmt(k, 4)}, depth ${p.depth}`));
      s.appendChild(c);
    }
    fig.appendChild(s);
    const f = famInfo.get(fi);
    fig.appendChild(el('figcaption', {}, `Kurtosis of each model by depth; lines join parent and child. Family direction: ${f ? f.direction : 'unknown'}.`));
    return fig;
  }

  // ---- selection, details, keyboard ----
  let selected: string | null = null;
  const details = document.getElementById('details')!;
  function warningsFor(id: string): string[] {
    const d = data.diagnostics ?? {};
    const out: string[] = [];
    for (const w of d.warnings ?? []) if (typeof w === 'string' && w.includes(id)) out.push(w);
    for (const s of d.tensorsSkipped ?? []) if (Array.isArray(s.models) && s.models.includes(id)) out.push(`tensor ${s.name} skipped: ${s.reason}`);
    for (const s of d.skippedModels ?? []) if (s && typeof s.path === 'string' && s.path === byId.get(id)?.path) out.push(`${s.code}: ${s.message}`);
    return out;
  }
  const hubToId = (name: string): string | undefined => {
    if (byId.has(name)) return name;
    const dashed = name.replace('/', '--');
    if (byId.has(dashed)) return dashed;
    const base = name.split('/').pop()!;
    return byId.has(base) ? base : undefined;
  };
  function declaredLine(m: Row): [string, string] | null {
    const dcl = m.declared;
    if (!dcl || !dcl.baseModel || dcl.baseModel.length === 0) return null;
    const named = dcl.baseModel.map((b) => hubToId(b));
    const parents = new Set<string>((m.parents ?? []).map((p) => p.id));
    if (m.parent) parents.add(m.parent);
    let verdict: string;
    if (named.some((x) => x === undefined)) verdict = 'cannot check: the declared base is not among these models';
    else if (m.parent === null) verdict = 'DISAGREE: the weights make this model a root';
    else if (named.every((x) => parents.has(x!)) && named.length === parents.size) verdict = 'agree';
    else if (named.some((x) => parents.has(x!))) verdict = 'partly agree';
    else verdict = `DISAGREE: the weights say ${m.parent}`;
    return [`${dcl.baseModel.join(', ')}${dcl.relation ? ' (' + dcl.relation + ')' : ''} — from ${dcl.source}`, verdict];
  }
  function showDetails(id: string) {
    const m = byId.get(id)!;
    details.textContent = '';
    details.appendChild(el('h2', {}, m.id));
    const dl = el('dl');
    const row = (k: string, v: string | Node, cls = '') => {
      dl.appendChild(el('dt', {}, k));
      const dd = el('dd', cls ? { class: cls } : {});
      if (typeof v === 'string') dd.textContent = v;
      else dd.appendChild(v);
      dd.setAttribute('data-field', k);
      dl.appendChild(dd);
    };
    const link = (target: string | null, text?: string): Node => {
      if (target === null || !byId.has(target)) return document.createTextNode(text ?? (target === null ? '(root)' : `${target} (not a model here)`));
      const b = el('button', { type: 'button' }, text ?? target);
      b.addEventListener('click', () => select(target, true));
      return b;
    };
    const low = isLow(m.confidence);
    const pwrap = el('span');
    pwrap.appendChild(link(m.parent, m.parent === null ? '(root)' : undefined));
    pwrap.appendChild(document.createTextNode(` confidence ${fmt(m.confidence)}`));
    if (low) pwrap.appendChild(el('span', { class: 'lowtag' }, ` ? below ${fmt(T)}`));
    row('parent', pwrap, low ? 'low' : '');
    if (m.parents && m.parents.length > 1) row('all parents', m.parents.map((p) => `${p.id}${p.relation ? ' ' + p.relation : ''}${p.weight !== undefined ? ' ×' + p.weight : ''}`).join(', '));
    row('relation', m.parent === null ? '-' : relationOf(m) + (m.relation ? '' : ' (from the family distance)'));
    if (m.runnerUp) {
      const rw = el('span');
      rw.appendChild(link(m.runnerUp.parent, m.runnerUp.parent === null ? '(root)' : undefined));
      rw.appendChild(document.createTextNode(` confidence ${fmt(m.runnerUp.confidence)}`));
      row('runner-up', rw);
    } else row('runner-up', 'none recorded');
    const f = famInfo.get(m.family);
    row('family', `${m.family}${f ? ` (${f.size} models, ${f.evidence ? `evidence ${f.evidence}, ` : ''}distance ${f.distance}, ${f.direction}, architecture ${f.architecture})` : ''}`);
    row('kurtosis', fmt(m.kurtosis, 4));
    row('dtype', m.dtype ?? 'not recorded');
    row('format', m.format ? m.format + (m.files && m.files > 1 ? ` (${m.files} files)` : '') : 'not recorded');
    const dcl = declaredLine(m);
    if (dcl) {
      row('declared base', dcl[0]);
      row('weights', dcl[1], dcl[1].startsWith('DISAGREE') ? 'warn' : '');
    } else row('declared base', m.declared === undefined ? 'not recorded' : 'none declared');
    const kids = children.get(m.id) ?? [];
    const kw = el('span');
    kids.forEach((k, i) => {
      if (i) kw.appendChild(document.createTextNode(', '));
      kw.appendChild(link(k));
    });
    row('children', kids.length ? kw : 'none');
    row('path', m.path);
    const ws = warningsFor(m.id);
    const wl = el('ul');
    for (const w of ws) wl.appendChild(el('li', { class: 'warn' }, w));
    row('warnings', ws.length ? wl : 'none');
    details.appendChild(dl);
  }
  function select(id: string, focus: boolean) {
    if (!byId.has(id)) return;
    if (selected) nodeEls.get(selected)?.classList.remove('selected');
    selected = id;
    const m = byId.get(id)!;
    const det = panels.get(m.family);
    if (det && !det.open) det.open = true;
    const g = nodeEls.get(id);
    if (g) {
      g.classList.add('selected');
      g.setAttribute('aria-pressed', 'true');
      if (focus) g.focus();
      (g as any).scrollIntoView({ block: 'nearest', inline: 'center' });
    }
    showDetails(id);
    if (location.hash !== '#' + encodeURIComponent(id)) history.replaceState(null, '', '#' + encodeURIComponent(id));
  }
  function onNodeKey(ev: KeyboardEvent, id: string) {
    const m = byId.get(id)!;
    let next: string | undefined;
    const sibs = m.parent !== null && byId.has(m.parent) ? children.get(m.parent) ?? [] : (familyOrder.get(m.family) ?? []).filter((r) => r.parent === null || !byId.has(r.parent)).map((r) => r.id);
    const i = sibs.indexOf(id);
    if (ev.key === 'Enter' || ev.key === ' ') { select(id, true); ev.preventDefault(); return; }
    if (ev.key === 'ArrowUp') next = m.parent ?? undefined;
    else if (ev.key === 'ArrowDown') next = (children.get(id) ?? [])[0];
    else if (ev.key === 'ArrowLeft') next = i > 0 ? sibs[i - 1] : undefined;
    else if (ev.key === 'ArrowRight') next = i >= 0 && i < sibs.length - 1 ? sibs[i + 1] : undefined;
    else if (ev.key === 'Home') next = familyOrder.get(m.family)?.[0]?.id;
    else return;
    ev.preventDefault();
    if (next && nodeEls.has(next)) select(next, true);
  }

  // ---- search ----
  const search = document.getElementById('search') as HTMLInputElement;
  const results = document.getElementById('search-results')!;
  const status = document.getElementById('search-status')!;
  let hits: string[] = [];
  let active = 0;
  const ids = data.models.map((m) => m.id);
  const render = () => {
    results.textContent = '';
    hits.slice(0, 50).forEach((id, i) => {
      const li = el('li', { role: 'option', id: `hit-${i}`, 'aria-selected': String(i === active) }, id);
      li.addEventListener('mousedown', (ev) => { ev.preventDefault(); choose(id); });
      results.appendChild(li);
    });
    if (hits.length) search.setAttribute('aria-activedescendant', `hit-${active}`);
    else search.removeAttribute('aria-activedescendant');
  };
  const choose = (id: string) => {
    hits = [];
    render();
    search.setAttribute('aria-expanded', 'false');
    status.textContent = `selected ${id}`;
    select(id, true);
  };
  search.addEventListener('input', () => {
    const q = search.value.trim().toLowerCase();
    for (const g of nodeEls.values()) g.classList.remove('hit');
    if (!q) { hits = []; render(); status.textContent = ''; return; }
    const exact = ids.filter((id) => id.toLowerCase() === q);
    const starts = ids.filter((id) => id.toLowerCase().startsWith(q) && id.toLowerCase() !== q);
    const within = ids.filter((id) => !id.toLowerCase().startsWith(q) && id.toLowerCase().includes(q));
    hits = [...exact, ...starts, ...within];
    active = 0;
    for (const id of hits) nodeEls.get(id)?.classList.add('hit');
    search.setAttribute('aria-expanded', String(hits.length > 0));
    status.textContent = `${plural(hits.length, 'match', 'matches')}`;
    render();
  });
  search.addEventListener('keydown', (ev) => {
    if (ev.key === 'ArrowDown' && hits.length) { active = Math.min(active + 1, Math.min(hits.length, 50) - 1); render(); ev.preventDefault(); }
    else if (ev.key === 'ArrowUp' && hits.length) { active = Math.max(active - 1, 0); render(); ev.preventDefault(); }
    else if (ev.key === 'Enter' && hits.length) { choose(hits[active]!); ev.preventDefault(); }
    else if (ev.key === 'Escape') { search.value = ''; hits = []; render(); }
  });
  document.getElementById('expand-all')!.addEventListener('click', () => panels.forEach((p) => (p.open = true)));
  document.getElementById('collapse-all')!.addEventListener('click', () => panels.forEach((p) => (p.open = false)));
  document.addEventListener('keydown', (ev) => {
    if (ev.key === '/' && document.activeElement !== search) { search.focus(); ev.preventDefault(); }
  });

  // ---- diagnostics ----
  const dg = document.getElementById('diag-body')!;
  const d = data.diagnostics ?? {};
  const dtab = el('table');
  const drow = (k: string, v: string) => {
    const tr = el('tr');
    tr.appendChild(el('th', {}, k));
    tr.appendChild(el('td', {}, v));
    dtab.appendChild(tr);
  };
  const s = d.seconds ?? {};
  drow('backend', `${d.backend ?? '?'}${d.device ? ' (' + d.device + ')' : ''}`);
  drow('threads', String(d.threads ?? '?'));
  drow('bytes read', typeof d.bytesRead === 'number' ? `${d.bytesRead.toLocaleString('en')} (${(d.bytesRead / 1048576).toFixed(1)} MiB)` : '?');
  drow('seconds', ['total', 'headers', 'statistics', 'graph'].map((k) => `${k} ${fmt(s[k], 3)}`).join(', '));
  drow('tensors used', String(d.tensorsUsed ?? '?'));
  drow('tensors skipped', String((d.tensorsSkipped ?? []).length));
  drow('confidence threshold', `${fmt(T)} (--min-confidence)`);
  dg.appendChild(dtab);
  if ((d.tensorsSkipped ?? []).length) {
    const sk = el('details');
    sk.appendChild(el('summary', {}, `Skipped tensors (${d.tensorsSkipped.length})`));
    const t = el('table');
    const hr = el('tr');
    ['tensor', 'reason', 'models'].forEach((h) => hr.appendChild(el('th', {}, h)));
    t.appendChild(hr);
    for (const x of d.tensorsSkipped) {
      const tr = el('tr');
      [x.name, x.reason, (x.models ?? []).join(', ') || 'all'].forEach((v: string) => tr.appendChild(el('td', {}, v)));
      t.appendChild(tr);
    }
    sk.appendChild(t);
    dg.appendChild(sk);
  }
  const wl = el('ul');
  for (const w of d.warnings ?? []) wl.appendChild(el('li', { class: 'warn' }, 'warning: ' + w));
  for (const n of data.notes ?? []) wl.appendChild(el('li', {}, 'note: ' + n));
  if (wl.childNodes.length) dg.appendChild(wl);

  const initial = decodeURIComponent(location.hash.slice(1));
  if (initial && byId.has(initial)) select(initial, false);
  const ms = performance.now() - t0;
  document.body.setAttribute('data-render-ms', ms.toFixed(1));
  document.body.setAttribute('data-ready', 'true');
}
