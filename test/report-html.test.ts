/**
 * The HTML report without a browser: self-containment, safe embedding, the data the page reads,
 * the facts read from model files, and the CLI (`--format html`, `mother report`, `--min-confidence`).
 * What the page draws is checked in a real browser in report-browser.test.ts.
 */
import { mkdtemp, readdir, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../src/cli/main.js';
import type { CliContext } from '../src/cli/context.js';
import { minConfidenceArg, resultFromJson } from '../src/cli/commands/report.js';
import { cardDeclaration, collectHtmlExtras } from '../src/report/html-facts.js';
import { formatHtml, htmlData, scriptJson } from '../src/report/html.js';
import { formatJson } from '../src/report/json.js';
import type { RecoverResult } from '../src/types.js';
import { sampleResult } from './helpers/report-sample.js';

const ZOO_FT = fileURLToPath(new URL('../examples/zoo/ft', import.meta.url));


/** The JSON the page reads, parsed back out of the HTML. */
function embedded(html: string): any {
  const m = /<script type="application\/json" id="mother-data">([\s\S]*?)<\/script>/.exec(html);
  expect(m).not.toBeNull();
  return JSON.parse(m![1]!);
}

describe('formatHtml', () => {
  it('is one self-contained file: inline script and style, no external reference, a CSP that forbids fetches', () => {
    const html = formatHtml(sampleResult());
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html).not.toMatch(/<script[^>]*\ssrc=/i);
    expect(html).not.toMatch(/<link[^>]*rel="stylesheet"/i);
    // The only href values: the empty data: favicon and in-page anchors.
    expect([...html.matchAll(/\shref="([^"]*)"/g)].map((m) => m[1])).toEqual(['data:,', '#forest']);
    expect(html).toContain(`content="default-src 'none'; script-src 'unsafe-inline'`);
    // d3-hierarchy is inlined (its UMD build defines d3.tree and d3.hierarchy).
    expect(html).toMatch(/d3-hierarchy\/ v3\.\d+\.\d+/);
    expect(html).toContain('function pageMain()');
    // 3 script elements, closed exactly 3 times: a hostile id cannot close one early.
    expect(html.match(/<\/script>/g)).toHaveLength(3);
    expect(html).not.toContain('</script><b>x');
  });
  it('embeds the JSON report plus the threshold, facts, distances and notes', () => {
    const r = sampleResult();
    const facts = new Map([['kid b', { dtype: 'F32', format: 'safetensors', files: 1, declared: { baseModel: ['org/root.a'], source: 'model card' } }]]);
    const distances = new Map([[0, { metric: 'L2', ids: ['root.a', 'kid b', '</script><b>x'], values: Float64Array.from([0, 1.234567, 2, 1.234567, 0, 3, 2, 3, 0]) }]]);
    const data = embedded(formatHtml(r, { minConfidence: 0.45, facts, distances, notes: ['a note'] }));
    const json = JSON.parse(formatJson(r));
    expect(data.minConfidence).toBe(0.45);
    expect(data.families).toEqual(json.families);
    expect(data.diagnostics).toEqual(json.diagnostics);
    expect(data.models.map((m: any) => m.id)).toEqual(['root.a', 'kid b', '</script><b>x', 'solo']);
    expect(data.models[1]).toEqual({ ...json.models[1], dtype: 'F32', format: 'safetensors', files: 1, declared: { baseModel: ['org/root.a'], source: 'model card' } });
    expect(data.models[2].kurtosis).toBeNull();
    expect(data.distances['0'].values).toEqual([0, 1.235, 2, 1.235, 0, 3, 2, 3, 0]);
    expect(data.notes).toEqual(['a note']);
    expect(htmlData(r).minConfidence).toBe(0.5);
  });
  it('escapes what could end a script element or confuse JavaScript', () => {
    expect(scriptJson({ a: '</script><!-- \u2028' })).toBe('{"a":"\\u003c/script>\\u003c!-- \\u2028"}');
    expect(formatHtml(sampleResult(), { title: 'a <b> & "c"' })).toContain('<title>a &lt;b&gt; &amp; &quot;c&quot;</title>');
  });
  it('refuses a threshold outside [0, 1]', () => {
    expect(() => formatHtml(sampleResult(), { minConfidence: 2 })).toThrow(expect.objectContaining({ code: 'E_INPUT_OPTION' }));
  });
});

describe('facts read from the model files', () => {
  it('reads base_model and base_model_relation from card front matter in its three spellings', () => {
    expect(cardDeclaration('---\nlicense: mit\nbase_model: org/base\nbase_model_relation: finetune\n---\n# card')).toEqual({ baseModel: ['org/base'], relation: 'finetune' });
    expect(cardDeclaration('---\nbase_model:\n- org/a\n- "org/b"\ntags: [x]\n---\n')).toEqual({ baseModel: ['org/a', 'org/b'] });
    expect(cardDeclaration("---\nbase_model: ['org/a', org/b]  # merged\n---\n")).toEqual({ baseModel: ['org/a', 'org/b'] });
    expect(cardDeclaration('# no front matter\nbase_model: x\n')).toBeNull();
    expect(cardDeclaration('---\nlicense: mit\n---\n')).toBeNull();
  });
  it('reads dtype, format, a declared base and the L2 heatmap of each family (example zoo)', async () => {
    const truth = JSON.parse(await readFile(join(ZOO_FT, 'truth.json'), 'utf8')) as { models: { id: string; path: string; parent: string | null }[] };
    const r: RecoverResult = {
      ...sampleResult(),
      models: truth.models.map((m, i) => ({ id: m.id, path: join(ZOO_FT, m.path), parent: m.parent, confidence: 1, family: 0, kurtosis: i })),
    };
    r.models.push({ id: 'gone', path: join(ZOO_FT, 'no-such-model'), parent: null, confidence: 1, family: 1, kurtosis: 0 });
    const x = await collectHtmlExtras(r, { threads: 1 });
    expect(x.facts.get(truth.models[0]!.id)).toEqual({ dtype: 'F32', files: 1, format: 'safetensors', declared: null });
    expect(x.facts.get('gone')).toEqual({});
    expect(x.notes[0]).toMatch(/dtype and format unknown for 1 model\(s\).*gone/);
    const d = x.distances.get(0)!;
    const n = truth.models.length;
    expect(d.ids).toEqual(truth.models.map((m) => m.id));
    expect(d.values).toHaveLength(n * n);
    for (let i = 0; i < n; i++) {
      expect(d.values[i * n + i]).toBe(0);
      for (let j = 0; j < n; j++) expect(d.values[i * n + j]).toBeCloseTo(d.values[j * n + i]!, 6);
    }
    expect(Math.min(...Array.from(d.values).filter((v, k) => k % (n + 1) !== 0))).toBeGreaterThan(0);
    expect(x.distances.has(1)).toBe(false); // one model: nothing to draw
    // A card in the model's own folder is its declaration.
    const tmp = await mkdtemp(join(tmpdir(), 'mother-card-'));
    try {
      await mkdir(join(tmp, 'kid'));
      await writeFile(join(tmp, 'kid', 'model.safetensors'), await readFile(join(ZOO_FT, truth.models[1]!.path)));
      await writeFile(join(tmp, 'kid', 'README.md'), '---\nbase_model: someone/t0\n---\n');
      const y = await collectHtmlExtras({ ...r, models: [{ ...r.models[1]!, path: join(tmp, 'kid') }] }, { distances: false });
      expect(y.facts.get(truth.models[1]!.id)!.declared).toEqual({ baseModel: ['someone/t0'], source: 'model card' });
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });
});

interface Captured { text: string; isTTY: boolean; write(s: string): boolean }
const stream = (): Captured => ({ text: '', isTTY: false, write(s: string) { this.text += s; return true; } });
let dir: string;
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'mother-report-')); });
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });
function ctx(): { ctx: CliContext; stdout: Captured; stderr: Captured } {
  const stdout = stream(), stderr = stream();
  return { ctx: { stdout, stderr, env: {}, cwd: dir }, stdout, stderr };
}

describe('--min-confidence on the command line', () => {
  it('accepts decimals in [0, 1] and refuses the rest', () => {
    expect(minConfidenceArg('0')).toBe(0);
    expect(minConfidenceArg('1')).toBe(1);
    expect(minConfidenceArg('0.75')).toBe(0.75);
    expect(minConfidenceArg('.5')).toBe(0.5);
    for (const bad of ['', '-0.1', '1.01', 'abc', '0x1', '1e-1', 'NaN', ' ']) expect(() => minConfidenceArg(bad), bad).toThrow(/Expected a number in \[0, 1\] for --min-confidence/);
  });
  it('is a usage error (exit 2, one line) for recover and report, before any work', async () => {
    for (const argv of [['recover', ZOO_FT, '--min-confidence', '2'], ['report', 'r.json', '--min-confidence', 'high'], ['recover', ZOO_FT, '--min-confidence']]) {
      const c = ctx();
      expect(await runCli(argv, c.ctx), argv.join(' ')).toBe(2);
      expect(c.stderr.text).toMatch(/^mother: .*--min-confidence.*\n$/);
      expect(c.stdout.text).toBe('');
    }
  });
  it('moves the marks of a real recovery in text, dot and mermaid', async () => {
    const c = ctx();
    expect(await runCli(['recover', ZOO_FT, '--format', 'json', '--threads', '1', '-q'], c.ctx)).toBe(0);
    await writeFile(join(dir, 'ft.json'), c.stdout.text);
    const json = JSON.parse(c.stdout.text);
    const conf: number[] = json.models.filter((m: any) => m.parent !== null).map((m: any) => m.confidence);
    const t = 0.999;
    const below = conf.filter((x) => x < t).length;
    const dot = ctx();
    expect(await runCli(['report', 'ft.json', '--format', 'dot', '--min-confidence', String(t)], dot.ctx)).toBe(0);
    expect((dot.stdout.text.match(/style=dashed/g) ?? []).length).toBe(below);
    const mmd = ctx();
    expect(await runCli(['report', 'ft.json', '--format', 'mermaid', '--min-confidence', '0'], mmd.ctx)).toBe(0);
    expect(mmd.stdout.text).not.toContain('-.->');
    expect((mmd.stdout.text.match(/-->/g) ?? []).length).toBe(conf.length);
    const txt = ctx();
    expect(await runCli(['report', 'ft.json', '--format', 'text', '--min-confidence', '1'], txt.ctx)).toBe(0);
    const lowLines = txt.stdout.text.split('\n').filter((l) => l.endsWith('[low]')).length;
    expect(lowLines).toBe(json.models.filter((m: any) => m.confidence < 1).length);
  });
});

describe('mother report and --format html', () => {
  it('writes the page atomically from a saved result, by default as html', async () => {
    const r = sampleResult();
    await writeFile(join(dir, 'r.json'), formatJson(r));
    const c = ctx();
    expect(await runCli(['report', 'r.json', '--out', 'r.html', '--min-confidence', '0.85'], c.ctx)).toBe(0);
    expect(c.stderr.text).toBe(`wrote html report to ${join(dir, 'r.html')} (4 models, 2 families)\n`);
    const data = embedded(await readFile(join(dir, 'r.html'), 'utf8'));
    expect(data.minConfidence).toBe(0.85);
    expect(data.models.map((m: any) => m.id)).toEqual(r.models.map((m) => m.id));
    expect(data.notes[0]).toMatch(/dtype and format unknown for 4 model/);
    expect((await readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    // stdout without --out; --no-read skips the files; other formats by extension.
    const s = ctx();
    expect(await runCli(['report', 'r.json', '--no-read'], s.ctx)).toBe(0);
    expect(embedded(s.stdout.text).notes).toEqual([]);
    expect(await runCli(['report', 'r.json', '--out', 'r.dot'], ctx().ctx)).toBe(0);
    expect(await readFile(join(dir, 'r.dot'), 'utf8')).toContain('digraph mother {');
  });
  it('round-trips a JSON result and refuses bad input with exit 2', async () => {
    const r = sampleResult();
    const back = resultFromJson(JSON.parse(formatJson(r)), 'r.json');
    expect(formatJson(back)).toBe(formatJson(r));
    await writeFile(join(dir, 'bad.json'), '{"families": []}');
    for (const argv of [['report'], ['report', 'a.json', 'b.json'], ['report', 'bad.json'], ['report', 'missing.json'], ['report', 'r.json', '--out', 'r.json']]) {
      const c = ctx();
      expect(await runCli(argv, c.ctx), argv.join(' ')).toBe(2);
      expect(c.stderr.text).toMatch(/^mother: .+\n$/);
    }
    const h = ctx();
    expect(await runCli(['report', '--help'], h.ctx)).toBe(0);
    expect(h.stdout.text).toContain('Usage: mother report <result.json>');
  });
  it('recover --out x.html writes the page with dtype, format and heatmaps read from the zoo', async () => {
    const c = ctx();
    expect(await runCli(['recover', ZOO_FT, '--out', 'zoo.html', '--threads', '1', '--min-confidence', '0.6'], c.ctx)).toBe(0);
    expect(c.stderr.text).toMatch(/^wrote html report to .*zoo\.html \(\d+ models, \d+ families\)\n$/);
    const data = embedded(await readFile(join(dir, 'zoo.html'), 'utf8'));
    expect(data.minConfidence).toBe(0.6);
    expect(data.models.every((m: any) => m.dtype === 'F32' && m.format === 'safetensors')).toBe(true);
    const multi = data.families.filter((f: any) => f.size > 1);
    expect(Object.keys(data.distances).sort()).toEqual(multi.map((f: any) => String(f.index)).sort());
    for (const f of multi) expect(data.distances[String(f.index)].values).toHaveLength(f.size * f.size);
  });
});
