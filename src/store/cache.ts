/**
 * The persistent cache of `mother recover --cache FILE` (docs/scale.md): SQLite through
 * better-sqlite3, an embedded database with real transactions. WAL mode lets concurrent processes
 * read while one writes (writers queue on busy_timeout), and a process killed mid-run loses only
 * the transaction it had open: entries are committed in batches, never half-written.
 *
 * What is stored:
 *   sketch(key)  per model: its moments and sample (stats/sketch.ts);
 *   family(key)  per sketch family: the exact pipeline's graph result over its members.
 * Keys are content keys: per file its size, mtime and a SHA-256 of its first 64 KiB (the header)
 * and 16 sampled stretches; a changed or truncated file gets a new key, so its entries are never
 * trusted (they are recomputed, and the stale ones are simply never read again).
 */
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { ArchitectureGroup } from '../io/catalogue.js';

const SCHEMA = 1;
const HEAD = 64 << 10;
const PROBES = 16, PROBE = 256;

interface Db {
  pragma(s: string): unknown;
  exec(s: string): void;
  prepare(s: string): { get(...a: unknown[]): unknown; run(...a: unknown[]): unknown };
  transaction<F extends (...a: never[]) => unknown>(f: F): F;
  close(): void;
}

/** Content key of one file: size, mtime, hash of the head and of sampled stretches. */
export function fileKey(path: string): string {
  const fd = openSync(path, 'r');
  try {
    const st = fstatSync(fd);
    const h = createHash('sha256');
    h.update(`${st.size}:${st.mtimeMs}:`);
    const head = Buffer.allocUnsafe(Math.min(HEAD, st.size));
    readSync(fd, head, 0, head.length, 0);
    h.update(head);
    if (st.size > HEAD) {
      const buf = Buffer.allocUnsafe(PROBE);
      for (let i = 0; i < PROBES; i++) {
        const at = Math.floor(((st.size - PROBE) * (i + 1)) / (PROBES + 1));
        const n = readSync(fd, buf, 0, PROBE, at);
        h.update(buf.subarray(0, n));
      }
    }
    return h.digest('hex');
  } finally {
    closeSync(fd);
  }
}

/** Key of the group's tensor selection (names, shapes, dtypes): sketches depend on it. */
export function selectionKey(group: ArchitectureGroup): string {
  return createHash('sha256').update(JSON.stringify(group.tensors.map((t) => [t.name, t.shape]))).digest('hex').slice(0, 32);
}

export class StatsCache {
  private db: Db;
  private getSketch; private putSketch; private getFamily; private putFamily;
  readonly hits = { sketch: 0, family: 0 };
  readonly misses = { sketch: 0, family: 0 };

  constructor(readonly path: string) {
    const require = createRequire(import.meta.url);
    const Database = require('better-sqlite3') as new (p: string, o?: object) => Db;
    this.db = new Database(path, { timeout: 30_000 });
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(`CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS sketch (key TEXT PRIMARY KEY, moments BLOB NOT NULL, sample BLOB NOT NULL);
      CREATE TABLE IF NOT EXISTS family (key TEXT PRIMARY KEY, result TEXT NOT NULL);
      INSERT OR IGNORE INTO meta VALUES ('schema', '${SCHEMA}');`);
    const v = (this.db.prepare("SELECT v FROM meta WHERE k = 'schema'").get() as { v: string }).v;
    if (v !== String(SCHEMA)) throw new Error(`${path}: cache schema ${v}, this version reads ${SCHEMA}; use a new cache file`);
    this.getSketch = this.db.prepare('SELECT moments, sample FROM sketch WHERE key = ?');
    this.putSketch = this.db.prepare('INSERT OR REPLACE INTO sketch VALUES (?, ?, ?)');
    this.getFamily = this.db.prepare('SELECT result FROM family WHERE key = ?');
    this.putFamily = this.db.prepare('INSERT OR REPLACE INTO family VALUES (?, ?)');
  }

  /** Per model of the group: its content key (files + tensor selection). */
  modelKeys(group: ArchitectureGroup): string[] {
    const sel = selectionKey(group);
    return group.models.map((m) => createHash('sha256').update(sel).update(m.files.map(fileKey).join(',')).digest('hex'));
  }

  sketch(key: string): { moments: Float64Array; sample: Float32Array } | undefined {
    const row = this.getSketch.get(key) as { moments: Buffer; sample: Buffer } | undefined;
    if (!row) { this.misses.sketch++; return undefined; }
    this.hits.sketch++;
    const copy = (b: Buffer) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
    return { moments: new Float64Array(copy(row.moments)), sample: new Float32Array(copy(row.sample)) };
  }

  /** Stores sketches in one transaction. */
  putSketches(entries: { key: string; moments: Float64Array; sample: Float32Array }[]): void {
    const tx = this.db.transaction((list: typeof entries) => {
      for (const e of list) this.putSketch.run(e.key, Buffer.from(e.moments.buffer, e.moments.byteOffset, e.moments.byteLength), Buffer.from(e.sample.buffer, e.sample.byteOffset, e.sample.byteLength));
    });
    tx(entries);
  }

  family<T>(key: string): T | undefined {
    const row = this.getFamily.get(key) as { result: string } | undefined;
    if (!row) { this.misses.family++; return undefined; }
    this.hits.family++;
    return JSON.parse(row.result) as T;
  }

  putFamilyResult(key: string, value: unknown): void {
    this.putFamily.run(key, JSON.stringify(value));
  }

  close(): void {
    this.db.close();
  }
}
