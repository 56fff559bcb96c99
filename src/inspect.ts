/** What `mother inspect` shows: a model's tensors, dtypes, shapes and kurtosis. */
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

export async function inspectModel(
  path: string,
  options: { backend?: Backend; threads?: number; signal?: AbortSignal } = {},
): Promise<InspectResult> {
  throw new Error('inspectModel: not implemented yet');
}
