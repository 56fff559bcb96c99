/**
 * Every failure this package reports is a MotherError with a stable `code`, and `file` / `tensor`
 * where they are known. Families by code prefix:
 *   E_HEADER_*  SafetensorsError   the file is not a valid safetensors file
 *   E_GGUF_*    GgufError          the file is not a valid GGUF file
 *   E_IO_*      ModelIOError       open/read failures, truncated files
 *   E_SHARD_*   ShardError         sharded model index problems
 *   E_INPUT_*   InputError         bad user input (paths, options)
 *   E_DTYPE_UNSUPPORTED  UnsupportedDTypeError
 *   E_JOB_*, E_INTERNAL, E_OUT_OF_MEMORY, ...  MotherError
 * Cancellation rejects with the AbortSignal's reason (`controller.abort()` without an argument makes
 * that a DOMException named 'AbortError'), else with an AbortError (name 'AbortError', code
 * 'ABORT_ERR'), as Node's own APIs do.
 *
 * Native errors arrive from a worker thread with a useless stack: `withCallerStack` captures the
 * caller's stack before the await and `fromNative` attaches it (as sharp does).
 */

export interface MotherErrorOptions {
  file?: string;
  tensor?: string;
  cause?: unknown;
}

export class MotherError extends Error {
  readonly code: string;
  readonly file?: string;
  readonly tensor?: string;
  constructor(code: string, message: string, options: MotherErrorOptions | string = {}) {
    const opts = typeof options === 'string' ? { file: options } : options;
    super(message, opts.cause !== undefined ? { cause: opts.cause } : undefined);
    this.name = new.target.name;
    this.code = code;
    if (opts.file !== undefined) this.file = opts.file;
    if (opts.tensor !== undefined) this.tensor = opts.tensor;
  }
}

/** The file is not a valid safetensors file (E_HEADER_*). */
export class SafetensorsError extends MotherError {}
/** The file is not a valid GGUF file (E_GGUF_*). */
export class GgufError extends MotherError {}
/** A model file could not be opened or read, or changed while being read (E_IO_*). */
export class ModelIOError extends MotherError {}
/** A sharded model's index is inconsistent with its shards (E_SHARD_*). */
export class ShardError extends MotherError {}
/** Bad user input: paths, options (E_INPUT_*). */
export class InputError extends MotherError {}
/** A selected tensor's dtype cannot be computed on (E_DTYPE_UNSUPPORTED). */
export class UnsupportedDTypeError extends MotherError {}

/** The DOM-style abort error Node's APIs throw (name 'AbortError', code 'ABORT_ERR'). */
export class AbortError extends Error {
  readonly code = 'ABORT_ERR';
  constructor(message = 'The operation was aborted', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AbortError';
  }
}

/**
 * What an aborted operation rejects with: the signal's reason, as Node's own APIs do
 * (`signal.throwIfAborted()`, fetch); an AbortError when there is none.
 */
export function abortReason(signal: AbortSignal | undefined): unknown {
  return signal?.reason !== undefined ? signal.reason : new AbortError();
}

export function isAbortError(err: unknown): boolean {
  const e = err as { name?: unknown; code?: unknown } | null;
  return !!e && (e.name === 'AbortError' || e.code === 'ABORT_ERR');
}

function classFor(code: string): new (code: string, message: string, options?: MotherErrorOptions) => MotherError {
  if (code.startsWith('E_HEADER_')) return SafetensorsError;
  if (code.startsWith('E_GGUF_')) return GgufError;
  if (code.startsWith('E_IO_')) return ModelIOError;
  if (code.startsWith('E_SHARD_')) return ShardError;
  if (code.startsWith('E_INPUT_')) return InputError;
  if (code === 'E_DTYPE_UNSUPPORTED') return UnsupportedDTypeError;
  return MotherError;
}

/** Caller stack captured before an await (see withCallerStack). */
export interface CallerStack {
  stack?: string;
}

export function captureCallerStack(fn?: Function): CallerStack {
  const holder: CallerStack = {};
  Error.captureStackTrace(holder, fn ?? captureCallerStack);
  return holder;
}

/**
 * Maps an error thrown by the native addon to the MotherError class its code names; keeps
 * message, code, file, tensor, and the native error as `cause`. Errors that already are
 * MotherErrors or AbortErrors keep their class. `caller` replaces the stack's frames.
 */
export function fromNative(err: unknown, caller?: CallerStack): Error {
  let out: Error;
  const e = err as { code?: unknown; message?: unknown; file?: unknown; tensor?: unknown } | null;
  if (err instanceof MotherError) out = err;
  else if (isAbortError(err)) out = err instanceof AbortError ? err : new AbortError(String(e?.message ?? 'The operation was aborted'), { cause: err });
  else if (e && typeof e === 'object' && typeof e.code === 'string' && e.code.startsWith('E_')) {
    const Cls = classFor(e.code);
    out = new Cls(e.code, String(e.message ?? e.code), {
      file: typeof e.file === 'string' ? e.file : undefined,
      tensor: typeof e.tensor === 'string' ? e.tensor : undefined,
      cause: err,
    });
  } else out = err instanceof Error ? err : new MotherError('E_INTERNAL', String(err));
  if (caller?.stack) {
    const frames = caller.stack.split('\n').slice(1).join('\n');
    out.stack = `${out.name}: ${out.message}\n${frames}`;
  }
  return out;
}

/**
 * Runs an async native call so that its rejection carries the caller's stack:
 *   return withCallerStack(() => addon.readHeader(path));
 */
export async function withCallerStack<T>(run: () => Promise<T>): Promise<T> {
  const caller = captureCallerStack(withCallerStack);
  try {
    return await run();
  } catch (err) {
    throw fromNative(err, caller);
  }
}
