/**
 * The real `mother` binary as a child process: shebang, entry-point detection through a symlink,
 * exit codes, stdout/stderr separation, Ctrl-C. Compiled into a private temp "package" so that the
 * shared dist/ is never touched by tests.
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repo = resolve(import.meta.dirname, '..');
let pkg: string;
let main: string;

beforeAll(() => {
  pkg = mkdtempSync(join(tmpdir(), 'mother-cli-pkg-'));
  // Exit status ignored: type errors elsewhere in a shared checkout still emit JavaScript.
  spawnSync(process.execPath, [join(repo, 'node_modules/typescript/bin/tsc'), '-p', join(repo, 'tsconfig.build.json'), '--outDir', join(pkg, 'dist')], { encoding: 'utf8' });
  main = join(pkg, 'dist/cli/main.js');
  if (!existsSync(main)) throw new Error('tsc did not produce dist/cli/main.js');
  cpSync(join(repo, 'package.json'), join(pkg, 'package.json'));
  for (const d of ['build', 'examples']) if (existsSync(join(repo, d))) symlinkSync(join(repo, d), join(pkg, d));
}, 120_000);
afterAll(() => { if (pkg) rmSync(pkg, { recursive: true, force: true }); });

function mother(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}) {
  const r = spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', cwd: opts.cwd ?? pkg, env: { ...process.env, ...opts.env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const version = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')).version;

describe('mother as a process', () => {
  it('starts with the shebang and runs through an npm-style bin symlink', () => {
    expect(readFileSync(main, 'utf8').split('\n')[0]).toBe('#!/usr/bin/env node');
    mkdirSync(join(pkg, 'bin'), { recursive: true });
    const link = join(pkg, 'bin', 'mother');
    if (!existsSync(link)) symlinkSync(main, link);
    const r = spawnSync(process.execPath, [link, '--version'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`mother ${version}\n`);
  });

  it('--help exits 0 on stdout; unknown command exits 2 with one line on stderr', () => {
    const help = mother(['recover', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: mother recover');
    expect(help.stderr).toBe('');
    const bad = mother(['recover-all']);
    expect(bad.code).toBe(2);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toBe("mother: unknown command 'recover-all'; see 'mother --help'\n");
    const flag = mother(['recover', 'x', '--format', 'xml']);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toBe("mother: Expected one of json|text|dot|mermaid|newick|html for --format but received 'xml'\n");
  });

  it('eval writes json when piped, with the known numbers', () => {
    const d = mkdtempSync(join(pkg, 'eval-'));
    writeFileSync(join(d, 't.json'), JSON.stringify({ models: [{ id: 'a', parent: null }, { id: 'b', parent: 'a' }, { id: 'c', parent: 'a' }, { id: 'd', parent: 'c' }] }));
    writeFileSync(join(d, 'r.json'), JSON.stringify({ models: [{ id: 'a', parent: 'b' }, { id: 'b', parent: null }, { id: 'c', parent: 'a' }, { id: 'd', parent: 'c' }] }));
    const r = mother(['eval', '--truth', 't.json', 'r.json'], { cwd: d });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const e = JSON.parse(r.stdout);
    expect([e.edgeAccuracy, e.undirectedAccuracy, e.ari]).toEqual([0.5, 0.75, 1]); // a's root call is wrong either way
    const missing = mother(['eval', '--truth', 't.json', 'nope.json'], { cwd: d });
    expect(missing.code).toBe(2);
    expect(missing.stderr.split('\n')).toHaveLength(2);
  });

  // eval --truth FIFO blocks until someone writes to the FIFO: a stand-in for long native work.
  function blocked() {
    const d = mkdtempSync(join(pkg, 'sig-'));
    writeFileSync(join(d, 'r.json'), '{"models":[{"id":"a","parent":null}]}');
    const fifo = join(d, 'truth.fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const child = spawn(process.execPath, [main, 'eval', '--truth', fifo, 'r.json'], { cwd: d, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b) => (stderr += b));
    const done = new Promise<{ code: number | null; signal: string | null }>((res) => child.on('exit', (code, signal) => res({ code, signal })));
    return { child, done, fifo, stderr: () => stderr };
  }
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it('first Ctrl-C cancels at the next check: exit 130, "cancelled"', async () => {
    const p = blocked();
    await sleep(1500); // let node start and install the handler
    p.child.kill('SIGINT');
    await sleep(200);
    // The open returns and the read sees the abort: the reader may close the FIFO before our write
    // lands (EPIPE), which is the behaviour under test, not a failure.
    try {
      writeFileSync(p.fifo, '{"models":[{"id":"a","parent":null}]}');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EPIPE') throw err;
    }
    const timer = setTimeout(() => p.child.kill('SIGKILL'), 10_000);
    expect(await p.done).toEqual({ code: 130, signal: null });
    clearTimeout(timer);
    expect(p.stderr()).toBe('mother: cancelled\n');
  });

  it('a second Ctrl-C ends the process at once, even with a thread stuck (shell status 130)', async () => {
    const p = blocked();
    await sleep(1500);
    p.child.kill('SIGINT');
    await sleep(200);
    p.child.kill('SIGINT');
    const t0 = Date.now();
    const timer = setTimeout(() => p.child.kill('SIGKILL'), 10_000); // never leave a stuck child behind
    // Dies of the re-raised SIGINT, which a shell reports as 130.
    expect(await p.done).toEqual({ code: null, signal: 'SIGINT' });
    clearTimeout(timer);
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});
