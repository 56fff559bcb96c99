// The test infrastructure itself: zoo resolution relative to the repository, CI=true turning a
// missing zoo into a failure, and the skip reporter's count and reasons.
import { existsSync } from 'node:fs';
import { basename, dirname, isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import SkipReporter from './helpers/skip-reporter.js';

afterEach(() => {
  vi.unstubAllEnvs();
  vi.resetModules();
});

describe('helpers/zoo', () => {
  it('resolves ../shared/zoo from the repository root, not from a machine path', async () => {
    const z = await import('./helpers/zoo.js');
    const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
    expect(z.REPO_ROOT).toBe(repo);
    expect(existsSync(resolve(z.REPO_ROOT, 'package.json'))).toBe(true);
    expect(z.ZOO).toBe(resolve(repo, '..', 'shared', 'zoo'));
    expect(isAbsolute(z.ZOO)).toBe(true);
    expect(basename(dirname(z.ZOO))).toBe('shared');
  });

  it('a missing part of the zoo is a skip reason outside CI and a failure under CI=true', async () => {
    vi.stubEnv('CI', '');
    const local = await import('./helpers/zoo.js');
    expect(local.IN_CI).toBe(false);
    expect(local.zooMissing('no-such-split')).toMatch(/^the shared zoo is missing: .*no-such-split does not exist/);
    const skip = vi.fn();
    local.skipWithoutZoo('no-such-split')({ skip });
    expect(skip).toHaveBeenCalledWith(true, expect.stringContaining('no-such-split'));

    vi.resetModules();
    vi.stubEnv('CI', 'true');
    const ci = await import('./helpers/zoo.js');
    expect(ci.IN_CI).toBe(true);
    expect(() => ci.zooMissing('no-such-split')).toThrow(/^CI=true: the shared zoo is missing: .*no-such-split/);
    expect(() => ci.skipWithoutZoo('no-such-split')).toThrow(/CI must provide the zoo/);
  });
});

describe('helpers/skip-reporter', () => {
  it('prints the skipped count with each reason and how often it occurred', () => {
    const test = (state: string, note?: string, mode = 'run') => ({ result: () => ({ state, note }), options: { mode } });
    const modules = [
      { moduleId: resolve('test/a.test.ts'), children: { allTests: () => [test('passed'), test('skipped', 'no zoo'), test('skipped', 'no zoo')] } },
      { moduleId: resolve('test/b.test.ts'), children: { allTests: () => [test('skipped', undefined, 'skip'), test('failed')] } },
    ];
    let out = '';
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => { out += String(s); return true; });
    try {
      new SkipReporter().onTestRunEnd(modules as never);
    } finally {
      spy.mockRestore();
    }
    expect(out).toBe('\nskipped: 3 tests\n     2  no zoo\n     1  no reason given (test/b.test.ts)\n');
  });
});
