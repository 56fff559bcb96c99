/**
 * The coordinating side of the cluster (`mother recover ... --redis URL`): the scale path's work
 * units (src/cluster/units.ts) become BullMQ jobs; results come back through Redis and the graph
 * stays here (src/scale/recover.ts calls this through its ScaleRemote hook).
 *
 * Retry semantics (docs/scale.md): BullMQ gives each unit `attempts` tries with exponential
 * backoff; a worker that dies mid-job stops renewing its lock and the other workers' stalled-job
 * check puts the job back in the queue. A unit is done once (BullMQ moves a job to completed once,
 * and only the lock holder can), and results are collected per unit id, so nothing is counted
 * twice. A unit that fails all its tries fails the run (E_CLUSTER_JOB, naming the file and the
 * worker): a unit holds many models, and leaving them out would misplace the rest.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Job, Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { AbortError, MotherError } from '../errors.js';
import type { ArchitectureGroup } from '../io/catalogue.js';
import type { GraphOptions } from '../graph/types.js';
import { subgroup, type FamilyGraph, type ScaleRemote } from '../scale/recover.js';
import type { SketchBatch } from '../stats/sketch.js';
import type { ProgressEvent, RecoverOptions } from '../types.js';
import { bullConnection, probeRedis, shownUrl } from './connect.js';
import { DEFAULT_QUEUE, type ClusterOptions } from './options.js';
import { UNIT_VERSION, type UnitData, type UnitKind } from './units.js';
import { toWire, unpack } from './wire.js';

/** A failed try of a unit, as the worker logged it on the job. */
export interface FailedAttempt {
  unit: string;
  worker?: string;
  code?: string;
  file?: string;
  message: string;
}

export interface ClusterDiagnostics {
  redis: string;
  queue: string;
  /** This run's id: the prefix of its job ids. */
  run: string;
  units: Record<UnitKind, number>;
  completed: number;
  /** Tries beyond the first (failed tries and stalled ones put back). */
  retries: number;
  /** Stalled-job events seen for this run's units (a worker that died or hung mid-job). */
  stalled: number;
  failedAttempts: FailedAttempt[];
  /** Units completed per worker (host:pid). */
  workers: Record<string, number>;
  /** Wall time from the first unit submitted to the last collected. */
  seconds: number;
  /** Bytes of results read back (JSON, typed arrays as base64). */
  bytes: number;
}

interface Pending {
  /** Set once queue.add returned: before that, the job not being there is no loss. */
  queued: boolean;
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

/** The worker's return value: who computed it, and the packed result. */
export interface UnitReturn {
  worker: string;
  /** The Redis key of the packed result (connect.ts, resultKey) and its length. */
  stored: string;
  bytes: number;
}

const POLL_MS = 3000;

export class Coordinator implements ScaleRemote {
  private readonly pending = new Map<string, Pending>();
  private readonly handling = new Set<string>();
  private seq = 0;
  private t0 = 0;
  private closed = false;
  private readonly poll: NodeJS.Timeout;
  private readonly diag: ClusterDiagnostics;
  private readonly onAbort = () => this.abortAll();

  private constructor(
    private readonly options: ClusterOptions,
    private readonly queue: Queue,
    private readonly events: QueueEvents,
    /** Reads and deletes the results the workers left (connect.ts, resultKey). */
    private readonly results: Redis,
    private readonly ctx: { signal?: AbortSignal; progress?: (e: ProgressEvent) => void; method?: RecoverOptions['method']; distance?: RecoverOptions['distance'] },
  ) {
    this.diag = {
      redis: shownUrl(options.redis), queue: options.queue ?? DEFAULT_QUEUE, run: `run${Date.now().toString(36)}${randomBytes(4).toString('hex')}`,
      units: { sketch: 0, family: 0, pairs: 0 }, completed: 0, retries: 0, stalled: 0, failedAttempts: [], workers: {}, seconds: 0, bytes: 0,
    };
    events.on('completed', ({ jobId }) => void this.settle(jobId));
    events.on('failed', ({ jobId }) => void this.settle(jobId));
    events.on('stalled', ({ jobId }) => { if (this.pending.has(jobId)) this.diag.stalled++; });
    events.on('error', () => {}); // ioredis reconnects; the poll below notices what the events missed
    // Events are the fast path; a slow poll catches anything missed (a reconnect, a trimmed stream).
    this.poll = setInterval(() => { for (const id of this.pending.keys()) void this.settle(id); }, options.pollMs ?? POLL_MS);
    this.poll.unref();
    ctx.signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  /** Connects (E_INPUT_REDIS naming the URL when Redis cannot be reached) and listens for results. */
  static async open(options: ClusterOptions, ctx: Coordinator['ctx'] = {}): Promise<Coordinator> {
    await probeRedis(options.redis);
    const name = options.queue ?? DEFAULT_QUEUE;
    const queue = new Queue(name, { connection: bullConnection(options.redis) });
    const events = new QueueEvents(name, { connection: bullConnection(options.redis) });
    queue.on('error', () => {});
    try {
      await Promise.all([queue.waitUntilReady(), events.waitUntilReady()]);
    } catch (err) {
      await Promise.allSettled([queue.close(), events.close()]);
      throw new MotherError('E_INPUT_REDIS', `cannot use the queue '${name}' on Redis at ${shownUrl(options.redis)}: ${(err as Error).message}`);
    }
    const results = new Redis(options.redis, { maxRetriesPerRequest: null });
    results.on('error', () => {});  // ioredis reconnects; a read that fails is retried by the poll
    return new Coordinator(options, queue, events, results, ctx);
  }

  diagnostics(): ClusterDiagnostics {
    return structuredClone(this.diag);
  }

  async sketchBatch(group: ArchitectureGroup, batch: number[]): Promise<SketchBatch> {
    return unpack<SketchBatch>(await this.submit('sketch', { run: this.diag.run, group: toWire(subgroup(group, batch)) }));
  }

  async familyGraph(sub: ArchitectureGroup, graphOptions: GraphOptions): Promise<FamilyGraph> {
    return unpack<FamilyGraph>(await this.submit('family', { run: this.diag.run, group: toWire(sub), method: this.ctx.method, distance: this.ctx.distance, graph: graphOptions }));
  }

  async pairBlocks(group: ArchitectureGroup, jobs: number[][]): Promise<Float64Array[]> {
    const size = this.options.pairBlock ?? 64;
    const blocks: Promise<Float64Array[]>[] = [];
    for (let b0 = 0; b0 < jobs.length; b0 += size) {
      // The block's models once, its jobs as indices into them.
      const block = jobs.slice(b0, b0 + size);
      const models = [...new Set(block.flat())].sort((x, y) => x - y);
      const at = new Map(models.map((m, i) => [m, i]));
      blocks.push(this.submit('pairs', { run: this.diag.run, group: toWire(subgroup(group, models)), jobs: block.map((j) => j.map((m) => at.get(m)!)) })
        .then((r) => unpack<{ sums: Float64Array[] }>(r).sums));
    }
    return (await Promise.all(blocks)).flat();
  }

  private async submit(kind: UnitKind, data: UnitData): Promise<unknown> {
    if (this.closed) throw new Error('the cluster coordinator is closed');
    if (this.ctx.signal?.aborted) throw new AbortError();
    if (!this.t0) this.t0 = performance.now();
    const id = `${this.diag.run}-${kind}-${this.seq++}`;
    const result = new Promise<unknown>((resolve, reject) => this.pending.set(id, { queued: false, resolve, reject }));
    result.catch(() => {}); // the caller awaits it; a rejection after an abort must not go unhandled
    this.diag.units[kind]++;
    try {
      await this.queue.add(kind, { ...data, version: UNIT_VERSION }, {
        jobId: id, attempts: this.options.attempts ?? 3,
        backoff: { type: 'exponential', delay: this.options.backoff ?? 1000 },
        // Collected and removed by settle(); these only bound what an abandoned run leaves behind.
        removeOnComplete: { age: 3600 }, removeOnFail: { age: 24 * 3600 },
      });
    } catch (err) {
      this.pending.delete(id);
      throw new MotherError('E_CLUSTER_QUEUE', `cannot add unit ${id} to the queue on ${this.diag.redis}: ${(err as Error).message}`);
    }
    const queued = this.pending.get(id);
    if (queued) queued.queued = true;
    this.report();
    return result;
  }

  private report(): void {
    const total = this.diag.units.sketch + this.diag.units.family + this.diag.units.pairs;
    const workers = Object.keys(this.diag.workers).length;
    this.ctx.progress?.({ stage: 'statistics', done: this.diag.completed, total, message: `cluster: ${this.diag.completed}/${total} units, ${workers} worker(s)` });
  }

  /** Looks at one unit's job; resolves or rejects its promise once it is finished. */
  private async settle(id: string): Promise<void> {
    if (!this.pending.has(id) || this.handling.has(id)) return;
    this.handling.add(id);
    try {
      // The state first, then the job: a job read first may be a copy from before it finished
      // (read while active, completed since), without its return value.
      const state = await this.queue.getJobState(id);
      if (state !== 'completed' && state !== 'failed' && state !== 'unknown') return;
      const job = state === 'unknown' ? undefined : await Job.fromId<UnitData, UnitReturn>(this.queue, id);
      const p = this.pending.get(id);
      if (!p || !p.queued) return;
      if (!job) {
        this.pending.delete(id);
        p.reject(new MotherError('E_CLUSTER_LOST', `cluster unit ${id} vanished from the queue on ${this.diag.redis} (removed by someone else?)`));
        return;
      }
      const done = state;
      if (done === 'completed' && (job.returnvalue === null || job.returnvalue === undefined)) return;  // the next event or poll
      const tries = await this.failedTries(id);
      let result: unknown;
      if (done === 'completed') {
        const text = await this.results.get(job.returnvalue.stored);
        if (text === null) {
          this.pending.delete(id);
          p.reject(new MotherError('E_CLUSTER_LOST', `the result of cluster unit ${id} is gone from ${this.diag.redis} (key ${job.returnvalue.stored} expired or removed)`));
          return;
        }
        result = JSON.parse(text);
        this.diag.bytes += text.length;
      }
      // Settled only once everything is read: an error above leaves the unit to the next poll.
      this.pending.delete(id);
      this.diag.failedAttempts.push(...tries);
      this.diag.retries += Math.max(0, (job.attemptsStarted ?? 1) - 1);
      if (done === 'completed') {
        const rv = job.returnvalue;
        this.diag.completed++;
        this.diag.workers[rv.worker] = (this.diag.workers[rv.worker] ?? 0) + 1;
        this.diag.seconds = (performance.now() - this.t0) / 1000;
        p.resolve(result);
        await Promise.all([job.remove().catch(() => {}), this.results.del(rv.stored).catch(() => 0)]);
        this.report();
      } else {
        const last = tries.at(-1);
        const file = last?.file;
        p.reject(new MotherError('E_CLUSTER_JOB',
          `cluster unit ${id} (${job.name}, ${job.data.group.models.length} models) failed after ${job.attemptsMade} tries; last: ${last ? `${last.message}${file && !last.message.includes(file) ? ` (file ${file})` : ''} on worker ${last.worker}` : job.failedReason}`,
          file ? { file } : {}));
      }
    } catch (err) {
      // Redis hiccup: the next event or poll tries again.
      void err;
    } finally {
      this.handling.delete(id);
    }
  }

  /** The structured failure lines workers logged on the job (src/cluster/worker.ts). */
  private async failedTries(id: string): Promise<FailedAttempt[]> {
    const { logs } = await this.queue.getJobLogs(id);
    const out: FailedAttempt[] = [];
    for (const line of logs) {
      try {
        const e = JSON.parse(line) as Partial<FailedAttempt> & { failed?: boolean };
        if (e.failed) out.push({ unit: id, message: String(e.message), ...(e.worker ? { worker: e.worker } : {}), ...(e.code ? { code: e.code } : {}), ...(e.file ? { file: e.file } : {}) });
      } catch { /* not ours */ }
    }
    return out;
  }

  private abortAll(): void {
    for (const [id, p] of this.pending) { p.reject(new AbortError()); this.pending.delete(id); void this.removeJob(id); }
  }

  private async removeJob(id: string): Promise<void> {
    // A job a worker holds (active, locked) cannot be removed; removeOnComplete ages it out.
    await this.queue.remove(id).catch(() => 0);
  }

  /** Stops listening and removes this run's unfinished jobs from the queue. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.poll);
    this.ctx.signal?.removeEventListener('abort', this.onAbort);
    const left = [...this.pending.keys()];
    for (const [, p] of this.pending) p.reject(new AbortError('the cluster coordinator was closed'));
    this.pending.clear();
    // Delayed and waiting jobs of this run, also those whose promise was already settled elsewhere.
    await Promise.all(left.map((id) => this.removeJob(id)));
    await Promise.allSettled([this.events.close(), this.queue.close()]);
    this.results.disconnect();
  }
}
