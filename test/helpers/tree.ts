/** A small synthetic fine-tuning tree on disk (test/graph-synth weights as F32 files). */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { SHAPES, synthWeights } from '../graph-synth.js';
import { writeSafetensors } from './safetensors.js';

/**
 * Writes one model per entry of `parents` into `dir`: as `m<k>.safetensors` files, or with
 * `folders` as `m<k>/model.safetensors`. Returns the model paths (files or folders).
 */
export async function writeTree(dir: string, parents: (number | null)[], seed: number, opts: { folders?: boolean } = {}): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const paths: string[] = [];
  for (const [k, tensors] of synthWeights({ parents, seed }).entries()) {
    const specs = tensors.map((w, t) => ({
      name: `t${t}`, dtype: 'F32' as const, shape: SHAPES[t]![0] === 1 ? [SHAPES[t]![1]] : SHAPES[t]!, data: Float64Array.from(w),
    }));
    if (opts.folders) {
      await mkdir(join(dir, `m${k}`), { recursive: true });
      await writeSafetensors(join(dir, `m${k}`, 'model.safetensors'), specs);
      paths.push(join(dir, `m${k}`));
    } else {
      paths.push((await writeSafetensors(join(dir, `m${k}.safetensors`), specs)).path);
    }
  }
  return paths;
}
