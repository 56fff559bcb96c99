/**
 * The HTML report in a real browser: Debian's chromium (/usr/bin/chromium, `apt-get install -y
 * chromium`) driven by playwright-core; no browser is ever downloaded. Without chromium these tests
 * skip with the reason printed, except under CI=true, where its absence fails the run.
 *
 * Screenshots are written to test-artifacts/ (git-ignored): the example zoo, a hostile sample and,
 * when ../shared/zoo is there, its ft, lora, chain and lm-ft splits.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserContext, Page } from 'playwright-core';
import { recover } from '../src/recover.js';
import { collectHtmlExtras } from '../src/report/html-facts.js';
import { formatHtml } from '../src/report/html.js';
import type { RecoverResult } from '../src/types.js';
import { sampleResult } from './helpers/report-sample.js';

const CHROMIUM = process.env.MOTHER_CHROMIUM ?? '/usr/bin/chromium';
const HAVE = existsSync(CHROMIUM);
const CI = process.env.CI === 'true';
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ZOO_FT = join(ROOT, 'examples', 'zoo', 'ft');
const SHARED_ZOO = join(ROOT, '..', 'shared', 'zoo');
const ARTIFACTS = join(ROOT, 'test-artifacts');

export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

if (!HAVE) {
  const reason = `chromium not found at ${CHROMIUM} (apt-get install -y chromium)`;
  if (CI) {
    describe('HTML report in chromium', () => {
      it('needs chromium under CI=true', () => {
        throw new Error(`${reason}: the browser tests must run in CI`);
      });
    });
  } else {
    console.log(`report-browser.test.ts: skipped, ${reason}`);
  }
}

/** What a test needs to know about one loaded page. */
interface Loaded {
  page: Page;
  errors: string[];
  requests: string[];
}

describe.runIf(HAVE)('HTML report in chromium', () => {
  let context: BrowserContext;
  let userData: string;
  let work: string;
  let zoo: RecoverResult;

  beforeAll(async () => {
    const { chromium } = await import('playwright-core');
    userData = mkdtempSync(join(tmpdir(), 'mother-chromium-'));
    work = mkdtempSync(join(tmpdir(), 'mother-html-'));
    mkdirSync(ARTIFACTS, { recursive: true });
    context = await chromium.launchPersistentContext(userData, {
      executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1400, height: 1000 },
    });
    zoo = await recover([ZOO_FT], { threads: 1 });
  });
  afterAll(async () => {
    await context?.close();
    rmSync(userData, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });

  /** Writes the page to disk and opens it from file://, recording console errors and requests. */
  async function open(html: string, name: string): Promise<Loaded> {
    const file = join(work, `${name}.html`);
    writeFileSync(file, html);
    const page = await context.newPage();
    const errors: string[] = [];
    const requests: string[] = [];
    page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') errors.push(`${m.type()}: ${m.text()}`); });
    page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
    page.on('request', (r) => { if (r.url() !== pathToFileURL(file).href) requests.push(r.url()); });
    await page.goto(pathToFileURL(file).href);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 20_000 });
    return { page, errors, requests };
  }

  async function zooPage(minConfidence = 0.5): Promise<Loaded> {
    const x = await collectHtmlExtras(zoo, { threads: 1 });
    return open(formatHtml(zoo, { minConfidence, facts: x.facts, distances: x.distances, notes: x.notes }), `zoo-${minConfidence}`);
  }

  it('loads from file:// with no console error and no request; draws every model and edge', async () => {
    const { page, errors, requests } = await zooPage();
    expect(errors).toEqual([]);
    expect(requests).toEqual([]);
    const ids = await page.locator('#forest svg.tree .node').evaluateAll((els) => els.map((e) => e.getAttribute('data-id')));
    expect(ids.sort()).toEqual(zoo.models.map((m) => m.id).sort());
    const shown = await page.locator('#forest svg.tree .node text').allTextContents();
    expect(shown.sort()).toEqual(zoo.models.map((m) => m.id).sort());
    const edges = await page.locator('#forest svg.tree .edge').evaluateAll((els) => els.map((e) => `${e.getAttribute('data-parent')}>${e.getAttribute('data-child')}`));
    const byId = new Map(zoo.models.map((m) => [m.id, m]));
    const expected = zoo.models.filter((m) => m.parent !== null && byId.get(m.parent)?.family === m.family).map((m) => `${m.parent}>${m.id}`);
    expect(edges.sort()).toEqual(expected.sort());
    expect(await page.locator('details.family').count()).toBe(new Set(zoo.models.map((m) => m.family)).size);
    // Roots at the top: every edge goes downwards.
    const downward = await page.locator('#forest svg.tree .edge path').evaluateAll((els) =>
      els.every((p) => { const m = /^M[\d.]+,([\d.]+) C[\d.]+,[\d.]+ [\d.]+,[\d.]+ [\d.]+,([\d.]+)$/.exec(p.getAttribute('d')!); return !!m && Number(m[2]) > Number(m[1]); }));
    expect(downward).toBe(true);
    // The heatmaps were drawn (families of the small zoo open with their charts).
    expect(await page.locator('canvas.heatmap').count()).toBe(zoo.families.filter((f) => f.members.length > 1).length);
    await page.screenshot({ path: join(ARTIFACTS, 'report-example-ft.png'), fullPage: true });
    await page.close();
  });

  it('marks every edge below the threshold (class, ? badge, label), and only those', async () => {
    const threshold = 0.999;
    const { page, errors } = await zooPage(threshold);
    expect(errors).toEqual([]);
    const low = zoo.models.filter((m) => m.parent !== null && !(m.confidence >= threshold)).map((m) => m.id).sort();
    expect(low.length).toBeGreaterThan(0);
    const marked = await page.locator('#forest svg.tree .edge.low').evaluateAll((els) => els.map((e) => e.getAttribute('data-child')!));
    expect(marked.sort()).toEqual(low);
    expect(await page.locator('#forest svg.tree .edge.low .badge text').allTextContents()).toEqual(low.map(() => '?'));
    const titles = await page.locator('#forest svg.tree .edge.low > title').allTextContents();
    for (const t of titles) expect(t).toContain('(below 1.00)');
    expect(await page.locator('#summary').textContent()).toContain(`${low.length} edge${low.length === 1 ? '' : 's'} below the confidence threshold 1.00`);
    await page.close();
    // Threshold 0: nothing is marked.
    const none = await zooPage(0);
    expect(await none.page.locator('#forest .edge.low, #forest .node.low').count()).toBe(0);
    await none.page.close();
  });

  it('shows a model\'s details on click and moves along the tree with the keyboard', async () => {
    const { page, errors } = await zooPage();
    const child = zoo.models.find((m) => m.parent !== null && zoo.models.some((c) => c.parent === m.id))!;
    await page.locator(`#forest svg.tree .node[data-id="${child.id}"]`).click();
    await expect.poll(() => page.locator('#details h2').textContent()).toBe(child.id);
    const field = (k: string) => page.locator(`#details dd[data-field="${k}"]`).textContent();
    expect(await field('parent')).toContain(`${child.parent} confidence ${child.confidence.toFixed(2)}`);
    expect(await field('family')).toMatch(new RegExp(`^${child.family} \\(\\d+ models, evidence spectrum, distance `));
    expect(await field('kurtosis')).toBe(child.kurtosis.toFixed(4));
    expect(await field('dtype')).toBe('F32');
    expect(await field('format')).toBe('safetensors');
    expect(await field('declared base')).toBe('none declared');
    // The runner-up as recorded for this model (a bootstrap that always agreed records none).
    if (child.runnerUp) expect(await field('runner-up')).toContain(`confidence ${child.runnerUp.confidence.toFixed(2)}`);
    else expect(await field('runner-up')).toBe('none recorded');
    expect(await page.locator(`#forest .node.selected`).getAttribute('data-id')).toBe(child.id);
    // Keyboard: ArrowUp goes to the parent, ArrowDown to the first child, Enter selects.
    await page.locator(`#forest svg.tree .node[data-id="${child.id}"]`).focus();
    await page.keyboard.press('ArrowUp');
    await expect.poll(() => page.locator('#details h2').textContent()).toBe(child.parent);
    expect(await page.evaluate(() => document.activeElement?.getAttribute('data-id'))).toBe(child.parent);
    await page.keyboard.press('ArrowDown');
    const firstChild = zoo.models.find((m) => m.parent === child.parent)!;
    await expect.poll(() => page.locator('#details h2').textContent()).toBe(firstChild.id);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('finds a model by search and selects it with Enter', async () => {
    const { page, errors } = await zooPage();
    const target = zoo.models[zoo.models.length - 1]!;
    await page.locator('#search').fill(target.id.slice(0, Math.max(2, target.id.length - 1)));
    expect(await page.locator('#search-results li').allTextContents()).toContain(target.id);
    await page.locator('#search').fill(target.id);
    expect((await page.locator('#search-results li').allTextContents())[0]).toBe(target.id);
    await page.locator('#search').press('Enter');
    await expect.poll(() => page.locator('#details h2').textContent()).toBe(target.id);
    expect(await page.locator('#forest .node.selected').getAttribute('data-id')).toBe(target.id);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('renders hostile ids as text, shows warnings and declared bases, collapses families', async () => {
    const r = sampleResult();
    const facts = new Map([['kid b', { declared: { baseModel: ['solo'], source: 'model card' } }]]);
    const { page, errors, requests } = await open(formatHtml(r, { facts }), 'hostile');
    expect(errors).toEqual([]);
    expect(requests).toEqual([]);
    expect(await page.locator('#forest b').count()).toBe(0);
    expect(await page.locator('#forest svg.tree .node text').allTextContents()).toContain('</script><b>x');
    await page.locator('#forest svg.tree .node[data-id="kid b"]').click();
    const field = (k: string) => page.locator(`#details dd[data-field="${k}"]`).textContent();
    expect(await field('warnings')).toBe('kid b: something odd');
    expect(await field('weights')).toBe('DISAGREE: the weights say root.a');
    expect(await field('runner-up')).toBe('(root) confidence 0.20');
    expect(await page.locator('#forest .edge.low').getAttribute('data-child')).toBe('kid b');
    await page.locator('#collapse-all').click();
    expect(await page.locator('details.family[open]').count()).toBe(0);
    // Selecting a model (here from the search) opens its family again.
    await page.locator('#search').fill('solo');
    await page.locator('#search').press('Enter');
    expect(await page.locator('details.family[open]').count()).toBe(1);
    await page.screenshot({ path: join(ARTIFACTS, 'report-hostile.png'), fullPage: true });
    await page.close();
  });

  it('draws the shared zoo splits (screenshots in test-artifacts/)', async (ctx) => {
    const splits = ['ft', 'lora', 'chain', 'lm-ft'].filter((s) => existsSync(join(SHARED_ZOO, s, 'truth.json')));
    if (splits.length === 0) {
      if (CI) throw new Error(`../shared/zoo is missing at ${SHARED_ZOO}`);
      ctx.skip();
    }
    for (const split of splits) {
      const r = await recover([join(SHARED_ZOO, split)], { threads: 2 });
      const x = await collectHtmlExtras(r, { threads: 2 });
      const { page, errors, requests } = await open(formatHtml(r, { facts: x.facts, distances: x.distances, notes: x.notes }), split);
      expect(errors, split).toEqual([]);
      expect(requests, split).toEqual([]);
      expect(await page.locator('#forest svg.tree .node').count(), split).toBe(r.models.length);
      await page.screenshot({ path: join(ARTIFACTS, `report-${split}.png`), fullPage: true });
      await page.close();
    }
  });
});
