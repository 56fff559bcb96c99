/**
 * The pipeline, the public entry point: model folders in, heritage trees out.
 * read weights (io/) -> statistics (stats/) -> graph (graph/) -> report (report/).
 */
import type { RecoverOptions, RecoverResult } from './types.js';

export async function recover(inputs: string[], options: RecoverOptions = {}): Promise<RecoverResult> {
  throw new Error('recover: not implemented yet');
}
