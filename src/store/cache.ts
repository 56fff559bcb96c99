/**
 * The persistent cache of `mother recover --cache FILE` (docs/scale.md): SQLite through
 * better-sqlite3, an embedded database with real transactions. WAL mode lets concurrent processes
 * read while one writes (writers queue on busy_timeout), and a process killed mid-run loses only
 * the transaction it had open: entries are committed in batches, never half-written.
 *
 * What is stored:
 *   sketch(key)  per model: its moments and sample (stats/sketch.ts);
 *   family(key)  per sketch family: the exact pipeline's graph result over its members.
 *   candidates(key)  per tensor selection: the last candidate search (stats/sketch.ts,
 *                CandidateState), so that a run after adding models compares only those.
 *   header(path) per safetensors file: its parsed header (tensor table in `layout`, shared by
 *                files with the same table), trusted while the file's stat is the recorded one.
 * Keys are content keys: per file its size, mtime and a SHA-256 of its first 64 KiB (the header)
 * and 16 sampled stretches; a changed or truncated file gets a new key, so its entries are never
 * trusted (they are recomputed, and the stale ones are simply never read again). The hash of a
 * file whose stat (size, mtime, ctime, inode, device) is exactly the one recorded when it was last
 * hashed is taken from the `filestat` table without reading the file; see fileKeys below and
 * docs/scale.md.
 */
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync, statSync, type BigIntStats } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { ArchitectureGroup } from '../io/catalogue.js';
import { readHeader } from '../io/model.js';
import type { RawHeader, RawTensorEntry } from '../native.js';
import type { CandidateState } from '../stats/sketch.js';

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

/**
 * A file's stat is trusted as a stand-in for its hash only when its last change (ctime) is at
 * least this long before the hash was begun: a change within the same timestamp tick as our read
 * would otherwise leave the stat as recorded and the hash stale ("racy" entries, as git calls
 * them). Such a file is simply hashed again next time. Tests set it to 0.
 */
export const statTrust = { racyMs: 2000 };

/** Content key of one file: size, mtime, hash of the head and of sampled stretches. */
export function fileKey(path: string): string {
  return hashFile(path).key;
}

/** fileKey, with the file's stat (bigint: nanosecond times) taken on the descriptor it hashed. */
function hashFile(path: string): { key: string; st: BigIntStats } {
  const fd = openSync(path, 'r');
  try {
    // The stat recorded first: a change between the two calls leaves it older than the hash, so
    // the next run sees a different stat and hashes again.
    const big = fstatSync(fd, { bigint: true });
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
    return { key: h.digest('hex'), st: big };
  } finally {
    closeSync(fd);
  }
}

/** The stat fields a recorded hash is trusted by (nanosecond times; ctime cannot be set by tools). */
function statRecord(st: BigIntStats): string {
  return `${st.size}:${st.mtimeNs}:${st.ctimeNs}:${st.ino}:${st.dev}`;
}

/** Now, in the nanoseconds of a stat's times: when a read began. */
function nowNs(): bigint {
  return BigInt(Date.now()) * 1000000n;
}

/** A stat taken before a read that began at `began` may stand for what was read (not racy). */
function trustworthy(st: BigIntStats, began: bigint): boolean {
  return st.ctimeNs <= began - BigInt(statTrust.racyMs) * 1000000n;
}

/** Key of the group's tensor selection (names, shapes, dtypes): sketches depend on it. */
export function selectionKey(group: ArchitectureGroup): string {
  return createHash('sha256').update(JSON.stringify(group.tensors.map((t) => [t.name, t.shape]))).digest('hex').slice(0, 32);
}

export class StatsCache {
  private db: Db;
  private getSketch; private putSketch; private getFamily; private putFamily;
  private getStat; private putStat; private getCand; private putCand;
  private getHeader; private putHeader; private getLayout; private putLayout;
  /** Tensor tables read this run, by layout hash: files with one table share it. */
  private layouts = new Map<string, RawTensorEntry[]>();
  private pendingHeaders: { path: string; stat: string; header: RawHeader }[] = [];
  readonly hits = { sketch: 0, family: 0 };
  readonly misses = { sketch: 0, family: 0 };
  /** Files whose hash was taken from the filestat table (stat unchanged), and files hashed. */
  readonly files = { trusted: 0, hashed: 0 };
  /** Safetensors headers taken from the cache (stat unchanged), and headers read from the file. */
  readonly headers = { trusted: 0, parsed: 0 };

  constructor(readonly path: string) {
    const require = createRequire(import.meta.url);
    const Database = require('better-sqlite3') as new (p: string, o?: object) => Db;
    this.db = new Database(path, { timeout: 30_000 });
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(`CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS sketch (key TEXT PRIMARY KEY, moments BLOB NOT NULL, sample BLOB NOT NULL);
      CREATE TABLE IF NOT EXISTS family (key TEXT PRIMARY KEY, result TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS filestat (path TEXT PRIMARY KEY, stat TEXT NOT NULL, key TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS candidates (key TEXT PRIMARY KEY, state BLOB NOT NULL);
      CREATE TABLE IF NOT EXISTS header (path TEXT PRIMARY KEY, stat TEXT NOT NULL, layout TEXT NOT NULL, head TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS layout (hash TEXT PRIMARY KEY, tensors TEXT NOT NULL);
      INSERT OR IGNORE INTO meta VALUES ('schema', '${SCHEMA}');`);
    const v = (this.db.prepare("SELECT v FROM meta WHERE k = 'schema'").get() as { v: string }).v;
    if (v !== String(SCHEMA)) throw new Error(`${path}: cache schema ${v}, this version reads ${SCHEMA}; use a new cache file`);
    this.getSketch = this.db.prepare('SELECT moments, sample FROM sketch WHERE key = ?');
    this.putSketch = this.db.prepare('INSERT OR REPLACE INTO sketch VALUES (?, ?, ?)');
    this.getFamily = this.db.prepare('SELECT result FROM family WHERE key = ?');
    this.putFamily = this.db.prepare('INSERT OR REPLACE INTO family VALUES (?, ?)');
    this.getStat = this.db.prepare('SELECT stat, key FROM filestat WHERE path = ?');
    this.putStat = this.db.prepare('INSERT OR REPLACE INTO filestat VALUES (?, ?, ?)');
    this.getCand = this.db.prepare('SELECT state FROM candidates WHERE key = ?');
    this.putCand = this.db.prepare('INSERT OR REPLACE INTO candidates VALUES (?, ?)');
    this.getHeader = this.db.prepare('SELECT stat, layout, head FROM header WHERE path = ?');
    this.putHeader = this.db.prepare('INSERT OR REPLACE INTO header VALUES (?, ?, ?, ?)');
    this.getLayout = this.db.prepare('SELECT tensors FROM layout WHERE hash = ?');
    this.putLayout = this.db.prepare('INSERT OR IGNORE INTO layout VALUES (?, ?)');
  }

  /**
   * A safetensors header as readHeader gives it (validated natively), taken from the cache when
   * the file's stat (size, mtime and ctime in nanoseconds, inode, device) is the one recorded with
   * it, as fileKeys trusts hashes: a rewritten, truncated or replaced file is parsed again. The
   * stat is taken before the read, so a change during the read leaves a record that the next run
   * does not match; a file changed within statTrust.racyMs before the read is not recorded.
   * Errors are never cached: a bad file fails with its own error every run. Parsed headers are
   * recorded by commitHeaders().
   */
  async readHeader(path: string): Promise<RawHeader> {
    const began = nowNs();  // before the stat: a change after it has a later ctime
    let st: BigIntStats;
    try {
      st = await stat(path, { bigint: true });
    } catch {
      return readHeader(path);  // gone or unreadable: the reader's own error names it
    }
    const record = statRecord(st);
    const row = this.getHeader.get(path) as { stat: string; layout: string; head: string } | undefined;
    const tensors = row && row.stat === record ? this.layout(row.layout) : undefined;
    if (row && tensors) {
      this.headers.trusted++;
      return { path, ...JSON.parse(row.head) as Omit<RawHeader, 'path' | 'tensors'>, tensors };
    }
    this.headers.parsed++;
    const header = await readHeader(path);
    if (trustworthy(st, began)) this.pendingHeaders.push({ path, stat: record, header });
    return header;
  }

  private layout(hash: string): RawTensorEntry[] | undefined {
    let tensors = this.layouts.get(hash);
    if (!tensors) {
      const row = this.getLayout.get(hash) as { tensors: string } | undefined;
      if (!row) return undefined;
      tensors = (JSON.parse(row.tensors) as [string, string, number[], number, number][]).map(([name, dtype, shape, begin, end]) => ({ name, dtype, shape, begin, end }));
      this.layouts.set(hash, tensors);
    }
    return tensors;
  }

  /** Records the headers parsed since the last call, in one transaction. */
  commitHeaders(): void {
    const list = this.pendingHeaders;
    this.pendingHeaders = [];
    if (!list.length) return;
    this.db.transaction(() => {
      for (const { path, stat, header: h } of list) {
        const tensors = JSON.stringify(h.tensors.map((t) => [t.name, t.dtype, t.shape, t.begin, t.end]));
        const hash = createHash('sha256').update(tensors).digest('hex');
        this.putLayout.run(hash, tensors);
        this.putHeader.run(path, stat, hash, JSON.stringify({ fileSize: h.fileSize, headerLength: h.headerLength, dataOffset: h.dataOffset, metadata: h.metadata }));
      }
    })();
  }

  /** Per model of the group: its content key (files + tensor selection). */
  modelKeys(group: ArchitectureGroup): string[] {
    const sel = selectionKey(group);
    const keys = this.fileKeys(group.models.flatMap((m) => m.files));
    return group.models.map((m) => createHash('sha256').update(sel).update(m.files.map((f) => keys.get(f)!).join(',')).digest('hex'));
  }

  /**
   * fileKey of every path. A file whose stat (size, mtime and ctime in nanoseconds, inode, device)
   * equals the one recorded with its last hash keeps that hash without being read; any other file
   * is hashed (header and sampled bytes), and its stat recorded unless its last change is too
   * recent to trust (statTrust). ctime is the guard: every write, truncation or utimes() sets it
   * to the current time and no tool can set it back, so a rewritten file (even one whose size and
   * mtime were restored, as rsync or cp -p do) never matches its old record; a file replaced by
   * another (rename over it) has another inode. A stat the system cannot give fails as before.
   */
  fileKeys(paths: string[]): Map<string, string> {
    const out = new Map<string, string>();
    const record: [string, string, string][] = [];
    for (const path of paths) {
      if (out.has(path)) continue;
      const st = statSync(path, { bigint: true });
      const row = this.getStat.get(path) as { stat: string; key: string } | undefined;
      if (row && row.stat === statRecord(st)) {
        out.set(path, row.key);
        this.files.trusted++;
        continue;
      }
      const began = nowNs();
      const h = hashFile(path);
      out.set(path, h.key);
      this.files.hashed++;
      if (trustworthy(h.st, began)) record.push([path, statRecord(h.st), h.key]);
    }
    if (record.length) this.db.transaction((rows: typeof record) => { for (const r of rows) this.putStat.run(...r); })(record);
    return out;
  }

  /** The last candidate search stored under `key`, or undefined (none, or unreadable). */
  candidateState(key: string): CandidateState | undefined {
    const row = this.getCand.get(key) as { state: Buffer } | undefined;
    if (!row) return undefined;
    try {
      return decodeState(row.state);
    } catch {
      return undefined;  // written by another version: searched again, and replaced
    }
  }

  putCandidateState(key: string, state: CandidateState): void {
    this.putCand.run(key, encodeState(state));
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

// CandidateState as one blob: a JSON head (keys, parameters, list lengths, array sizes), then the
// typed arrays, each at an 8-byte aligned offset.
const STATE_VERSION = 1;

function encodeState(st: CandidateState): Buffer {
  const lens = st.lists.map((l) => l.length);
  const flat = new Int32Array(lens.reduce((a, b) => a + b, 0));
  let o = 0;
  for (const l of st.lists) { flat.set(l, o); o += l.length; }
  const arrays = [st.y, st.norm, st.cd, st.cj, st.csize, flat, st.flags];
  const head = Buffer.from(JSON.stringify({ v: STATE_VERSION, keys: st.keys, params: st.params, lens, sizes: arrays.map((a) => a.length) }));
  const parts: Buffer[] = [];
  const len = Buffer.alloc(4);
  len.writeUInt32LE(head.length);
  parts.push(len, head);
  let at = 4 + head.length;
  for (const a of arrays) {
    const pad = (8 - (at % 8)) % 8;
    parts.push(Buffer.alloc(pad), Buffer.from(a.buffer, a.byteOffset, a.byteLength));
    at += pad + a.byteLength;
  }
  return Buffer.concat(parts);
}

function decodeState(buf: Buffer): CandidateState {
  const n = buf.readUInt32LE(0);
  const head = JSON.parse(buf.subarray(4, 4 + n).toString('utf8')) as { v: number; keys: string[]; params: string; lens: number[]; sizes: number[] };
  if (head.v !== STATE_VERSION) throw new Error('other version');
  const types = [Float32Array, Float64Array, Float64Array, Int32Array, Int32Array, Int32Array, Uint8Array] as const;
  let at = 4 + n;
  const arrays = types.map((T, i) => {
    at += (8 - (at % 8)) % 8;
    const bytes = head.sizes[i]! * T.BYTES_PER_ELEMENT;
    if (at + bytes > buf.length) throw new Error('short state');
    const copy = new Uint8Array(buf.subarray(at, at + bytes)).buffer;  // aligned, owned copy
    at += bytes;
    return new T(copy);
  });
  const [y, norm, cd, cj, csize, flat, flags] = arrays as [Float32Array, Float64Array, Float64Array, Int32Array, Int32Array, Int32Array, Uint8Array];
  const N = head.keys.length;
  if (norm.length !== N || csize.length !== N || flags.length !== N || head.lens.length !== N) throw new Error('inconsistent state');
  const lists: Int32Array[] = [];
  let o = 0;
  for (const l of head.lens) { lists.push(flat.slice(o, o + l)); o += l; }
  return { keys: head.keys, params: head.params, y, norm, cd, cj, csize, lists, flags };
}
