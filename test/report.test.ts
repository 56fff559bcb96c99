import { describe, expect, it } from 'vitest';
import type { RecoverResult } from '../src/types.js';
import { formatJson, round } from '../src/report/json.js';
import { formatText, printable } from '../src/report/text.js';
import { dotQuote, formatDot } from '../src/report/dot.js';
import { formatMermaid, mermaidLabel, mermaidNames } from '../src/report/mermaid.js';
import { formatNewick, newickLabel } from '../src/report/newick.js';
import { buildForest } from '../src/report/forest.js';
import { formatReport, REPORT_FORMATS } from '../src/report/index.js';
import { formatHtml } from '../src/report/html.js';

/** Two families plus a single-model one; ids with dots, spaces, quotes, parentheses. */
function sample(): RecoverResult {
  return {
    models: [
      { id: 'base.v1', path: '/z/base.v1/model.safetensors', parent: null, confidence: 0.91234567, family: 0, kurtosis: 3.14159265 },
      { id: 'ft a', path: '/z/ft a/model.safetensors', parent: 'base.v1', confidence: 0.93, family: 0, kurtosis: 2.5,
        runnerUp: { parent: null, confidence: 0.12345 } },
      { id: 'ft "b" (x)', path: '/z/b/model.safetensors', parent: 'base.v1', confidence: 0.4, family: 0, kurtosis: 2.25 },
      { id: "g's_1", path: '/z/g/model.safetensors', parent: 'ft a', confidence: 0.875, family: 0, kurtosis: 1.0000004 },
      { id: 'r2', path: '/z/r2/model.safetensors', parent: null, confidence: 1, family: 1, kurtosis: NaN },
      { id: 'r2-c', path: '/z/r2-c/model.safetensors', parent: 'r2', confidence: 0.6, family: 1, kurtosis: -0.5 },
      { id: 'solo', path: '/z/solo/model.safetensors', parent: null, confidence: 1, family: 2, kurtosis: 0 },
    ],
    families: [
      { index: 0, root: 'base.v1', size: 4, members: ['base.v1', 'ft a', 'ft "b" (x)', "g's_1"], distance: 'ft', evidence: 'l2', direction: 'kurtosis-falls', architecture: 'a1' },
      { index: 1, root: 'r2', size: 2, members: ['r2', 'r2-c'], distance: 'lora', evidence: 'rank', direction: 'mixed', architecture: 'a2' },
      { index: 2, root: 'solo', size: 1, members: ['solo'], distance: 'ft', evidence: 'l2', direction: 'kurtosis-rises', architecture: 'a3' },
    ],
    diagnostics: {
      backend: 'cpu', device: 'avx2', threads: 2, tensorsUsed: 48,
      tensorsSkipped: [{ name: 'classifier.weight', reason: 'shape differs', models: ['solo'] }],
      bytesRead: 1234567, seconds: { total: 1.23456, headers: 0.01, statistics: 1.2, graph: 0.02456 }, warnings: ['one warning'],
      skippedModels: [], backendFallback: null,
    },
  };
}

describe('forest', () => {
  it('survives unknown parents and cycles, printing every model once', () => {
    const r = sample();
    r.models = [
      { ...r.models[0]!, id: 'a', parent: 'b' },
      { ...r.models[0]!, id: 'b', parent: 'a' },
      { ...r.models[0]!, id: 'c', parent: 'nowhere' },
      { ...r.models[0]!, id: 'd', parent: 'c' },
    ];
    r.families = [];
    const forest = buildForest(r);
    expect(forest).toHaveLength(1);
    const seen: string[] = [];
    const visit = (n: { model: { id: string }; children: any[] }): void => { seen.push(n.model.id); n.children.forEach(visit); };
    forest[0]!.roots.forEach(visit);
    expect(seen.sort()).toEqual(['a', 'b', 'c', 'd']);
    expect(forest[0]!.roots.map((n) => [n.model.id, n.detached])).toEqual([['c', true], ['a', true]]);
  });
});

describe('json report', () => {
  it('keeps truth.json fields first, fixed key order, rounded numbers, NaN as null', () => {
    const text = formatJson(sample());
    expect(text.endsWith('}\n')).toBe(true);
    const obj = JSON.parse(text);
    expect(Object.keys(obj)).toEqual(['models', 'families', 'diagnostics']);
    expect(Object.keys(obj.models[0])).toEqual(['id', 'path', 'parent', 'confidence', 'family', 'kurtosis']);
    expect(obj.models[0]).toEqual({ id: 'base.v1', path: '/z/base.v1/model.safetensors', parent: null, confidence: 0.9123, family: 0, kurtosis: 3.14159 });
    expect(obj.models[1].runnerUp).toEqual({ parent: null, confidence: 0.1235 });
    expect(obj.models[2].id).toBe('ft "b" (x)');
    expect(obj.models[3].kurtosis).toBe(1);
    expect(obj.models[4].kurtosis).toBeNull();
    expect(obj.families[2]).toEqual({ index: 2, root: 'solo', size: 1, members: ['solo'], distance: 'ft', evidence: 'l2', direction: 'kurtosis-rises', architecture: 'a3' });
    expect(obj.diagnostics.seconds).toEqual({ total: 1.235, headers: 0.01, statistics: 1.2, graph: 0.025 });
    expect(obj.diagnostics.tensorsSkipped).toEqual([{ name: 'classifier.weight', reason: 'shape differs', models: ['solo'] }]);
    // 2-space indent
    expect(text.split('\n')[1]).toBe('  "models": [');
    expect(text).toContain('\n      "id": "ft \\"b\\" (x)",\n');
  });
  it('rounds without negative zero and maps non-finite to null', () => {
    expect(round(-0.00001, 4)).toBe(0);
    expect(Object.is(round(-0.00001, 4), -0)).toBe(false);
    expect(round(Infinity, 4)).toBeNull();
    expect(round(0.123456, 4)).toBe(0.1235);
  });
});

describe('text report', () => {
  it('draws each family as a box-drawing tree (golden)', () => {
    expect(formatText(sample())).toBe(
      [
        'Family 0 (4 models, evidence l2, distance ft, kurtosis falls parent→child)',
        'base.v1  (root, conf 0.91)',
        '├── ft a  (conf 0.93)',
        "│   └── g's_1  (conf 0.88)",
        '└── ft "b" (x)  (conf 0.40) [low]',
        '',
        'Family 1 (2 models, evidence rank, distance lora, direction mixed)',
        'r2  (root, conf 1.00)',
        '└── r2-c  (conf 0.60)',
        '',
        'Family 2 (1 model, evidence l2, distance ft, kurtosis rises parent→child)',
        'solo  (root, conf 1.00)',
        '',
        '[low]: 1 call with confidence below 0.50 (--min-confidence)',
        '',
        '7 models, 3 families; cpu (avx2), 2 threads; 48 tensors used, 1 skipped; 1.23 s',
        'warning: one warning',
        '',
      ].join('\n'),
    );
  });
  it('has a pure-ASCII fallback', () => {
    const t = formatText(sample(), { ascii: true, diagnostics: false });
    expect(t).toBe(
      [
        'Family 0 (4 models, evidence l2, distance ft, kurtosis falls parent->child)',
        'base.v1  (root, conf 0.91)',
        '|-- ft a  (conf 0.93)',
        "|   `-- g's_1  (conf 0.88)",
        '`-- ft "b" (x)  (conf 0.40) [low]',
        '',
        'Family 1 (2 models, evidence rank, distance lora, direction mixed)',
        'r2  (root, conf 1.00)',
        '`-- r2-c  (conf 0.60)',
        '',
        'Family 2 (1 model, evidence l2, distance ft, kurtosis rises parent->child)',
        'solo  (root, conf 1.00)',
        '',
        '[low]: 1 call with confidence below 0.50 (--min-confidence)',
        '',
      ].join('\n'),
    );
    expect(/^[\x0a\x20-\x7e]*$/.test(t)).toBe(true);
  });
  it('colours only when asked, and the threshold moves the [low] marks', () => {
    expect(formatText(sample())).not.toContain('\x1b[');
    const c = formatText(sample(), { color: true });
    expect(c).toContain('\x1b[1mFamily 0\x1b[22m');
    expect(c).toContain('\x1b[33m[low]\x1b[39m');
    const strict = formatText(sample(), { lowConfidence: 0.9, diagnostics: false });
    expect(strict.match(/\[low\]$/gm)).toHaveLength(3); // 0.4, 0.875, 0.6
    expect(strict).toContain('\n[low]: 3 calls with confidence below 0.90 (--min-confidence)\n');
  });
  it('escapes control characters in ids and marks detached nodes', () => {
    expect(printable('a\x1b[31mb\n')).toBe('a\\x1b[31mb\\x0a');
    const r = sample();
    r.models = [{ ...r.models[0]!, id: 'x', parent: 'gone', family: 0 }];
    r.families = [];
    expect(formatText(r, { diagnostics: false })).toBe('Family 0 (1 model)\nx  (conf 0.91) [parent gone not in this tree]\n');
  });
});

describe('dot report', () => {
  it('quotes ids safely', () => {
    expect(dotQuote('a"b')).toBe('"a\\"b"');
    expect(dotQuote('tail\\')).toBe('"tail\\\\"');
    expect(dotQuote('two\nlines')).toBe('"two\\nlines"');
  });
  it('clusters families and labels edges with confidence (golden)', () => {
    expect(formatDot(sample())).toBe(
      [
        'digraph mother {',
        '  rankdir=TB;',
        '  node [shape=box, fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=10];',
        '  subgraph cluster_0 {',
        '    label="family 0 (4 models, ft)";',
        '    "base.v1" [label="base.v1", peripheries=2];',
        '    "ft a" [label="ft a"];',
        `    "g's_1" [label="g's_1"];`,
        '    "ft \\"b\\" (x)" [label="ft \\"b\\" (x)"];',
        '  }',
        '  subgraph cluster_1 {',
        '    label="family 1 (2 models, lora)";',
        '    "r2" [label="r2", peripheries=2];',
        '    "r2-c" [label="r2-c"];',
        '  }',
        '  subgraph cluster_2 {',
        '    label="family 2 (1 model, ft)";',
        '    "solo" [label="solo", peripheries=2];',
        '  }',
        '  subgraph cluster_legend {',
        '    label="legend";',
        '    legend [shape=note, label="dashed edge: confidence below 0.50 (1 edge)"];',
        '  }',
        '  "base.v1" -> "ft a" [label="0.93"];',
        '  "base.v1" -> "ft \\"b\\" (x)" [label="0.40", style=dashed];',
        `  "ft a" -> "g's_1" [label="0.88"];`,
        '  "r2" -> "r2-c" [label="0.60"];',
        '}',
        '',
      ].join('\n'),
    );
  });
});

describe('mermaid report', () => {
  it('sanitises node names uniquely and escapes labels', () => {
    const names = mermaidNames(['a.b', 'a b', 'a_b', 'end']);
    expect([...names.values()]).toEqual(['m_a_b', 'm_a_b_2', 'm_a_b_3', 'm_end']);
    expect(mermaidLabel('say "hi" #1 <b>')).toBe('say #quot;hi#quot; #35;1 #lt;b#gt;');
  });
  it('draws graph TD with subgraphs per family (golden)', () => {
    expect(formatMermaid(sample())).toBe(
      [
        'graph TD',
        '  subgraph family_0["family 0 (4 models, ft)"]',
        '    m_base_v1(["base.v1"])',
        '    m_ft_a["ft a"]',
        `    m_g_s_1["g's_1"]`,
        '    m_ft__b___x_["ft #quot;b#quot; (x)"]',
        '  end',
        '  subgraph family_1["family 1 (2 models, lora)"]',
        '    m_r2(["r2"])',
        '    m_r2_c["r2-c"]',
        '  end',
        '  subgraph family_2["family 2 (1 model, ft)"]',
        '    m_solo(["solo"])',
        '  end',
        '  m_base_v1 -->|0.93| m_ft_a',
        '  m_base_v1 -.->|0.40| m_ft__b___x_',
        '  m_ft_a -->|0.88| m_g_s_1',
        '  m_r2 -->|0.60| m_r2_c',
        '  %% dotted links: confidence below 0.50 (1 link)',
        '',
      ].join('\n'),
    );
  });
});

describe('newick report', () => {
  it('quotes labels per Newick rules', () => {
    expect(newickLabel('base.v1')).toBe('base.v1');
    expect(newickLabel('a b')).toBe("'a b'");
    expect(newickLabel('a_b')).toBe("'a_b'"); // unquoted _ would read as a blank
    expect(newickLabel("g's")).toBe("'g''s'");
    expect(newickLabel('f(x),y;z:w[c]')).toBe("'f(x),y;z:w[c]'");
    expect(newickLabel('')).toBe("''");
  });
  it('writes one ;-terminated tree per family, branch length 1-confidence (golden)', () => {
    expect(formatNewick(sample())).toBe(
      ["(('g''s_1':0.125)'ft a':0.07,'ft \"b\" (x)':0.6)base.v1;", '(r2-c:0.4)r2;', 'solo;', ''].join('\n'),
    );
    expect(formatNewick(sample(), { branchLengths: false })).toBe(
      ["(('g''s_1')'ft a','ft \"b\" (x)')base.v1;", '(r2-c)r2;', 'solo;', ''].join('\n'),
    );
  });
  it('handles a 20000-long chain without exhausting the stack', () => {
    const r = sample();
    r.models = Array.from({ length: 20000 }, (_, i) => ({
      id: `m${i}`, path: '', parent: i ? `m${i - 1}` : null, confidence: 1, family: 0, kurtosis: 0,
    }));
    r.families = [];
    const nwk = formatNewick(r, { branchLengths: false });
    expect(nwk.startsWith('('.repeat(19999) + 'm19999)m19998)')).toBe(true);
    expect(nwk.endsWith(')m0;\n')).toBe(true);
    r.models.length = 2000; // text indents per level: quadratic by nature, keep it small
    expect(formatText(r, { diagnostics: false }).split('\n')).toHaveLength(2002);
  });
});

describe('formatReport', () => {
  it('dispatches every format', () => {
    const r = sample();
    expect(REPORT_FORMATS).toEqual(['json', 'text', 'dot', 'mermaid', 'newick', 'html']);
    expect(formatReport(r, 'json')).toBe(formatJson(r));
    expect(formatReport(r, 'text', { ascii: true })).toBe(formatText(r, { ascii: true }));
    expect(formatReport(r, 'dot')).toBe(formatDot(r));
    expect(formatReport(r, 'mermaid')).toBe(formatMermaid(r));
    expect(formatReport(r, 'newick')).toBe(formatNewick(r));
    expect(formatReport(r, 'html', { minConfidence: 0.7 })).toBe(formatHtml(r, { minConfidence: 0.7 }));
  });
});

describe('--min-confidence in text, dot and mermaid', () => {
  it('moves the marks and the legend with the threshold', () => {
    const r = sample();
    // Non-root calls: 0.93, 0.40, 0.875, 0.60; at 0.9: 0.40, 0.875 and 0.60 are doubtful.
    const dot = formatDot(r, { minConfidence: 0.9 });
    expect(dot.match(/style=dashed/g)).toHaveLength(3);
    expect(dot).toContain('"ft a" -> "g\'s_1" [label="0.88", style=dashed];');
    expect(dot).toContain('legend [shape=note, label="dashed edge: confidence below 0.90 (3 edges)"];');
    const mmd = formatMermaid(r, { minConfidence: 0.9 });
    expect(mmd.match(/-\.->/g)).toHaveLength(3);
    expect(mmd).toContain('  m_base_v1 -->|0.93| m_ft_a\n');
    expect(mmd).toContain('%% dotted links: confidence below 0.90 (3 links)');
    // 0: nothing is doubtful, no legend anywhere.
    expect(formatText(r, { minConfidence: 0 })).not.toContain('[low]');
    expect(formatDot(r, { minConfidence: 0 })).not.toMatch(/dashed|legend/);
    expect(formatMermaid(r, { minConfidence: 0 })).not.toMatch(/-\.->|%%/);
    // 1: everything but the certain calls (1.0) is doubtful; text marks root calls too (0.91).
    expect(formatText(r, { minConfidence: 1, diagnostics: false }).match(/\[low\]$/gm)).toHaveLength(5);
    // minConfidence wins over the older lowConfidence.
    expect(formatDot(r, { minConfidence: 0.9, lowConfidence: 0.1 })).toBe(dot);
    expect(formatReport(r, 'dot', { minConfidence: 0.9 })).toBe(dot);
    expect(formatReport(r, 'mermaid', { minConfidence: 0.9 })).toBe(mmd);
  });
  it('refuses a threshold outside [0, 1] with E_INPUT_OPTION', () => {
    for (const bad of [-0.1, 1.5, NaN, Infinity])
      for (const f of REPORT_FORMATS.filter((x) => !['json', 'newick'].includes(x)))
        expect(() => formatReport(sample(), f, { minConfidence: bad }), `${f} ${bad}`).toThrow(
          expect.objectContaining({ code: 'E_INPUT_OPTION', message: expect.stringContaining('[0, 1]') }),
        );
  });
});
