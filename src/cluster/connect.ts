/**
 * Redis connections for the cluster. BullMQ (through ioredis) reconnects forever by default, so
 * an unreachable URL would hang a run; both the coordinator and the worker first try one
 * connection with a short timeout and fail with the URL named.
 */
import { Redis } from 'ioredis';
import type { ConnectionOptions } from 'bullmq';
import { MotherError } from '../errors.js';

/** The URL as it may be printed: a password replaced by '***'. */
export function shownUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url;
  }
}

/** One connection and a PING; rejects with E_INPUT_REDIS naming the URL. */
export async function probeRedis(url: string, timeoutMs = 5000): Promise<void> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: timeoutMs, enableOfflineQueue: false });
  r.on('error', () => {}); // reported by connect() below
  try {
    await r.connect();
    await r.ping();
  } catch (err) {
    throw new MotherError('E_INPUT_REDIS', `cannot reach Redis at ${shownUrl(url)}: ${(err as Error).message || String(err)}`);
  } finally {
    r.disconnect();
  }
}

/** BullMQ's connection options for a URL (blocking commands need maxRetriesPerRequest null). */
export function bullConnection(url: string): ConnectionOptions {
  return { url, maxRetriesPerRequest: null };
}

/**
 * Where a worker leaves a unit's result (JSON), for the coordinator to read once and delete. Not
 * the job's return value: BullMQ copies that into its events stream as well (kept to 10,000
 * entries), which for megabyte results doubles the traffic and holds gigabytes in Redis.
 */
export function resultKey(queue: string, unit: string): string {
  return `mother:${queue}:result:${unit}`;
}

/** How long an uncollected result stays (an abandoned run's results expire). */
export const RESULT_TTL_S = 24 * 3600;
