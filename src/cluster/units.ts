/**
 * The work units of the scale path (src/scale/recover.ts) as cluster jobs, and what a worker does
 * with each: the same functions the local path calls, on the unit's subgroup, so the numbers are
 * bit-identical. The one graph computed here is an exact family's, by the local function.
 *   sketch  a batch of models (as sketchGroup batches them): moments and samples;
 *   family  one exact sketch family: all-pairs, rank and spectrum statistics, then its graph
 *           (recoverGraph on the family, as locally); only the graph travels back;
 *   pairs   a block of the sparse path's jobs: per model, L2 sums against its candidates.
 */
import type { GraphOptions } from '../graph/types.js';
import { familyGraph, pairSums } from '../scale/recover.js';
import type { StatsOptions } from '../stats/compute.js';
import { sketchBatch } from '../stats/sketch.js';
import type { RecoverOptions } from '../types.js';
import { readFileSync } from 'node:fs';
import { MotherError } from '../errors.js';
import { fromWire, pack, type WireGroup } from './wire.js';

/**
 * This package's version, as the coordinator stamps its units: a worker of another version may
 * compute other numbers, so it refuses the unit instead (package.json is two levels up from both
 * src/cluster and dist/cluster).
 */
export const UNIT_VERSION: string = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export const UNIT_KINDS = ['sketch', 'family', 'pairs'] as const;
export type UnitKind = (typeof UNIT_KINDS)[number];

export interface UnitData {
  /** The coordinating run this unit belongs to. */
  run: string;
  /** The coordinator's package version (UNIT_VERSION). */
  version?: string;
  group: WireGroup;
  /** family: the options that choose its statistics passes. */
  method?: RecoverOptions['method'];
  distance?: RecoverOptions['distance'];
  /** family: the graph options (plain data: method, bootstrap, seed, ...). */
  graph?: GraphOptions;
  /** pairs: per job, model indices into group (first model against the others). */
  jobs?: number[][];
}

/** Computes one unit; returns its packed result (typed arrays as base64). */
export async function computeUnit(kind: string, data: UnitData, pathMap: readonly (readonly [string, string])[], statsOptions: StatsOptions): Promise<unknown> {
  if (data.version !== UNIT_VERSION)
    throw new MotherError('E_CLUSTER_VERSION', `unit of mother-tree ${data.version ?? '(unknown version)'}, but this worker runs ${UNIT_VERSION}: run workers of the coordinator's version`);
  const group = fromWire(data.group, pathMap);
  const n = group.models.length;
  if (kind === 'sketch') return pack(await sketchBatch(group, Array.from({ length: n }, (_, k) => k), statsOptions));
  if (kind === 'family') {
    return pack(await familyGraph(group, { method: data.method, distance: data.distance }, statsOptions, data.graph ?? {}));
  }
  if (kind === 'pairs') {
    const out: Float64Array[] = [];
    let bytesRead = 0;
    for (const job of data.jobs ?? []) {
      const r = await pairSums(group, job, statsOptions);
      bytesRead += r.bytesRead;
      out.push(r.sums);
    }
    return pack({ sums: out, bytesRead });
  }
  throw new Error(`unknown unit kind '${kind}' (this worker knows ${UNIT_KINDS.join(', ')})`);
}
