/** What `mother inspect` shows: a model's tensors, dtypes, shapes and kurtosis. */
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { abortReason, InputError, isAbortError } from './errors.js';
import { describeFolder, openModel } from './io/index.js';
import { checkOptionKeys } from './util/options.js';
import { MAX_THREADS } from './util/limits.js';
import { runJob } from './stats/compute.js';
import type { ComputeDType, JobTensor } from './native.js';
import { matrixView } from './io/catalogue.js';
import type { Backend } from './types.js';

export interface InspectedTensor {
  name: string;
  dtype: string;
  shape: number[];
  numel: number;
  /**
   * Excess kurtosis: NaN for a constant tensor, null for a dtype the kernels do not compute (and
   * for empty tensors). JSON has no NaN, so the JSON report writes null for both and adds
   * `kurtosisComputed` (true for NaN, false for null) to tell them apart.
   */
  kurtosis: number | null;
  /** NaN/Inf values found. */
  nonFinite: number;
}

export interface InspectResult {
  id: string;
  path: string;
  files: string[];
  parameters: number;
  bytes: number;
  metadata: Record<string, string> | null;
  tensors: InspectedTensor[];
}

const COMPUTABLE = new Set<string>(['F64', 'F32', 'F16', 'BF16']);

export interface InspectOptions {
  backend?: Backend;
  device?: number;
  /** CPU worker threads, 1 to MAX_THREADS (256) (default: all cores). */
  threads?: number;
  /** Cancels the work; the promise then rejects with `signal.reason`. */
  signal?: AbortSignal;
}

const INSPECT_OPTION_KEYS = ['backend', 'device', 'threads', 'signal'] as const;

function checkInspectOptions(o: InspectOptions): void {
  if (o === null || typeof o !== 'object' || Array.isArray(o))
    throw new InputError('E_INPUT_OPTION', `Expected an object for options but received ${String(o)}`);
  checkOptionKeys(o, INSPECT_OPTION_KEYS, 'inspectModel()');
  if (o.threads !== undefined && !(Number.isInteger(o.threads) && o.threads >= 1 && o.threads <= MAX_THREADS))
    throw new InputError('E_INPUT_OPTION', `Expected an integer between 1 and ${MAX_THREADS} for threads but received ${JSON.stringify(o.threads)}`);
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal))
    throw new InputError('E_INPUT_OPTION', 'Expected an AbortSignal for signal');
}

/**
 * A folder that holds several models rather than being one: an error that lists them, so the
 * caller can pick one (inspect looks at one model).
 */
async function refuseCollection(given: string): Promise<void> {
  const path = resolve(given);
  let isDir = false;
  try {
    isDir = (await stat(path)).isDirectory();
  } catch {
    return; // openModel reports a missing path with its own error
  }
  if (!isDir) return;
  const what = await describeFolder(path).catch(() => undefined);
  if (what?.kind !== 'collection') return;
  const shownModels = what.models.slice(0, 8).join(', ');
  throw new InputError(
    'E_INPUT_COLLECTION',
    `folder ${path} holds ${what.models.length} models, not one: ${shownModels}${what.models.length > 8 ? ', ...' : ''}; inspect one of them, e.g. ${what.models[0]}`,
    { file: path },
  );
}

/** Reads one model's headers and computes every computable tensor's kurtosis in one native pass. */
export async function inspectModel(path: string, options: InspectOptions = {}): Promise<InspectResult> {
  checkInspectOptions(options);
  try {
    return await inspect(path, options);
  } catch (err) {
    if (options.signal?.aborted && (isAbortError(err) || err === options.signal.reason)) throw abortReason(options.signal);
    throw err;
  }
}

async function inspect(path: string, options: InspectOptions): Promise<InspectResult> {
  if (options.signal?.aborted) throw abortReason(options.signal);
  if (typeof path !== 'string' || path === '')
    throw new InputError('E_INPUT_PATH', `Expected a path string for the model but received ${JSON.stringify(path)}`);
  await refuseCollection(path);
  const model = await openModel(path);
  try {
    const infos = [...model.tensors.values()];
    const computable = infos.filter((t) => COMPUTABLE.has(t.dtype) && t.numel > 0);
    const tensors: JobTensor[] = computable.map((t) => ({
      name: t.name,
      ...matrixView(t.shape),
      sources: [{ file: t.file, offset: t.offset, dtype: t.dtype as ComputeDType }],
    }));
    const result = tensors.length
      ? await runJob(
          { tensors, models: 1, kurtosis: true, sumsq: false, sumabs: false, maxabs: false, dot: false, rank: false, perTensor: true },
          options,
        )
      : undefined;
    const index = new Map(computable.map((t, i) => [t.name, i]));
    let parameters = 0, bytes = 0;
    const rows: InspectedTensor[] = infos.map((t) => {
      parameters += t.numel;
      bytes += t.byteLength;
      const i = index.get(t.name);
      const m = result?.moments;
      return {
        name: t.name,
        dtype: t.dtype,
        shape: t.shape,
        numel: t.numel,
        kurtosis: i === undefined || !m ? null : m.kurtosis[i]!,
        nonFinite: i === undefined || !m ? 0 : m.nonfinite[i]!,
      };
    });
    return { id: model.id, path: model.path, files: model.files, parameters, bytes, metadata: model.metadata, tensors: rows };
  } finally {
    model.dispose();
  }
}
