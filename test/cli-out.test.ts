// `--out` safety, and what the CLI prints where: devices and FIFOs written in place (never
// replaced), symlink targets replaced atomically (the link kept), '-' for stdout, the output
// checked before any work, warnings on stderr, exit 3 for a partial result, inspect on a folder.
import { execFileSync } from 'node:child_process';
import { createReadStream, lstatSync, readlinkSync, statSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../src/cli/main.js';
import type { CliContext } from '../src/cli/context.js';
import { recoverCommand } from '../src/cli/commands/recover.js';
import { describeError, exitCodeFor, EXIT_PARTIAL } from '../src/cli/exit.js';
import { resolveOutputTarget } from '../src/util/atomic-write.js';
import type { RecoverOptions, RecoverResult } from '../src/types.js';
import { makeTempDir, removeTempDir } from './helpers/safetensors.js';
import { expectValidInspect, expectValidResult } from './helpers/schema.js';
import { writeTree } from './helpers/tree.js';

interface Captured { text: string; isTTY: boolean; write(s: string): boolean }
const stream = (isTTY = false): Captured => ({ text: '', isTTY, write(s: string) { this.text += s; return true; } });
function context(cwd: string, tty = false) {
  const stdout = stream(tty), stderr = stream(false);
  const ctx: CliContext = { stdout, stderr, env: {}, cwd };
  return { ctx, stdout, stderr };
}

function result(extra: Partial<RecoverResult['diagnostics']> = {}): RecoverResult {
  return {
    models: [
      { id: 'a', path: '/z/a', parent: null, confidence: 1, family: 0, kurtosis: 3 },
      { id: 'b', path: '/z/b', parent: 'a', confidence: 0.9, family: 0, kurtosis: 2 },
    ],
    families: [{ index: 0, root: 'a', size: 2, members: ['a', 'b'], distance: 'ft', evidence: 'l2', direction: 'kurtosis-falls', architecture: 'x' }],
    diagnostics: {
      backend: 'cpu', device: 'avx2', threads: 2, tensorsUsed: 4, tensorsSkipped: [], bytesRead: 10,
      seconds: { total: 0.1, headers: 0, statistics: 0.1, graph: 0 }, warnings: [], skippedModels: [],
      backendFallback: 'CUDA not used: the CUDA addon is not built', ...extra,
    },
  };
}

/** A recover() stand-in that counts its calls. */
function fake(res = result()) {
  const calls: RecoverOptions[] = [];
  return { calls, recover: async (_: string[], o: RecoverOptions) => { calls.push(o); return res; } };
}

/** recoverCommand with the real error mapping. */
async function run(argv: string[], ctx: CliContext, deps: ReturnType<typeof fake>): Promise<number> {
  try {
    return await recoverCommand(argv, ctx, deps);
  } catch (err) {
    ctx.stderr.write(describeError(err, false));
    return exitCodeFor(err);
  }
}

const EXPECTED_JSON = () => JSON.parse(JSON.stringify(expectValidResult(result())));

let dir: string;
beforeAll(async () => { dir = await makeTempDir('mother-cli-out-'); });
afterAll(async () => { await removeTempDir(dir); });

describe('--out targets', () => {
  it("'-' is stdout", async () => {
    const { ctx, stdout, stderr } = context(dir);
    expect(await run(['m', '--out', '-'], ctx, fake())).toBe(0);
    expect(JSON.parse(stdout.text)).toEqual(EXPECTED_JSON());
    expect(stderr.text).toBe('');
    expect(await readdir(dir)).not.toContain('-');
    const tty = context(dir, true);
    expect(await run(['m', '-o', '-', '--format', 'newick'], tty.ctx, fake())).toBe(0);
    expect(tty.stdout.text).toBe('(b:0.1)a;\n');
  });

  it('/dev/null is written in place and stays a character device', async () => {
    const target = await resolveOutputTarget('/dev/null');
    expect(target).toEqual({ kind: 'direct', path: '/dev/null', given: '/dev/null', what: 'character device' });
    const before = statSync('/dev/null');
    const { ctx, stderr } = context(dir);
    expect(await run(['m', '--out', '/dev/null'], ctx, fake())).toBe(0);
    const after = statSync('/dev/null');
    expect(after.isCharacterDevice()).toBe(true);
    expect([after.ino, after.rdev]).toEqual([before.ino, before.rdev]);
    expect(stderr.text).toBe('wrote json report to /dev/null (2 models, 1 families)\n');
  });

  it('a FIFO is written in place (a reader gets the report) and stays a FIFO', async () => {
    const fifo = join(dir, 'pipe.json');
    execFileSync('mkfifo', [fifo]);
    const chunks: Buffer[] = [];
    const reader = new Promise<string>((resolveRead, reject) => {
      createReadStream(fifo).on('data', (c) => chunks.push(c as Buffer)).on('end', () => resolveRead(Buffer.concat(chunks).toString('utf8'))).on('error', reject);
    });
    const { ctx } = context(dir);
    expect(await run(['m', '--out', fifo], ctx, fake())).toBe(0);
    expect(JSON.parse(await reader)).toEqual(EXPECTED_JSON());
    expect(lstatSync(fifo).isFIFO()).toBe(true);
    expect((await readdir(dir)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it("a symlink's target is replaced atomically and the link kept, also a dangling one", async () => {
    const real = join(dir, 'real.json');
    await writeFile(real, 'old');
    await chmod(real, 0o600);
    const link = join(dir, 'link.json');
    await symlink(real, link);
    const { ctx, stderr } = context(dir);
    expect(await run(['m', '--out', link], ctx, fake())).toBe(0);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readlinkSync(link)).toBe(real);
    expect(JSON.parse(await readFile(real, 'utf8'))).toEqual(EXPECTED_JSON());
    expect((await stat(real)).mode & 0o777).toBe(0o600); // the replaced file keeps its permissions
    expect(stderr.text).toBe(`wrote json report to ${link} (2 models, 1 families)\n`);
    // a relative, dangling link: its target is created, the link kept
    await mkdir(join(dir, 'sub'));
    await symlink('../created.txt', join(dir, 'sub', 'dangling.txt'));
    expect(await run(['m', '--out', join(dir, 'sub', 'dangling.txt'), '-q'], context(dir).ctx, fake())).toBe(0);
    expect(lstatSync(join(dir, 'sub', 'dangling.txt')).isSymbolicLink()).toBe(true);
    expect(await readFile(join(dir, 'created.txt'), 'utf8')).toMatch(/^Family 0 /); // .txt: text
    // a link to a model file is refused, like the file itself
    await writeFile(join(dir, 'w.safetensors'), 'x');
    await symlink(join(dir, 'w.safetensors'), join(dir, 'to-model.json'));
    const c = context(dir);
    const f = fake();
    expect(await run(['m', '--out', join(dir, 'to-model.json')], c.ctx, f)).toBe(2);
    expect(c.stderr.text).toBe(`mother: refusing to write the report over a model file: ${join(dir, 'w.safetensors')}; choose another --out\n`);
    expect(f.calls).toHaveLength(0);
  });

  it('a folder, a missing parent folder, a file as parent: exit 2 before any work', async () => {
    await mkdir(join(dir, 'folder.json'));
    await writeFile(join(dir, 'plain'), 'x');
    const cases: [string, string][] = [
      [join(dir, 'folder.json'), `cannot write the report to ${join(dir, 'folder.json')}: it is a folder`],
      [join(dir, 'none', 'r.json'), `cannot write the report to ${join(dir, 'none', 'r.json')}: the folder ${join(dir, 'none')} does not exist`],
      [join(dir, 'plain', 'r.json'), `cannot write the report to ${join(dir, 'plain', 'r.json')}: a part of the path is not a folder`],
    ];
    // a Unix socket cannot take a report
    const sock = join(dir, 'socket');
    const server = createServer();
    await new Promise<void>((ok) => server.listen(sock, ok));
    cases.push([sock, `cannot write the report to ${sock}: it is a socket`]);
    try {
      for (const [out, msg] of cases) {
        const c = context(dir);
        const f = fake();
        expect(await run(['m', '--out', out], c.ctx, f), out).toBe(2);
        expect(f.calls).toHaveLength(0);
        expect(c.stderr.text).toBe(`mother: ${msg} [E_INPUT_OUTPUT]\n`);
      }
    } finally {
      server.close();
    }
  });

  it('an unwritable folder: exit 2 before any work (not as root, which writes anywhere)', async (ctx) => {
    ctx.skip(process.getuid?.() === 0, 'running as root: permission bits do not stop root');
    const ro = join(dir, 'ro');
    await mkdir(ro);
    await chmod(ro, 0o500);
    const c = context(dir);
    const f = fake();
    expect(await run(['m', '--out', join(ro, 'r.json')], c.ctx, f)).toBe(2);
    expect(f.calls).toHaveLength(0);
    expect(c.stderr.text).toMatch(/is not writable \(permission denied\) \[E_INPUT_OUTPUT\]\n$/);
    await chmod(ro, 0o700);
  });
});

describe('what goes where', () => {
  it('warnings go to stderr, not into the text report; the CUDA fallback is not printed at all', async () => {
    const res = result({ warnings: ['family 0: 1 pair(s) of models are identical'] });
    const tty = context(dir, true);
    expect(await run(['m'], tty.ctx, fake(res))).toBe(0);
    expect(tty.stdout.text).not.toMatch(/warning|CUDA/);
    expect(tty.stdout.text).toContain('Family 0');
    expect(tty.stderr.text).toBe('mother: warning: family 0: 1 pair(s) of models are identical\n');
    // json keeps them as data
    const piped = context(dir);
    await run(['m'], piped.ctx, fake(res));
    const doc = expectValidResult(piped.stdout.text) as { diagnostics: { warnings: string[]; backendFallback: string } };
    expect(doc.diagnostics.warnings).toEqual(['family 0: 1 pair(s) of models are identical']);
    expect(doc.diagnostics.backendFallback).toBe('CUDA not used: the CUDA addon is not built');
    // -q: nothing on stderr
    const q = context(dir, true);
    await run(['m', '-q'], q.ctx, fake(res));
    expect(q.stderr.text).toBe('');
  });

  it('a partial result exits 3 with the report written', async () => {
    const res = result({
      skippedModels: [{ path: '/z/c.safetensors', code: 'E_HEADER_JSON', message: 'invalid safetensors file /z/c.safetensors: the header is not valid JSON' }],
      warnings: ['skipped model /z/c.safetensors: invalid safetensors file /z/c.safetensors: the header is not valid JSON [E_HEADER_JSON]'],
    });
    const out = join(dir, 'partial.json');
    const c = context(dir);
    expect(await run(['m', '--out', out], c.ctx, fake(res))).toBe(EXIT_PARTIAL);
    expect(EXIT_PARTIAL).toBe(3);
    expect((expectValidResult(await readFile(out, 'utf8')) as RecoverResult).diagnostics.skippedModels).toHaveLength(1);
    expect(c.stderr.text.split('\n')[0]).toBe('mother: warning: skipped model /z/c.safetensors: invalid safetensors file /z/c.safetensors: the header is not valid JSON [E_HEADER_JSON]');
  });

  it('end to end: a folder with a broken model (exit 3), --strict (exit 2), and inspect on the folder (exit 2, the list)', async () => {
    const d = join(dir, 'e2e');
    await writeTree(d, [null, 0, 0], 5, { folders: true });
    await mkdir(join(d, 'broken'));
    await writeFile(join(d, 'broken', 'model.safetensors'), Buffer.from([4, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x7b, 0x7d, 0x7d]));
    const c = context(dir);
    expect(await runCli(['recover', d, '--backend', 'cpu', '--bootstrap', '0', '--seed', '3'], c.ctx)).toBe(3);
    const doc = expectValidResult(c.stdout.text) as RecoverResult;
    expect(doc.models.map((m) => m.id)).toEqual(['m0', 'm1', 'm2']);
    expect(doc.diagnostics.skippedModels).toEqual([{ path: join(d, 'broken'), code: 'E_HEADER_JSON', message: expect.stringContaining(join(d, 'broken', 'model.safetensors')) }]);
    expect(c.stderr.text).toMatch(/^mother: warning: skipped model .*broken: .*\[E_HEADER_JSON\]\n$/);
    const s = context(dir);
    expect(await runCli(['recover', d, '--strict'], s.ctx)).toBe(2);
    expect(s.stdout.text).toBe('');
    expect(s.stderr.text).toMatch(/^mother: invalid safetensors file .*broken\/model\.safetensors: the header is not valid JSON.*\[E_HEADER_JSON\]\n$/);
    const i = context(dir);
    expect(await runCli(['inspect', d], i.ctx)).toBe(2);
    expect(i.stderr.text).toBe(`mother: folder ${d} holds 4 models, not one: ${['broken', 'm0', 'm1', 'm2'].map((m) => join(d, m)).join(', ')}; inspect one of them, e.g. ${join(d, 'broken')} [E_INPUT_COLLECTION]\n`);
    const one = context(dir);
    expect(await runCli(['inspect', join(d, 'm1'), '--format', 'json', '--backend', 'cpu'], one.ctx)).toBe(0);
    expect((expectValidInspect(one.stdout.text) as { id: string }).id).toBe('m1');
    // the same folder twice is still the same three models
    const twice = context(dir);
    expect(await runCli(['recover', join(d, 'm0'), join(d, 'm1'), join(d, 'm2'), join(d, 'm1', 'model.safetensors'), '--backend', 'cpu', '-q'], twice.ctx)).toBe(0);
    expect((JSON.parse(twice.stdout.text) as RecoverResult).models.map((m) => m.id)).toEqual(['m0', 'm1', 'm2']);
  });
});
