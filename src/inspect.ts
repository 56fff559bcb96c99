/** What `mother inspect` shows: a model's tensors, dtypes, shapes and kurtosis. */
import { openModel } from './io/index.js';
import { runJob } from './stats/compute.js';
import type { ComputeDType, JobTensor } from './native.js';
import { matrixView } from './io/catalogue.js';
import type { Backend } from './types.js';

export interface InspectedTensor {
  name: string;
  dtype: string;
  shape: number[];
  numel: number;
  /** Excess kurtosis (NaN for constant tensors; null for dtypes the kernels do not compute). */
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

/** Reads one model's headers and computes every computable tensor's kurtosis in one native pass. */
export async function inspectModel(
  path: string,
  options: { backend?: Backend; device?: number; threads?: number; signal?: AbortSignal } = {},
): Promise<InspectResult> {
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
