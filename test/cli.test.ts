import { mkdtemp, readdir, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventEmitter } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, installInterruptHandler, MAIN_HELP } from '../src/cli/main.js';
import type { CliContext } from '../src/cli/context.js';
import { chooseFormat, parseRecoverArgs, recoverCommand, RECOVER_HELP } from '../src/cli/commands/recover.js';
import { inspectCommand } from '../src/cli/commands/inspect.js';
import { demoCommand } from '../src/cli/commands/demo.js';
import { describeError, exitCodeFor } from '../src/cli/exit.js';
import { ProgressBar, formatCount, formatDuration } from '../src/cli/progress.js';
import { evaluate } from '../src/report/evaluation.js';
import type { RecoverOptions, RecoverResult } from '../src/types.js';
import type { InspectResult } from '../src/inspect.js';

interface Captured { text: string; isTTY: boolean; columns?: number; write(s: string): boolean }
function stream(isTTY = false): Captured {
  return { text: '', isTTY, write(s: string) { this.text += s; return true; } };
}
function context(opts: { tty?: boolean; errTTY?: boolean; env?: Record<string, string>; cwd?: string; signal?: AbortSignal; now?: () => number } = {}) {
  const stdout = stream(opts.tty ?? false);
  const stderr = stream(opts.errTTY ?? false);
  const ctx: CliContext = { stdout, stderr, env: opts.env ?? {}, cwd: opts.cwd ?? dir, signal: opts.signal, now: opts.now };
  return { ctx, stdout, stderr };
}

function result(): RecoverResult {
  return {
    models: [
      { id: 'root.a', path: '/z/root.a', parent: null, confidence: 0.9, family: 0, kurtosis: 3 },
      { id: 'kid b', path: '/z/kid b', parent: 'root.a', confidence: 0.42, family: 0, kurtosis: 2 },
      { id: 'solo', path: '/z/solo', parent: null, confidence: 1, family: 1, kurtosis: 1 },
    ],
    families: [
      { index: 0, root: 'root.a', size: 2, members: ['root.a', 'kid b'], distance: 'ft', evidence: 'l2', direction: 'kurtosis-falls', architecture: 'x' },
      { index: 1, root: 'solo', size: 1, members: ['solo'], distance: 'lora', evidence: 'rank', direction: 'mixed', architecture: 'y' },
    ],
    diagnostics: {
      backend: 'cpu', device: 'avx2', threads: 2, tensorsUsed: 10, tensorsSkipped: [], bytesRead: 100,
      seconds: { total: 0.5, headers: 0.1, statistics: 0.3, graph: 0.1 }, warnings: [],
      skippedModels: [], backendFallback: null,
    },
  };
}

let dir: string;
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'mother-cli-')); });
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

const pkgVersion = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version;

describe('help and version', () => {
  it('prints top-level help and every command help with exit 0', async () => {
    for (const [argv, needle] of [
      [['--help'], 'Usage: mother <command>'],
      [['-h'], 'Usage: mother <command>'],
      [['recover', '--help'], 'Usage: mother recover <dir|model>...'],
      [['inspect', '-h'], 'Usage: mother inspect <model>'],
      [['eval', '--help'], 'Usage: mother eval --truth truth.json result.json'],
      [['demo', '--help'], 'Usage: mother demo'],
      [['help', 'recover'], 'Usage: mother recover'],
    ] as const) {
      const { ctx, stdout, stderr } = context();
      expect(await runCli([...argv], ctx)).toBe(0);
      expect(stdout.text).toContain(needle);
      expect(stderr.text).toBe('');
    }
  });
  it('recover --help documents every flag and the exit codes', () => {
    for (const flag of ['--format', '--out', '--backend', '--device', '--threads', '--method', '--distance', '--lambda', '--include', '--exclude', '--square-only', '--families', '--quiet'])
      expect(RECOVER_HELP).toContain(flag);
    expect(RECOVER_HELP).toContain('130 cancelled');
  });
  it('prints the package version', async () => {
    const { ctx, stdout } = context();
    expect(await runCli(['--version'], ctx)).toBe(0);
    expect(stdout.text).toBe(`mother ${pkgVersion}\n`);
  });
  it('with no command prints help on stderr and exits 2', async () => {
    const { ctx, stdout, stderr } = context();
    expect(await runCli([], ctx)).toBe(2);
    expect(stdout.text).toBe('');
    expect(stderr.text).toBe(MAIN_HELP);
  });
});

describe('usage errors: exit 2 with one line and a hint', () => {
  const cases: Array<[string[], string]> = [
    [['frobnicate'], "mother: unknown command 'frobnicate'; see 'mother --help'"],
    [['--frob'], "mother: unknown option '--frob'; see 'mother --help'"],
    [['recover', 'm', '--frob'], "mother: unknown option '--frob'; see 'mother recover --help'"],
    [['recover'], "mother: recover needs at least one model file or folder; see 'mother recover --help'"],
    [['recover', 'm', '--format', 'xml'], "mother: Expected one of json|text|dot|mermaid|newick|html for --format but received 'xml'"],
    [['recover', 'm', '--backend', 'tpu'], "mother: Expected one of auto|cpu|cuda for --backend but received 'tpu'"],
    [['recover', 'm', '--threads', '0'], "mother: Expected an integer in [1, 256] for --threads but received '0'"],
    [['recover', 'm', '--threads', '2x'], "mother: Expected an integer in [1, 256] for --threads but received '2x'"],
    // 1,000 threads ran with 256 (the native runner's cap) without a word: the same limit everywhere
    [['recover', 'm', '--threads', '1000'], "mother: Expected an integer in [1, 256] for --threads but received '1000'"],
    [['inspect', 'm', '--threads', '257'], "mother: Expected an integer in [1, 256] for --threads but received '257'"],
    [['demo', '--threads', '4096'], "mother: Expected an integer in [1, 256] for --threads but received '4096'"],
    // options without effect are errors, not silence
    [['recover', 'm', '--lambda', '0.5'], "mother: --lambda has an effect only with --method paper (method is mother); see 'mother recover --help'"],
    [['recover', 'm', '--lambda', '0.5', '--method', 'mother'], "mother: --lambda has an effect only with --method paper (method is mother)"],
    [['eval', '--truth', 'a.json', '--truth', 'b.json', 'r.json'], "mother: option --truth was given twice ('a.json' and 'b.json'); give it once; see 'mother eval --help'"],
    [['recover', 'm', '--format', 'json', '--format=dot'], "mother: option --format was given twice ('json' and 'dot'); give it once"],
    [['recover', 'm', '-o', 'a.json', '--out', 'b.json'], "mother: option --out was given twice ('a.json' and 'b.json')"],
    [['recover', 'm', '--bootstrap', '-1'], "mother: option '--bootstrap' argument is ambiguous"],
    [['recover', 'm', '--bootstrap', '2.5'], "mother: Expected an integer in [0, 100000] for --bootstrap but received '2.5'"],
    [['recover', 'm', '--seed', 'x'], "mother: Expected an integer >= -9007199254740991 for --seed but received 'x'"],
    // the --out extension names the format: an unknown one or a contradicting --format is a usage error
    [['recover', 'm', '--out', 'tree.svg'], "mother: --out tree.svg: unknown report extension '.svg' (known: .json .txt .dot .gv .mmd .mermaid .nwk .newick"],
    [['recover', 'm', '--out', 'r.txt', '--format', 'json'], "mother: --format json contradicts the extension of --out r.txt (.txt is text)"],
    [['recover', 'm', '--device=-1'], "mother: Expected an integer >= 0 for --device but received '-1'"],
    [['recover', 'm', '--device', '-1'], "mother: option '--device' argument is ambiguous (for a value starting with '-' write --device=-...); see 'mother recover --help'"],
    [['recover', 'm', '--lambda', 'abc'], "mother: Expected a number >= 0 for --lambda but received 'abc'"],
    [['recover', 'm', '--families', '1.5'], "mother: Expected an integer >= 1 for --families but received '1.5'"],
    [['recover', 'm', '--method', 'magic'], "mother: Expected one of mother|paper for --method but received 'magic'"],
    [['recover', 'm', '--distance', 'l2'], "mother: Expected one of auto|ft|lora for --distance but received 'l2'"],
    [['recover', 'm', '--out', ''], "mother: Expected a non-empty value for --out but received ''"],
    [['recover', 'm', '--out', 'm.safetensors'], "mother: refusing to write the report over a model file: "],
    [['inspect'], "mother: inspect takes exactly one model but received 0; see 'mother inspect --help'"],
    [['inspect', 'a', 'b'], "mother: inspect takes exactly one model but received 2; see 'mother inspect --help'"],
    [['inspect', 'a', '--format', 'dot'], "mother: Expected one of text|json for --format but received 'dot'"],
    [['eval', 'r.json'], "mother: eval needs --truth FILE; see 'mother eval --help'"],
    [['eval', '--truth', 't.json'], "mother: eval takes exactly one result file but received 0; see 'mother eval --help'"],
    [['demo', 'extra'], "mother: unexpected argument 'extra'; see 'mother demo --help'"],
    [['recover', 'm', '--queue', 'q'], "mother: --queue has an effect only with --redis; see 'mother recover --help'"],
    [['recover', 'm', '--redis', 'http://127.0.0.1:6379'], "mother: Expected a redis:// or rediss:// URL (e.g. redis://127.0.0.1:6379) for --redis but received \"http://127.0.0.1:6379\""],
    [['recover', 'm', '--redis', 'redis://127.0.0.1:6379', '--queue', 'a:b'], "mother: Expected a queue name of letters, digits, '_', '.' or '-' for --queue"],
    [['recover', 'm', '--redis', 'redis://127.0.0.1:6379', '--scale', 'exact'], "mother: cluster runs the scale path; it cannot be used with scale 'exact'"],
    [['worker'], "mother: worker needs --redis URL; see 'mother worker --help'"],
    [['worker', '--redis', 'localhost:6379'], "mother: Expected a redis:// or rediss:// URL (e.g. redis://127.0.0.1:6379) for --redis"],
    [['worker', '--redis', 'redis://127.0.0.1:6379', '--path-map', 'nowhere'], "mother: Expected FROM=TO for --path-map but received 'nowhere'"],
    [['worker', '--redis', 'redis://127.0.0.1:6379', '--concurrency', '0'], "mother: Expected an integer in [1, 1024] for --concurrency but received '0'"],
    [['worker', '--redis', 'redis://127.0.0.1:6379', 'extra'], "mother: unexpected argument 'extra'; see 'mother worker --help'"],
  ];
  for (const [argv, message] of cases) {
    it(argv.join(' ') || '(none)', async () => {
      const { ctx, stdout, stderr } = context();
      expect(await runCli(argv, ctx)).toBe(2);
      expect(stdout.text).toBe('');
      expect(stderr.text.split('\n')).toHaveLength(2); // one line + final newline
      expect(stderr.text.startsWith(message)).toBe(true);
    });
  }
  it('a flag missing its value', async () => {
    const { ctx, stderr } = context();
    expect(await runCli(['recover', 'm', '--format'], ctx)).toBe(2);
    expect(stderr.text).toMatch(/^mother: option '--format <value>' argument missing; see 'mother recover --help'\n$/);
  });
});

describe('recover command', () => {
  function fake(res = result()) {
    const calls: Array<{ inputs: string[]; options: RecoverOptions }> = [];
    return { calls, recover: async (inputs: string[], options: RecoverOptions) => { calls.push({ inputs, options }); return res; } };
  }

  it('passes validated options and resolved inputs to recover()', async () => {
    const f = fake();
    const ac = new AbortController();
    const { ctx } = context({ cwd: '/data', signal: ac.signal });
    const code = await recoverCommand(
      ['zoo', '/abs/m.safetensors', '--backend', 'cpu', '--device', '1', '--threads', '3', '--method', 'paper', '--distance', 'lora',
       '--lambda', '0.3', '--include', '*.weight', '--include', 'attn*', '--exclude', 'head*', '--square-only', '--families', '2',
       '--min-elements', '16', '--bootstrap', '20', '--seed=-7', '--strict', '--quiet'],
      ctx, f);
    expect(code).toBe(0);
    expect(f.calls).toHaveLength(1);
    expect(f.calls[0]!.inputs).toEqual(['/data/zoo', '/abs/m.safetensors']);
    expect(f.calls[0]!.options).toEqual({
      backend: 'cpu', device: 1, threads: 3, method: 'paper', distance: 'lora', lambda: 0.3,
      include: ['*.weight', 'attn*'], exclude: ['head*'], squareOnly: true, families: 2, minElements: 16,
      bootstrap: 20, seed: -7, strict: true, signal: ac.signal,
    });
    // the largest thread count both the CLI and recover() accept
    const g = fake();
    await recoverCommand(['m', '--threads', '256', '--bootstrap', '0', '-q'], context().ctx, g);
    expect(g.calls[0]!.options).toMatchObject({ threads: 256, bootstrap: 0 });
    expect(g.calls[0]!.options.strict).toBeUndefined();
  });

  it('chooses text on a TTY, json on a pipe, --format always wins, --out by extension', () => {
    expect(chooseFormat({ format: undefined, out: undefined }, true)).toBe('text');
    expect(chooseFormat({ format: undefined, out: undefined }, false)).toBe('json');
    expect(chooseFormat({ format: 'dot', out: undefined }, true)).toBe('dot');
    expect(() => chooseFormat({ format: 'newick', out: 'x.json' }, false)).toThrow(/--format newick contradicts the extension of --out x.json \(.json is json\)/);
    expect(chooseFormat({ format: 'json', out: 'x.JSON' }, false)).toBe('json');
    expect(() => chooseFormat({ format: undefined, out: 'x.svg' }, false)).toThrow(/unknown report extension '.svg'/);
    expect(() => chooseFormat({ format: 'dot', out: 'x.svg' }, false)).toThrow(/unknown report extension '.svg'/);
    // no extension (a device, a FIFO, a plain name): --format decides, else json
    expect(chooseFormat({ format: 'dot', out: '/dev/stdout' }, true)).toBe('dot');
    expect(chooseFormat({ format: undefined, out: '/dev/null' }, true)).toBe('json');
    // '-' is stdout: the terminal rule applies
    expect(chooseFormat({ format: undefined, out: '-' }, true)).toBe('text');
    expect(chooseFormat({ format: undefined, out: '-' }, false)).toBe('json');
    expect(chooseFormat({ format: undefined, out: 'x.MMD' }, true)).toBe('mermaid');
    expect(chooseFormat({ format: undefined, out: 'x.gv' }, true)).toBe('dot');
    expect(chooseFormat({ format: undefined, out: 'x.nwk' }, true)).toBe('newick');
    expect(chooseFormat({ format: undefined, out: 'x.txt' }, false)).toBe('text');
    expect(chooseFormat({ format: undefined, out: 'report' }, true)).toBe('json');
    expect(parseRecoverArgs(['m']).format).toBeUndefined();
  });

  it('prints json when piped and a coloured tree on a TTY unless NO_COLOR', async () => {
    const piped = context();
    expect(await recoverCommand(['m'], piped.ctx, fake())).toBe(0);
    const json = JSON.parse(piped.stdout.text);
    expect(json.models.map((m: { id: string; parent: string | null }) => [m.id, m.parent])).toEqual([['root.a', null], ['kid b', 'root.a'], ['solo', null]]);

    const tty = context({ tty: true });
    await recoverCommand(['m'], tty.ctx, fake());
    expect(tty.stdout.text).toContain('\x1b[1mFamily 0\x1b[22m');
    expect(tty.stdout.text).toContain('└── kid b');

    const noColor = context({ tty: true, env: { NO_COLOR: '1' } });
    await recoverCommand(['m', '--ascii'], noColor.ctx, fake());
    expect(noColor.stdout.text).not.toContain('\x1b[');
    expect(noColor.stdout.text).toContain('`-- kid b  (conf 0.42) [low]');

    const dot = context({ tty: true });
    await recoverCommand(['m', '--format', 'dot'], dot.ctx, fake());
    expect(dot.stdout.text).toContain('"root.a" -> "kid b" [label="0.42", style=dashed];');
  });

  it('--out writes the report atomically and says so on stderr', async () => {
    const out = join(dir, 'tree.nwk');
    const { ctx, stdout, stderr } = context({ tty: true });
    expect(await recoverCommand(['m', '--out', out], ctx, fake())).toBe(0);
    expect(stdout.text).toBe('');
    expect(await readFile(out, 'utf8')).toBe("('kid b':0.58)root.a;\nsolo;\n");
    expect(stderr.text).toBe(`wrote newick report to ${out} (3 models, 2 families)\n`);
    expect((await readdir(dir)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    // relative --out resolves against cwd; --quiet silences the note
    const q = context({ cwd: dir });
    await recoverCommand(['m', '--out', 'rel.json', '-q'], q.ctx, fake());
    expect(q.stderr.text).toBe('');
    expect(JSON.parse(await readFile(join(dir, 'rel.json'), 'utf8')).families).toHaveLength(2);
  });

  it('--out into a missing folder: exit 2 at once, before any work, naming the folder', async () => {
    const { ctx, stderr } = context();
    const f = fake();
    const code = await runCliWith(['recover', 'm', '--out', join(dir, 'no', 'such', 'x.json')], ctx, f);
    expect(code).toBe(2);
    expect(f.calls).toHaveLength(0); // checked up front, not after the whole computation
    expect(stderr.text).toBe(`mother: cannot write the report to ${join(dir, 'no', 'such', 'x.json')}: the folder ${join(dir, 'no', 'such')} does not exist [E_INPUT_OUTPUT]\n`);
    expect(stderr.text).not.toMatch(/internal|\.tmp/);
  });

  it('draws a throttled progress bar on a TTY stderr only', async () => {
    let t = 0;
    const res = result();
    const progressing = async (_: string[], o: RecoverOptions) => {
      for (let i = 0; i <= 100; i++) { t += 10; o.onProgress?.({ stage: 'statistics', done: i, total: 100 }); }
      o.onProgress?.({ stage: 'done', done: 1, total: 1 });
      return res;
    };
    const tty = context({ errTTY: true, now: () => t });
    await recoverCommand(['m'], tty.ctx, { recover: progressing });
    const draws = tty.stderr.text.split('\r\x1b[2K').filter(Boolean);
    // 101 events 10 ms apart, 100 ms throttle: the stage start, one per 100 ms, and the completion
    expect(draws.length).toBeGreaterThanOrEqual(10);
    expect(draws.length).toBeLessThanOrEqual(12);
    expect(draws.at(-1)).toBe('statistics [########################]  100/100  100%  100/s');
    expect(tty.stderr.text.endsWith('\r\x1b[2K')).toBe(true); // erased before the report

    for (const c of [context({ errTTY: false, now: () => t }), context({ errTTY: true, now: () => t })]) {
      await recoverCommand(c.stderr.isTTY ? ['m', '--quiet'] : ['m'], c.ctx, { recover: progressing });
      expect(c.stderr.text).toBe('');
    }
  });
});

/** runCli with an injected recover: goes through the real error mapping. */
async function runCliWith(argv: string[], ctx: CliContext, deps: { recover: (i: string[], o: RecoverOptions) => Promise<RecoverResult> }) {
  try {
    return await recoverCommand(argv.slice(1), ctx, deps);
  } catch (err) {
    ctx.stderr.write(describeError(err, ctx.env.MOTHER_DEBUG === '1'));
    return exitCodeFor(err);
  }
}

describe('error mapping', () => {
  const thrower = (err: unknown) => ({ recover: async () => { throw err; } });
  it('bad input -> exit 2, one line naming the file', async () => {
    const err = Object.assign(new Error('header length 99999999999 exceeds the file size'), { code: 'E_HEADER_LENGTH', file: '/z/a.safetensors' });
    const { ctx, stderr } = context();
    expect(await runCliWith(['recover', 'm'], ctx, thrower(err))).toBe(2);
    expect(stderr.text).toBe('mother: header length 99999999999 exceeds the file size (file /z/a.safetensors) [E_HEADER_LENGTH]\n');
  });
  it('every bad-input prefix maps to 2', () => {
    for (const code of ['E_INPUT_NONE', 'E_HEADER_JSON', 'E_IO_READ', 'E_SHARD_MISSING', 'E_DTYPE_UNSUPPORTED', 'E_USAGE'])
      expect(exitCodeFor(Object.assign(new Error('x'), { code }))).toBe(2);
    expect(exitCodeFor(Object.assign(new Error('x'), { code: 'E_INTERNAL' }))).toBe(1);
    expect(exitCodeFor(new TypeError('x'))).toBe(1);
    expect(exitCodeFor('a string')).toBe(1);
  });
  it('internal error -> exit 1, stack only with MOTHER_DEBUG=1', async () => {
    const err = new TypeError('cannot read properties of undefined');
    const plain = context();
    expect(await runCliWith(['recover', 'm'], plain.ctx, thrower(err))).toBe(1);
    expect(plain.stderr.text).toBe('mother: internal error: cannot read properties of undefined (set MOTHER_DEBUG=1 for the stack trace)\n');
    const debug = context({ env: { MOTHER_DEBUG: '1' } });
    expect(await runCliWith(['recover', 'm'], debug.ctx, thrower(err))).toBe(1);
    expect(debug.stderr.text.startsWith('mother: internal error: cannot read properties of undefined\nTypeError: cannot read')).toBe(true);
    expect(debug.stderr.text).toContain('cli.test.ts');
  });
  it('a coded environment error -> exit 1 without the "internal error" label', async () => {
    const err = Object.assign(new Error('mother-tree: the CPU addon is not built (looked for x)'), { code: 'E_NATIVE_LOAD' });
    const { ctx, stderr } = context();
    expect(await runCliWith(['recover', 'm'], ctx, thrower(err))).toBe(1);
    expect(stderr.text).toBe('mother: mother-tree: the CPU addon is not built (looked for x) (set MOTHER_DEBUG=1 for the stack trace)\n');
  });
  it('cancellation -> exit 130, "cancelled"', async () => {
    const abort = new DOMException('This operation was aborted', 'AbortError');
    const { ctx, stderr } = context();
    expect(await runCliWith(['recover', 'm'], ctx, thrower(abort))).toBe(130);
    expect(stderr.text).toBe('mother: cancelled\n');
  });
  it('first SIGINT aborts, second exits 130', () => {
    const proc = new EventEmitter();
    const ac = new AbortController();
    const exits: number[] = [];
    installInterruptHandler(proc as never, ac, (c) => exits.push(c));
    proc.emit('SIGINT');
    expect(ac.signal.aborted).toBe(true);
    expect(exits).toEqual([]);
    proc.emit('SIGINT');
    expect(exits).toEqual([130]);
  });
});

describe('progress bar', () => {
  it('renders stage, counts, percent, rate and ETA', () => {
    const bar = new ProgressBar(stream(true), { now: () => 0 });
    bar.update({ stage: 'statistics', done: 0, total: 96 });
    expect(bar.render({ stage: 'statistics', done: 48, total: 96 }, 4000)).toBe('statistics [############............]  48/96  50%  12.0/s  ETA 4s');
    expect(bar.render({ stage: 'statistics', done: 96, total: 96 }, 4000)).toBe('statistics [########################]  96/96  100%  24.0/s');
    // the statistics stage counts tensor elements: millions, shown as such, with a rate and an ETA
    bar.update({ stage: 'headers', done: 0, total: 1 });
    bar.update({ stage: 'statistics', done: 0, total: 12_735_872 });
    expect(bar.render({ stage: 'statistics', done: 2_097_140, total: 12_735_872 }, 2000)).toBe(
      'statistics [####....................]  2.10M/12.7M  16%  1.05M/s  ETA 10s');
    expect(formatCount(9999)).toBe('9999');
    expect(formatCount(10_000)).toBe('10.0k');
    expect(formatCount(999_499)).toBe('999k');
    expect(formatCount(999_500)).toBe('1.00M');
    expect(formatCount(3.2e9)).toBe('3.20G');
    expect(formatDuration(75)).toBe('1m15s');
    expect(formatDuration(7260)).toBe('2h01m');
    expect(formatDuration(Infinity)).toBe('?');
  });
  it('keeps control characters out of the message', () => {
    const bar = new ProgressBar(stream(true), { now: () => 0 });
    expect(bar.render({ stage: 'headers', done: 0, total: 0, message: 'evil\x1b[2Jname\n' }, 0)).toBe('headers    [........................]  0/0  0%  evil?[2Jname?');
  });
  it('fits the terminal width', () => {
    const s = stream(true);
    s.columns = 20;
    const bar = new ProgressBar(s, { now: () => 0 });
    expect(bar.render({ stage: 'headers', done: 1, total: 2, message: 'a long message' }, 0)).toHaveLength(19);
  });
});

describe('eval command', () => {
  // truth: r -> a, b; a -> c, d;  s -> t -> u
  const truth = { split: 'hand', models: [
    { id: 'r', path: 'r', parent: null }, { id: 'a', path: 'a', parent: 'r' }, { id: 'b', path: 'b', parent: 'r' },
    { id: 'c', path: 'c', parent: 'a' }, { id: 'd', path: 'd', parent: 'a' },
    { id: 's', path: 's', parent: null }, { id: 't', path: 't', parent: 's' }, { id: 'u', path: 'u', parent: 't' },
  ] };
  // a<-c reversed, c<-r misplaced, s/t swapped root; 4 of 8 right; undirected 6 of 8
  const pred = (family?: number[]) => ({ models: [
    ['r', null], ['a', 'c'], ['b', 'r'], ['c', 'r'], ['d', 'a'], ['s', 't'], ['t', null], ['u', 't'],
  ].map(([id, parent], i) => (family ? { id, parent, family: family[i] } : { id, parent })) });

  async function files(p: unknown) {
    const sub = await mkdtemp(join(dir, 'eval-'));
    await writeFile(join(sub, 'truth.json'), JSON.stringify(truth));
    await writeFile(join(sub, 'result.json'), typeof p === 'string' ? p : JSON.stringify(p));
    return sub;
  }

  it('text report with known accuracy numbers and the wrong edges', async () => {
    const sub = await files(pred());
    const { ctx, stdout, stderr } = context({ tty: true, cwd: sub });
    expect(await runCli(['eval', '--truth', 'truth.json', 'result.json'], ctx)).toBe(0);
    expect(stderr.text).toBe('');
    expect(stdout.text).toBe([
      'edge accuracy        0.5000  (4/8 parents right)',
      'undirected accuracy  0.7500',
      'clustering ARI       1.0000  (2 true families, 2 predicted from parents)',
      'wrong edges (4):',
      '  a  predicted c, true r  [reversed]',
      '  c  predicted r, true a  [misplaced]',
      '  s  predicted t, true (root)  [missed-root]',
      '  t  predicted (root), true s  [false-root]',
      '',
    ].join('\n'));
  });

  it('json report; families from the family field when present (ARI 0.8549)', async () => {
    const sub = await files(pred([0, 0, 0, 0, 0, 1, 1, 2]));
    const { ctx, stdout } = context({ cwd: sub });
    expect(await runCli(['eval', '--truth', 'truth.json', 'result.json'], ctx)).toBe(0);
    const e = JSON.parse(stdout.text);
    expect(e).toMatchObject({ models: 8, correct: 4, edgeAccuracy: 0.5, undirectedAccuracy: 0.75, ari: 0.8549,
      truthFamilies: 2, predictedFamilies: 3, familiesFrom: 'family field' });
    expect(e.wrong.map((w: { kind: string }) => w.kind)).toEqual(['reversed', 'misplaced', 'missed-root', 'false-root']);
  });

  it('a perfect result scores 1 and lists no wrong edges', async () => {
    const sub = await files(truth);
    const { ctx, stdout } = context({ tty: true, cwd: sub });
    expect(await runCli(['eval', '--truth', 'truth.json', 'result.json', '--format', 'text'], ctx)).toBe(0);
    expect(stdout.text).toContain('edge accuracy        1.0000  (8/8 parents right)');
    expect(stdout.text).toContain('wrong edges: none');
  });

  it('missing and extra ids -> exit 2 with a clear message', async () => {
    const p = pred();
    p.models = p.models.filter((m) => m.id !== 'u' && m.id !== 'd');
    p.models.push({ id: 'zz', parent: null });
    const sub = await files(p);
    const { ctx, stdout, stderr } = context({ cwd: sub });
    expect(await runCli(['eval', '--truth', 'truth.json', 'result.json'], ctx)).toBe(2);
    expect(stdout.text).toBe('');
    expect(stderr.text).toBe(
      `mother: the result (${sub}/result.json) lacks 2 model(s) of the truth (${sub}/truth.json): 'd', 'u'; ` +
        `the result (${sub}/result.json) has 1 model(s) not in the truth (${sub}/truth.json): 'zz' [E_INPUT_MISMATCH]\n`);
  });

  it('unreadable, malformed or shapeless files -> exit 2', async () => {
    const sub = await files('{"models": [');
    for (const [argv, re] of [
      [['--truth', 'truth.json', 'result.json'], /^mother: result file .*result\.json is not valid JSON: .* \[E_INPUT_JSON\]\n$/],
      [['--truth', 'nope.json', 'result.json'], /^mother: cannot read truth file .*nope\.json \(ENOENT\) \[E_INPUT_READ\]\n$/],
      [['--truth', 'truth.json', 'truth.json', '--format', 'json'], null],
    ] as const) {
      const { ctx, stderr } = context({ cwd: sub });
      const code = await runCli(['eval', ...argv], ctx);
      if (re) { expect(code).toBe(2); expect(stderr.text).toMatch(re); } else expect(code).toBe(0);
    }
    await writeFile(join(sub, 'result.json'), JSON.stringify({ models: [{ id: 'r', parent: null }, { id: 'r', parent: null }] }));
    const dup = context({ cwd: sub });
    expect(await runCli(['eval', '--truth', 'truth.json', 'result.json'], dup.ctx)).toBe(2);
    expect(dup.stderr.text).toContain("model id 'r' appears twice");
    await writeFile(join(sub, 'result.json'), '[1,2]');
    const shapeless = context({ cwd: sub });
    expect(await runCli(['eval', '--truth', 'truth.json', 'result.json'], shapeless.ctx)).toBe(2);
    expect(shapeless.stderr.text).toContain('has no "models" array');
  });

  it('a predicted parent that names no model counts as wrong', () => {
    const e = evaluate([{ id: 'a', parent: null }, { id: 'b', parent: 'a' }], [{ id: 'a', parent: null }, { id: 'b', parent: 'ghost' }]);
    expect(e.edgeAccuracy).toBe(0.5);
    expect(e.wrong).toEqual([{ id: 'b', truth: 'a', predicted: 'ghost', kind: 'misplaced' }]);
  });
});

describe('inspect command', () => {
  const sample: InspectResult = {
    id: 'm', path: '/z/m/model.safetensors', files: ['/z/m/model.safetensors'], parameters: 1234567, bytes: 4938268,
    metadata: { format: 'pt' },
    tensors: [
      { name: 'encoder.w', dtype: 'F32', shape: [64, 64], numel: 4096, kurtosis: 3.14159, nonFinite: 0 },
      { name: 'const', dtype: 'F16', shape: [3], numel: 3, kurtosis: NaN, nonFinite: 0 },
      { name: 'ids', dtype: 'I64', shape: [], numel: 1, kurtosis: null, nonFinite: 2 },
    ],
  };
  it('text table and json with NaN as null', async () => {
    const calls: unknown[] = [];
    const deps = { inspectModel: async (p: string, o: unknown) => { calls.push([p, o]); return sample; } };
    const t = context({ tty: true, cwd: '/z' });
    expect(await inspectCommand(['m', '--threads', '2', '--backend', 'cpu'], t.ctx, deps)).toBe(0);
    expect(calls[0]).toEqual(['/z/m', { backend: 'cpu', threads: 2, signal: undefined }]);
    expect(t.stdout.text).toBe([
      'model       m',
      'path        /z/m/model.safetensors',
      'files       /z/m/model.safetensors',
      'parameters  1,234,567 (4.7 MiB)',
      'metadata    format=pt',
      '',
      'tensor     dtype  shape     kurtosis  non-finite',
      'encoder.w  F32    64x64       3.1416           0',
      'const      F16    3              nan           0',
      'ids        I64    (scalar)         -           2',
      '',
    ].join('\n'));
    const j = context();
    await inspectCommand(['m'], j.ctx, deps);
    const obj = JSON.parse(j.stdout.text);
    expect(obj.tensors.map((x: { kurtosis: unknown; kurtosisComputed: boolean }) => [x.kurtosis, x.kurtosisComputed])).toEqual([[3.14159, true], [null, true], [null, false]]);
  });
});

describe('demo command', () => {
  it('recovers each split of the zoo and scores it', async () => {
    const zoo = join(dir, 'zoo');
    await mkdir(join(zoo, 'ft'), { recursive: true });
    await mkdir(join(zoo, 'not-a-split'), { recursive: true });
    await writeFile(join(zoo, 'ft', 'truth.json'), JSON.stringify({ split: 'ft', models: [
      { id: 'root.a', path: 'root.a', parent: null }, { id: 'kid b', path: 'kid b', parent: 'root.a' }, { id: 'solo', path: 'solo', parent: 'root.a' }] }));
    const seen: string[][] = [];
    const { ctx, stdout } = context();
    const code = await demoCommand(['--ascii'], ctx, { zoo, recover: async (inputs) => { seen.push(inputs); return result(); } });
    expect(code).toBe(0);
    expect(seen).toEqual([[join(zoo, 'ft')]]);
    expect(stdout.text).toContain('== ft: 3 models ==');
    expect(stdout.text).toContain('`-- kid b  (conf 0.42) [low]');
    expect(stdout.text).toContain('edge accuracy        0.6667  (2/3 parents right)');
    expect(stdout.text).toContain('solo  predicted (root), true root.a  [false-root]');
  });
  it('a missing zoo is reported, exit 1', async () => {
    const { ctx, stderr } = context();
    expect(await demoCommand([], ctx, { zoo: join(dir, 'nope') })).toBe(1);
    expect(stderr.text).toMatch(/^mother: the example zoo is missing/);
  });
});
