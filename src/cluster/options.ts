/**
 * Options of the cluster (docs/scale.md, "The cluster"), checked without loading BullMQ: recover()
 * validates them up front; the coordinator and the worker connect only after that.
 */
import { InputError } from '../errors.js';

export interface ClusterOptions {
  /** redis:// or rediss:// URL of the Redis server the workers (`mother worker --redis URL`) use. */
  redis: string;
  /** BullMQ queue name (default 'mother'); coordinator and workers must agree. */
  queue?: string;
  /** Tries per unit before the run fails (default 3): a failed or stalled try goes back to the queue. */
  attempts?: number;
  /** First retry delay in ms, doubled per retry (default 1000). */
  backoff?: number;
  /** Sparse-path jobs (one model and its candidates) per 'pairs' unit (default 64). */
  pairBlock?: number;
  /** How often (ms) unfinished units are looked at besides BullMQ's events (default 3000). */
  pollMs?: number;
}

export const DEFAULT_QUEUE = 'mother';
const KEYS = ['redis', 'queue', 'attempts', 'backoff', 'pairBlock', 'pollMs'];

/** A URL Redis clients accept; anything else is a usage mistake named as such. */
export function checkRedisUrl(url: unknown, name = 'redis'): string {
  if (typeof url === 'string') {
    try {
      const u = new URL(url);
      if ((u.protocol === 'redis:' || u.protocol === 'rediss:') && u.hostname) return url;
    } catch { /* not a URL: the error below */ }
  }
  throw new InputError('E_INPUT_OPTION', `Expected a redis:// or rediss:// URL (e.g. redis://127.0.0.1:6379) for ${name} but received ${JSON.stringify(url) ?? String(url)}`);
}

/** A BullMQ queue name: no ':' (BullMQ's key separator), not empty. */
export function checkQueueName(q: unknown, name = 'queue'): string {
  if (typeof q === 'string' && /^[A-Za-z0-9_.-]{1,100}$/.test(q)) return q;
  throw new InputError('E_INPUT_OPTION', `Expected a queue name of letters, digits, '_', '.' or '-' for ${name} but received ${JSON.stringify(q) ?? String(q)}`);
}

export function checkClusterOptions(o: unknown): asserts o is ClusterOptions {
  if (o === null || typeof o !== 'object' || Array.isArray(o))
    throw new InputError('E_INPUT_OPTION', `Expected an object { redis: URL, ... } for cluster but received ${JSON.stringify(o) ?? String(o)}`);
  for (const k of Object.keys(o))
    if (!KEYS.includes(k)) throw new InputError('E_INPUT_OPTION', `unknown cluster option '${k}' (known: ${KEYS.join(', ')})`);
  const c = o as ClusterOptions;
  checkRedisUrl(c.redis, 'cluster.redis');
  if (c.queue !== undefined) checkQueueName(c.queue, 'cluster.queue');
  const int = (k: 'attempts' | 'backoff' | 'pairBlock' | 'pollMs', min: number) => {
    const v = c[k];
    if (v !== undefined && !(Number.isInteger(v) && v >= min && v <= 1e9))
      throw new InputError('E_INPUT_OPTION', `Expected an integer >= ${min} for cluster.${k} but received ${JSON.stringify(v) ?? String(v)}`);
  };
  int('attempts', 1); int('backoff', 0); int('pairBlock', 1); int('pollMs', 10);
}
