/**
 * Error -> exit code and the one line on stderr.
 *   0  ok
 *   1  any other failure: a coded error of the environment (e.g. E_NATIVE_LOAD: addon not built)
 *      or an internal error (a bug); the stack only when MOTHER_DEBUG=1
 *   2  bad input: usage errors and MotherErrors whose code says the input is at fault
 *   3  partial result: the report was written, but some models could not be read and were left
 *      out (diagnostics.skippedModels; each named in a warning on stderr). --strict makes that a 2.
 * 130  cancelled (Ctrl-C), as shells report SIGINT
 */

export const EXIT_OK = 0;
export const EXIT_INTERNAL = 1;
export const EXIT_BAD_INPUT = 2;
export const EXIT_PARTIAL = 3;
export const EXIT_CANCELLED = 130;

/** The exit codes as the help texts and README list them. */
export const EXIT_CODES_HELP =
  'Exit codes: 0 ok, 1 internal error, 2 bad input or usage, 3 partial result (some models could not\n' +
  'be read and were left out; see the warnings), 130 cancelled.';

/** MotherError code prefixes that blame the input, not the program. */
const BAD_INPUT_PREFIXES = ['E_USAGE', 'E_INPUT_', 'E_HEADER_', 'E_IO_', 'E_SHARD_', 'E_DTYPE_', 'E_GRAPH_INPUT', 'E_BACKEND_UNAVAILABLE'];

interface ErrorLike {
  name?: unknown;
  code?: unknown;
  message?: unknown;
  hint?: unknown;
  file?: unknown;
  tensor?: unknown;
  stack?: unknown;
}

export function isCancellation(err: unknown): boolean {
  const e = err as ErrorLike | null;
  return !!e && (e.name === 'AbortError' || e.code === 'ABORT_ERR' || e.code === 'E_ABORTED' || e.code === 'E_CANCELLED');
}

export function isBadInput(err: unknown): boolean {
  const code = (err as ErrorLike | null)?.code;
  return typeof code === 'string' && BAD_INPUT_PREFIXES.some((p) => code.startsWith(p));
}

export function exitCodeFor(err: unknown): number {
  if (isCancellation(err)) return EXIT_CANCELLED;
  if (isBadInput(err)) return EXIT_BAD_INPUT;
  return EXIT_INTERNAL;
}

/** Newlines would break the one-line contract. */
function oneLine(s: string): string {
  return s.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}

/**
 * What to print on stderr for `err`: one line `mother: <message>` (a MotherError's file/tensor are
 * added when its message does not name them); internal errors get the stack only when `debug`.
 */
export function describeError(err: unknown, debug: boolean): string {
  if (isCancellation(err)) return 'mother: cancelled\n';
  const e = (err ?? {}) as ErrorLike;
  let msg = typeof e.message === 'string' && e.message ? e.message : String(err);
  if (typeof e.file === 'string' && !msg.includes(e.file)) msg += ` (file ${e.file})`;
  if (typeof e.tensor === 'string' && !msg.includes(e.tensor)) msg += ` (tensor ${e.tensor})`;
  if (typeof e.code === 'string' && e.code !== 'E_USAGE' && isBadInput(err)) msg += ` [${e.code}]`;
  if (typeof e.hint === 'string') msg += `; ${e.hint}`;
  if (isBadInput(err)) return `mother: ${oneLine(msg)}\n`;
  // A coded error (addon not built, CUDA failure) is a known failure of the environment; an
  // error without a code is a bug in mother itself, and says so.
  const label = typeof e.code === 'string' && e.code.startsWith('E_') && e.code !== 'E_INTERNAL' ? '' : 'internal error: ';
  if (debug && typeof e.stack === 'string') return `mother: ${label}${oneLine(msg)}\n${e.stack}\n`;
  return `mother: ${label}${oneLine(msg)} (set MOTHER_DEBUG=1 for the stack trace)\n`;
}
