/**
 * HTML report: ONE self-contained file (no network, no server; opens from file://) that draws each
 * family as an SVG tree, marks calls below the confidence threshold, shows a model's details on
 * selection, per-family distance heatmaps and kurtosis down the tree, and the diagnostics.
 *
 * Everything is inlined: the JSON result (as in `--format json`, plus the optional facts below),
 * d3-hierarchy's UMD build (the tree layout, read from node_modules at report time), and the page
 * script and style of html-page.ts. A Content-Security-Policy forbids every fetch, so a page that
 * tried to reach the network would fail loudly in the browser tests.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { RecoverResult } from '../types.js';
import { confidenceThreshold } from './forest.js';
import { PAGE_CSS, pageMain } from './html-page.js';
import { round, toJsonObject } from './json.js';

/** What a model's files say about it, beyond the result: shown in the details panel. */
export interface ModelFacts {
  /** e.g. 'F32', or 'BF16+F32' when mixed (most frequent first). */
  dtype?: string;
  /** e.g. 'safetensors', 'safetensors (sharded)'. */
  format?: string;
  files?: number;
  /** The base model a card or config names (null: the files declare none). */
  declared?: { baseModel: string[]; relation?: string; source: string } | null;
  /** Typed parents, for results that carry several (merges). */
  parents?: { id: string; relation?: string; weight?: number }[];
  relation?: string;
}

/** A family's pairwise distances, N x N row-major over `ids`. */
export interface FamilyDistances {
  metric: string;
  ids: string[];
  values: ArrayLike<number>;
}

export interface HtmlOptions {
  /** Calls below this are marked (default 0.5). */
  minConfidence?: number;
  /** Older name of `minConfidence`. */
  lowConfidence?: number;
  /** Page title (default 'mother: heritage report'). */
  title?: string;
  /** Per model id. */
  facts?: Map<string, ModelFacts> | Record<string, ModelFacts>;
  /** Per family index. */
  distances?: Map<number, FamilyDistances>;
  /** Lines shown under Diagnostics (e.g. why a heatmap is missing). */
  notes?: string[];
}

let d3Source: string | undefined;

/** d3-hierarchy's minified UMD build (defines `d3.hierarchy`, `d3.tree`), read once. */
export function d3HierarchySource(): string {
  if (d3Source === undefined) {
    const require = createRequire(import.meta.url);
    // The package's "exports" map hides package.json; its main file sits beside the UMD build.
    const main = require.resolve('d3-hierarchy');
    d3Source = readFileSync(join(dirname(main), 'd3-hierarchy.min.js'), 'utf8');
  }
  return d3Source;
}

/** JSON that is safe inside <script>: no `<` (so no `</script>` or `<!--`), no U+2028/9. */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

/** Text for an HTML element or attribute. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Inline script text: a `</script` inside would end the element early. */
function inlineScript(src: string): string {
  return src.replace(/<\/(script)/gi, '<\\/$1');
}

function roundSignificant(x: number, digits: number): number | null {
  if (!Number.isFinite(x)) return null;
  return x === 0 ? 0 : Number(x.toPrecision(digits));
}

/** The data the page reads: the JSON report, the threshold, and the optional facts and distances. */
export function htmlData(result: RecoverResult, options: HtmlOptions = {}): Record<string, unknown> {
  const minConfidence = confidenceThreshold(options);
  const obj = toJsonObject(result) as { models: Record<string, unknown>[] } & Record<string, unknown>;
  const facts = options.facts instanceof Map ? options.facts : new Map(Object.entries(options.facts ?? {}));
  for (const row of obj.models) {
    const f = facts.get(row.id as string);
    if (!f) continue;
    for (const key of ['relation', 'parents', 'dtype', 'format', 'files', 'declared'] as const)
      if (f[key] !== undefined) row[key] = f[key];
  }
  const distances: Record<string, unknown> = {};
  for (const [fi, d] of options.distances ?? []) {
    distances[String(fi)] = { metric: d.metric, ids: [...d.ids], values: Array.from(d.values, (v) => roundSignificant(v, 4)) };
  }
  return { minConfidence: round(minConfidence, 6), ...obj, distances, notes: options.notes ?? [] };
}

/** The self-contained HTML page for `result`. */
export function formatHtml(result: RecoverResult, options: HtmlOptions = {}): string {
  const data = htmlData(result, options);
  const title = options.title ?? 'mother: heritage report';
  const csp = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'";
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="generator" content="mother-tree">
<link rel="icon" href="data:,">
<title>${escapeHtml(title)}</title>
<style>${PAGE_CSS}</style>
</head>
<body>
<a class="visually-hidden" href="#forest">Skip to the trees</a>
<header>
  <h1>${escapeHtml(title)}</h1>
  <span id="summary" role="status"></span>
  <div id="search-box">
    <label for="search" class="visually-hidden">Search models by id</label>
    <input id="search" type="search" placeholder="Search by id (press /)" autocomplete="off" role="combobox" aria-autocomplete="list" aria-controls="search-results" aria-expanded="false">
    <ul id="search-results" role="listbox" aria-label="Matching models"></ul>
    <span id="search-status" class="visually-hidden" aria-live="polite"></span>
  </div>
  <button type="button" id="expand-all">Expand all</button>
  <button type="button" id="collapse-all">Collapse all</button>
  <div id="legend" class="legend" aria-label="Legend"></div>
</header>
<noscript><p>This report draws its trees with JavaScript; the data is in the script element #mother-data (JSON).</p></noscript>
<div class="layout">
  <main id="forest" aria-label="Families"></main>
  <aside id="details" aria-live="polite" aria-label="Selected model"><p>Select a model (click, or Tab to it and press Enter) to see its parent, runner-up, family, kurtosis, dtype, format, declared base and warnings.</p></aside>
</div>
<section id="diagnostics" aria-labelledby="diag-h"><h2 id="diag-h">Diagnostics</h2><div id="diag-body"></div></section>
<script type="application/json" id="mother-data">${scriptJson(data)}</script>
<script>${inlineScript(d3HierarchySource())}</script>
<script>${inlineScript(`(${pageMain.toString()})();`)}</script>
</body>
</html>
`;
}
