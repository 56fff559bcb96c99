/**
 * Where the tests find the shared zoo: ../shared/zoo beside the repository (CI clones the repository
 * anywhere, with ../shared next to the clone), resolved from this file, never from a machine's path.
 *
 * Without the zoo a test is skipped with a reason (the skip reporter prints the count and reasons),
 * except under CI=true, where a missing zoo is a failure: a CI run must not pass by skipping.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file is test/helpers/zoo.ts). */
export const REPO_ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
/** ../shared beside the repository. */
export const SHARED = resolve(REPO_ROOT, '..', 'shared');
export const ZOO = join(SHARED, 'zoo');
/** CI=true (or 1), as GitHub Actions and most CI services set it. */
export const IN_CI = process.env.CI === 'true' || process.env.CI === '1';

/** A path under the zoo: zooPath('ft', 't0', 'model.safetensors'). */
export function zooPath(...parts: string[]): string {
  return join(ZOO, ...parts);
}

/**
 * Why the zoo (or the given part of it) cannot be used, or null when it is there. Under CI=true
 * a missing zoo throws, so the test file fails instead of skipping.
 */
export function zooMissing(...parts: string[]): string | null {
  const p = parts.length ? zooPath(...parts) : ZOO;
  if (existsSync(p)) return null;
  const reason = `the shared zoo is missing: ${p} does not exist (../shared/zoo beside the repository)`;
  if (IN_CI) throw new Error(`CI=true: ${reason}; CI must provide the zoo rather than skip its tests`);
  return reason;
}

/** For `beforeEach(skipWithoutZoo('ft', 'truth.json'))` or inside a test: skips with the reason. */
export function skipWithoutZoo(...parts: string[]): (ctx: { skip: (condition: boolean, note?: string) => void }) => void {
  const reason = zooMissing(...parts);
  return (ctx) => ctx.skip(reason !== null, reason ?? undefined);
}
