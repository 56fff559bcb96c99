/**
 * Argument parsing on node's util.parseArgs, plus validation with uniform messages
 * ("Expected X for --flag but received 'Y'"). Every problem is a UsageError: exit 2, one line.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

export class UsageError extends Error {
  readonly code = 'E_USAGE';
  /** e.g. "see 'mother recover --help'"; printed after the message. */
  readonly hint: string | undefined;
  constructor(message: string, hint?: string) {
    super(message);
    this.name = 'UsageError';
    this.hint = hint;
  }
}

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

/**
 * Strict parse: unknown flags, missing values and stray positionals become UsageErrors, and so
 * does a value option given twice (`--truth a --truth b`): only one value could take effect, and
 * an option without effect is an error, not silence. Options declared `multiple` may repeat.
 */
export function parseCommand(
  command: string,
  argv: string[],
  options: OptionSpec,
  allowPositionals: boolean,
): { values: Record<string, string | boolean | string[] | boolean[] | undefined>; positionals: string[] } {
  const hint = `see 'mother ${command} --help'`;
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals, strict: true, tokens: true });
  } catch (err) {
    const e = err as { code?: string; message?: string };
    if (typeof e.code === 'string' && e.code.startsWith('ERR_PARSE_ARGS')) throw new UsageError(cleanParseArgsMessage(e), hint);
    throw err;
  }
  const seen = new Map<string, string>();
  for (const t of parsed.tokens) {
    if (t.kind !== 'option') continue;
    const spec = options[t.name];
    if (!spec || spec.type !== 'string' || spec.multiple) continue;
    const first = seen.get(t.name);
    if (first !== undefined)
      throw new UsageError(`option --${t.name} was given twice ('${first}' and '${t.value ?? ''}'); give it once`, hint);
    seen.set(t.name, t.value ?? '');
  }
  return { values: parsed.values as Record<string, string | boolean | string[] | boolean[] | undefined>, positionals: parsed.positionals };
}

/** parseArgs messages are multi-line and mention its own API; keep the first sentence. */
function cleanParseArgsMessage(e: { code?: string; message?: string }): string {
  const msg = (e.message ?? 'bad arguments').split('\n')[0]!;
  if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const m = /Unknown option '([^']+)'/.exec(msg);
    if (m) return `unknown option '${m[1]}'`;
  }
  if (e.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
    const m = /Unexpected argument '([^']*)'/.exec(msg);
    if (m) return `unexpected argument '${m[1]}'`;
  }
  const dashHint = /use '(--[^=]+=-XYZ)'/.exec(e.message ?? '');
  const first = msg.replace(/\.$/, '').replace(/^Option/, 'option');
  return dashHint ? `${first} (for a value starting with '-' write ${dashHint[1]!.replace('XYZ', '...')})` : first;
}

function shown(v: unknown): string {
  return typeof v === 'string' ? `'${v}'` : String(v);
}

export function oneOf<T extends string>(flag: string, value: unknown, choices: readonly T[]): T {
  if (typeof value === 'string' && (choices as readonly string[]).includes(value)) return value as T;
  throw new UsageError(`Expected one of ${choices.join('|')} for ${flag} but received ${shown(value)}`);
}

/** Strict decimal integer in [min, max]; "4x", "1e3", "" and "0x10" are refused. */
export function integer(flag: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = typeof value === 'string' && /^[+-]?\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer in [${min}, ${max}]`;
    throw new UsageError(`Expected ${range} for ${flag} but received ${shown(value)}`);
  }
  return n;
}

/** Finite number >= min. */
export function number(flag: string, value: unknown, min: number): number {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
  if (!Number.isFinite(n) || n < min) throw new UsageError(`Expected a number >= ${min} for ${flag} but received ${shown(value)}`);
  return n;
}

/** A non-empty string value (guards `--out ''`). */
export function nonEmpty(flag: string, value: unknown): string {
  if (typeof value === 'string' && value.length > 0) return value;
  throw new UsageError(`Expected a non-empty value for ${flag} but received ${shown(value)}`);
}
