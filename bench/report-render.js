// The HTML report at scale: a synthetic 1,000-model result (families of 400, 200, 100, 5 x 50,
// 50 singletons... see below), written with formatHtml and opened in Debian's chromium
// (playwright-core, /usr/bin/chromium) from file://. Prints size, build time, time to a drawn page
// (navigation start to body[data-ready]), the page's own script time, expand-all and search.
//   npm run build:ts && node bench/report-render.js [--models N] [--runs N] [--dist DIR] [--json FILE]
// Not a timed test: the numbers are kept in docs/report.md ("Measured").
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const arg = (name, dflt) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : dflt; };
const N = Number(arg('--models', '1000'));
const RUNS = Number(arg('--runs', '3'));
const dist = resolve(arg('--dist', join(root, 'dist')));
const CHROMIUM = process.env.MOTHER_CHROMIUM ?? '/usr/bin/chromium';
if (!existsSync(CHROMIUM)) { console.error(`chromium not found at ${CHROMIUM} (apt-get install -y chromium)`); process.exit(1); }

const { formatHtml } = await import(pathToFileURL(join(dist, 'report', 'html.js')).href);
const { chromium } = await import('playwright-core');

function mulberry32(a) {
  return () => { a |= 0; a = (a + 0x6d2b79f5) | 0; let t = Math.imul(a ^ (a >>> 15), 1 | a); t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t; return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
}

/** Families of 40%, 20%, 10%, then 5% each, then singletons; random trees, random confidences. */
export function syntheticResult(n, seed = 1) {
  const rnd = mulberry32(seed);
  const sizes = [];
  let left = n;
  for (const f of [0.4, 0.2, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05]) { const s = Math.min(left, Math.round(n * f)); if (s > 0) sizes.push(s); left -= s; }
  while (left-- > 0) sizes.push(1);
  const models = [], families = [];
  sizes.forEach((size, fi) => {
    const ids = [];
    for (let k = 0; k < size; k++) {
      const id = `org${fi}--model-${fi}-${k}${k % 7 === 0 ? '-instruct-v2' : ''}`;
      const parent = k === 0 ? null : ids[Math.floor(rnd() * Math.min(k, 1 + k * 0.6)) ]; // bushy but deep enough
      const confidence = Math.round((k === 0 ? 0.7 + 0.3 * rnd() : rnd() < 0.15 ? 0.2 + 0.3 * rnd() : 0.5 + 0.5 * rnd()) * 1e4) / 1e4;
      models.push({ id, path: `/hub/${id}`, parent, confidence, family: fi, kurtosis: 3 - 0.01 * k * rnd(),
        ...(parent ? { runnerUp: { parent: ids[0], confidence: Math.round(rnd() * 1e4) / 1e4 } } : {}) });
      ids.push(id);
    }
    families.push({ index: fi, root: ids[0], members: ids, distance: fi % 3 === 1 ? 'lora' : 'ft', direction: 'kurtosis-falls', architecture: `a${fi}` });
  });
  return { models, families, diagnostics: { backend: 'cpu', device: 'avx2', threads: 2, tensorsUsed: 100, tensorsSkipped: [], bytesRead: 1e9,
    seconds: { total: 10, headers: 1, statistics: 8, graph: 1 }, warnings: [] } };
}

const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const result = syntheticResult(N);
let t = performance.now();
const html = formatHtml(result);
const buildMs = performance.now() - t;
const work = mkdtempSync(join(tmpdir(), 'mother-report-bench-'));
const file = join(work, 'report.html');
writeFileSync(file, html);
const ctx = await chromium.launchPersistentContext(join(work, 'profile'), {
  executablePath: CHROMIUM, headless: true, viewport: { width: 1400, height: 1000 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const rows = [];
try {
  for (let run = 0; run < RUNS; run++) {
    const page = await ctx.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    t = performance.now();
    await page.goto(pathToFileURL(file).href);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
    const readyMs = performance.now() - t;
    const scriptMs = Number(await page.getAttribute('body', 'data-render-ms'));
    const nodes = await page.locator('#forest svg.tree .node').count();
    const closed = await page.locator('details.family:not([open])').count();
    t = performance.now();
    await page.click('#expand-all');
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    const expandMs = performance.now() - t;
    t = performance.now();
    await page.fill('#search', `model-0-${Math.floor(N * 0.3)}`);
    await page.press('#search', 'Enter');
    await page.waitForFunction(() => document.querySelector('#details h2')?.textContent?.startsWith('org0--model-0-'));
    const searchMs = performance.now() - t;
    if (errors.length) throw new Error(`page errors: ${errors.join('; ')}`);
    if (nodes !== N) throw new Error(`drew ${nodes} nodes for ${N} models`);
    rows.push({ readyMs, scriptMs, expandMs, searchMs, closedAtLoad: closed });
    await page.close();
  }
} finally {
  await ctx.close();
  rmSync(work, { recursive: true, force: true });
}
const out = {
  models: N, families: result.families.length, bytes: Buffer.byteLength(html), buildMs: Math.round(buildMs),
  readyMs: Math.round(median(rows.map((r) => r.readyMs))), scriptMs: Math.round(median(rows.map((r) => r.scriptMs))),
  expandAllMs: Math.round(median(rows.map((r) => r.expandMs))), searchMs: Math.round(median(rows.map((r) => r.searchMs))),
  familiesCollapsedAtLoad: rows[0].closedAtLoad, runs: RUNS,
};
console.log(`report-render: ${N} models, ${out.families} families, ${(out.bytes / 1024).toFixed(0)} KiB; build ${out.buildMs} ms; ` +
  `chromium: drawn in ${out.readyMs} ms (page script ${out.scriptMs} ms), expand all ${out.expandAllMs} ms, search ${out.searchMs} ms (median of ${RUNS})`);
const jsonOut = arg('--json');
if (jsonOut) writeFileSync(jsonOut, JSON.stringify(out, null, 2) + '\n');
