/**
 * `mother worker --redis URL`: a BullMQ worker computing the scale path's units
 * (src/cluster/units.ts) through the native addon (off the main thread, as locally). A failed unit
 * logs a structured line on the job (worker, code, file, message) for the coordinator's report,
 * then fails the try; BullMQ retries it, possibly on another worker.
 */
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { MotherError } from '../errors.js';
import type { Backend } from '../types.js';
import { bullConnection, probeRedis, resultKey, RESULT_TTL_S, shownUrl } from './connect.js';
import { DEFAULT_QUEUE } from './options.js';
import { computeUnit, type UnitData } from './units.js';
import type { UnitReturn } from './coordinator.js';

export interface WorkerOptions {
  redis: string;
  queue?: string;
  /** Units at once (default 1: the native job already uses every core). */
  concurrency?: number;
  /** FROM=TO prefixes: where this machine sees the coordinator's model paths. */
  pathMap?: [string, string][];
  backend?: Backend;
  device?: number;
  threads?: number;
  /** BullMQ lock and stalled-job check (ms), and stalls allowed before a job fails. */
  lockDuration?: number;
  stalledInterval?: number;
  maxStalledCount?: number;
  /** Wait this long before each unit (ms): tests kill a worker mid-unit with it. */
  jobDelay?: number;
  /** One line per event (started, completed, failed). */
  log?: (line: string) => void;
  signal?: AbortSignal;
}

export interface WorkerSummary {
  id: string;
  completed: number;
  failed: number;
}

function errorFields(err: unknown): { code?: string; file?: string; message: string } {
  const e = err as { code?: unknown; file?: unknown; path?: unknown; message?: unknown };
  const file = typeof e?.file === 'string' ? e.file : typeof e?.path === 'string' ? e.path : undefined;
  return {
    message: typeof e?.message === 'string' ? e.message : String(err),
    ...(typeof e?.code === 'string' ? { code: e.code } : {}),
    ...(file ? { file } : {}),
  };
}

/** Runs until the signal aborts; then finishes the current units and returns. */
export async function runWorker(o: WorkerOptions): Promise<WorkerSummary> {
  await probeRedis(o.redis);
  const id = `${hostname()}:${process.pid}`;
  const log = o.log ?? (() => {});
  const summary: WorkerSummary = { id, completed: 0, failed: 0 };
  // No signal for the native work: on shutdown the current unit finishes (worker.close waits);
  // a worker killed outright stalls its unit, which another worker then takes.
  const statsOptions = { backend: o.backend, device: o.device, threads: o.threads };
  const queueName = o.queue ?? DEFAULT_QUEUE;
  const results = new Redis(o.redis, { maxRetriesPerRequest: null });
  results.on('error', (err) => log(`error: ${err.message}`));
  const worker = new Worker<UnitData, UnitReturn>(queueName, async (job: Job<UnitData, UnitReturn>) => {
    log(`started ${job.id} (${job.name}, ${job.data.group.models.length} models, try ${job.attemptsStarted})`);
    const t = performance.now();
    try {
      if (o.jobDelay) await sleep(o.jobDelay);
      const result = JSON.stringify(await computeUnit(job.name, job.data, o.pathMap ?? [], statsOptions));
      // The result beside the job, its return value only a pointer (connect.ts, resultKey).
      await results.set(resultKey(queueName, job.id!), result, 'EX', RESULT_TTL_S);
      log(`computed ${job.id} in ${((performance.now() - t) / 1000).toFixed(2)} s`);
      return { worker: id, stored: resultKey(queueName, job.id!), bytes: result.length };
    } catch (err) {
      const f = errorFields(err);
      await job.log(JSON.stringify({ failed: true, worker: id, try: job.attemptsStarted, ...f })).catch(() => {});
      log(`failed ${job.id}: ${f.message}${f.file && !f.message.includes(f.file) ? ` (file ${f.file})` : ''}${f.code ? ` [${f.code}]` : ''}`);
      throw new MotherError(f.code ?? 'E_CLUSTER_UNIT', `${f.message} on worker ${id}`, f.file ? { file: f.file } : {});
    }
  }, {
    connection: bullConnection(o.redis), concurrency: o.concurrency ?? 1, autorun: false,
    ...(o.lockDuration ? { lockDuration: o.lockDuration } : {}),
    ...(o.stalledInterval ? { stalledInterval: o.stalledInterval } : {}),
    ...(o.maxStalledCount !== undefined ? { maxStalledCount: o.maxStalledCount } : {}),
  });
  // Completion as BullMQ recorded it (after the result is in Redis), for counting.
  worker.on('completed', (job) => { summary.completed++; log(`completed ${job.id}`); });
  worker.on('failed', (job) => { summary.failed++; void job; });
  worker.on('error', (err) => log(`error: ${err.message}`));
  const running = worker.run();
  await worker.waitUntilReady();
  log(`ready: ${id} on ${shownUrl(o.redis)} queue '${o.queue ?? DEFAULT_QUEUE}'`);
  if (o.signal) {
    if (!o.signal.aborted) await new Promise<void>((resolve) => o.signal!.addEventListener('abort', () => resolve(), { once: true }));
    await worker.close();
  }
  await running;
  results.disconnect();
  return summary;
}
