/**
 * Memory-mapped reading in the CPU runner (docs/robustness.md, "Memory-mapped reading"): the
 * mapping gives the same bits as pread for every format; a file truncated to zero while 4 threads
 * read it fails that job with E_IO_TRUNCATED and nothing else; SIGBUS that is not ours still goes
 * to Node's listener or the default action; peak RSS stays bounded; MOTHER_MMAP=0 (and files that
 * cannot be mapped) fall back to pread with a note in the result. By default only the moments-only
 * pass maps its files (jobs that copy every byte read with pread); MOTHER_MMAP=1 maps every job's.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { runJob } from '../src/stats/compute.js';
import type { StatsJob, StatsResult } from '../src/native.js';
import { ModelIOError, type MotherError } from '../src/errors.js';
import { makeTempDir, randomValues, removeTempDir, writeJobModels } from './helpers/safetensors.js';

let dir: string;
beforeAll(async () => { dir = await makeTempDir('mother-mmap-'); });
afterAll(async () => { await removeTempDir(dir); });

type Job = Omit<StatsJob, 'threads' | 'device'>;
const base = { kurtosis: false, sumsq: false, sumabs: false, maxabs: false, dot: false, rank: false, perTensor: true };

/** MOTHER_MMAP for the calls of `fn` (undefined: unset), restored after. */
async function withMmap<T>(value: string | undefined, fn: () => Promise<T>): Promise<T> {
  const before = process.env.MOTHER_MMAP;
  if (value === undefined) delete process.env.MOTHER_MMAP;
  else process.env.MOTHER_MMAP = value;
  try {
    return await fn();
  } finally {
    if (before === undefined) delete process.env.MOTHER_MMAP;
    else process.env.MOTHER_MMAP = before;
  }
}

/** Runs the job with mapped reads (MOTHER_MMAP=1: every pass, pairwise jobs included) and with MOTHER_MMAP=0 (pread). */
async function bothWays(job: Job, threads = 2): Promise<{ mapped: StatsResult; plain: StatsResult }> {
  const mapped = await withMmap('1', () => runJob(job, { backend: 'cpu', threads }));
  const plain = await withMmap('0', () => runJob(job, { backend: 'cpu', threads }));
  return { mapped, plain };
}

// Jobs with pairwise sums (or only rank/spectrum passes) copy every byte they read, and read with
// pread unless MOTHER_MMAP=1; the tests of the mapped paths below set it for the whole describe.
function mapEveryJob() {
  let before: string | undefined;
  beforeAll(() => { before = process.env.MOTHER_MMAP; process.env.MOTHER_MMAP = '1'; });
  afterAll(() => { if (before === undefined) delete process.env.MOTHER_MMAP; else process.env.MOTHER_MMAP = before; });
}

describe('which jobs are mapped by default', () => {
  it('the moments-only pass reads the mapping; jobs that copy every byte read with pread, without a note', async () => {
    const { tensors } = await writeJobModels(dir, 'policy', 3, [{ name: 'w', shape: [256, 64] }],
      (_t, k) => randomValues(256 * 64, 20 + k), () => 'F32');
    const job: Job = { ...base, tensors, models: 3 };
    await withMmap(undefined, async () => {
      const k = await runJob({ ...job, kurtosis: true }, { backend: 'cpu', threads: 2 });
      expect(k.io).toBe('mmap');
      for (const flags of [{ kurtosis: true, sumsq: true }, { dot: true }, { rank: true }]) {
        const r = await runJob({ ...job, ...flags }, { backend: 'cpu', threads: 2 });
        expect(r.io).toBe('pread');
        expect(r.ioNotes).toBeUndefined();
      }
    });
    // MOTHER_MMAP=1 maps them too, with the same bits.
    const pairwise = { ...job, kurtosis: true, sumsq: true };
    const byDefault = await withMmap(undefined, () => runJob(pairwise, { backend: 'cpu', threads: 2 }));
    const forced = await withMmap('1', () => runJob(pairwise, { backend: 'cpu', threads: 2 }));
    expect(forced.io).toBe('mmap');
    expect(numbers(forced)).toEqual(numbers(byDefault));
  });
});

const numbers = (r: StatsResult) => {
  const { backend, isa, threads, bytesRead, seconds, io, ioNotes, ...rest } = r;
  void backend; void isa; void threads; void seconds; void io; void ioNotes;
  return { bytesRead, ...rest };
};

describe('mapped reads', () => {
  mapEveryJob();
  it('give the same bits as pread: F64/F32/F16/BF16, every statistic, rank and spectrum passes', async () => {
    const specs = [{ name: 'a', shape: [48, 40] }, { name: 'b', shape: [33] }, { name: 'c', shape: [64, 72] }, { name: 'd', shape: [7, 5] }];
    const dtypes = ['F64', 'F32', 'F16', 'BF16'] as const;
    const { tensors } = await writeJobModels(dir, 'plain', 4, specs,
      (t, k) => randomValues(specs[t]!.shape.reduce((a, b) => a * b, 1), 100 * t + k),
      (t, k) => dtypes[(t + k) % 4]!);
    const job: Job = { ...base, tensors, models: 4, kurtosis: true, sumsq: true, sumabs: true, maxabs: true, dot: true, rank: true, spectrum: true };
    for (const threads of [1, 3]) {
      const { mapped, plain } = await bothWays(job, threads);
      expect(mapped.io).toBe('mmap');
      expect(mapped.ioNotes).toBeUndefined();
      expect(plain.io).toBe('pread');
      expect(plain.ioNotes).toEqual(['MOTHER_MMAP=0: files read with pread']);
      expect(numbers(mapped)).toEqual(numbers(plain));
    }
    // Moments only (the zero-copy path for F32): same bits too, also with unaligned F32 data.
    const kOnly = { ...job, sumsq: false, sumabs: false, maxabs: false, dot: false, rank: false, spectrum: false };
    const { mapped, plain } = await bothWays(kOnly);
    expect(numbers(mapped)).toEqual(numbers(plain));
  });

  it('give the same bits as pread for GGUF blocks and permuted rows', async () => {
    // Raw block files (random bytes: some scales are NaN or Inf, which must match too).
    const types = [['Q8_0', 34, 32], ['Q4_0', 18, 32], ['Q4_K', 144, 256], ['Q6_K', 210, 256]] as const;
    const tensors = [];
    for (const [type, bb, be] of types) {
      const rows = 8, cols = be * 3, blocks = (rows * cols) / be;
      const sources = [];
      for (let k = 0; k < 3; k++) {
        const bytes = new Uint8Array(blocks * bb + 5);
        let s = 7 + k * 31 + bb;
        for (let i = 0; i < bytes.length; i++) { s = (Math.imul(s, 1103515245) + 12345) >>> 0; bytes[i] = s >>> 24; }
        const file = join(dir, `${type}-${k}.bin`);
        await writeFile(file, bytes);
        sources.push({ file, offset: 5, dtype: type, ...(type === 'Q8_0' ? { permuteHeads: 2 } : {}) });
      }
      tensors.push({ name: type, rows, cols, sources });
    }
    const job = { ...base, tensors, models: 3, kurtosis: true, sumsq: true, dot: true, rank: true, chunkBytes: 3 * 4 * 100 } as Job;
    const { mapped, plain } = await bothWays(job);
    expect(mapped.io).toBe('mmap');
    expect(numbers(mapped)).toEqual(numbers(plain));
  });

  const sysfs = '/sys/devices/system/cpu/online';  // a regular file (size 4096) that sysfs will not map
  it.skipIf(!existsSync(sysfs))('fall back to pread, with a note, for a file its filesystem will not map', async () => {
    const { tensors, files } = await writeJobModels(dir, 'fallback', 1, [{ name: 'w', shape: [1, 1] }], () => Float64Array.of(0.5), () => 'F32');
    const job: Job = {
      ...base, models: 2, kurtosis: true, sumsq: true,
      tensors: [{ ...tensors[0]!, sources: [tensors[0]!.sources[0]!, { file: sysfs, offset: 0, dtype: 'F32' }] }],
    };
    const r = await runJob(job, { backend: 'cpu', threads: 2 });
    expect(r.io).toBe('mmap+pread');
    expect(r.ioNotes).toEqual([`${sysfs}: cannot be mapped (mmap: No such device), read with pread`]);
    const text = readFileSync(sysfs).subarray(0, 4);
    const v = new DataView(text.buffer, text.byteOffset, 4).getFloat32(0, true);
    expect(r.moments!.n[1]).toBe(Number.isFinite(v) ? 1 : 0);
    void files;
  });

  it('leave no mapping behind', async () => {
    const { tensors, files } = await writeJobModels(dir, 'maps', 3, [{ name: 'w', shape: [1024, 700] }],
      (_t, k) => randomValues(1024 * 700, k), () => 'F32');
    const r = await runJob({ ...base, tensors, models: 3, kurtosis: true, sumsq: true }, { backend: 'cpu', threads: 2 });
    expect(r.io).toBe('mmap');
    const maps = readFileSync('/proc/self/maps', 'utf8');
    for (const f of files) expect(maps).not.toContain(f);
  });
});

describe('a file truncated while mapped', () => {
  mapEveryJob();
  it('truncated to zero while 4 threads read it: E_IO_TRUNCATED for it, the process lives, the others are unchanged', async () => {
    const rows = 2048, cols = 1024, N = 6;
    const { tensors, files } = await writeJobModels(dir, 'zero', N, [{ name: 'big', shape: [rows, cols] }],
      (_t, k) => randomValues(rows * cols, 40 + k), () => 'F32');
    const victim = 2;
    // Small chunks: thousands of items, so the 4 threads are mid-way through when progress arrives.
    const job = (keep: number[]): Job => ({
      ...base, models: keep.length, kurtosis: true, sumsq: true, dot: true, chunkBytes: keep.length * 4 * 512,
      tensors: tensors.map((t) => ({ ...t, sources: keep.map((k) => t.sources[k]!) })),
    });
    const others = [0, 1, 3, 4, 5];
    const before = await runJob(job(others), { backend: 'cpu', threads: 4 });
    let truncatedAt = -1;
    const e = await runJob(job([0, 1, 2, 3, 4, 5]), {
      backend: 'cpu', threads: 4,
      onProgress: (done, total) => {
        if (truncatedAt < 0 && done < total / 2) { truncatedAt = done / total; truncateSync(files[victim]!, 0); }
      },
    }).then(() => null, (x: unknown) => x as MotherError);
    expect(truncatedAt).toBeGreaterThanOrEqual(0);
    expect(e).toBeInstanceOf(ModelIOError);
    expect(e!.code).toBe('E_IO_TRUNCATED');
    expect(e!.file).toBe(files[victim]);
    expect(e!.tensor).toBe('big');
    // Caught by the SIGBUS guard (a fault at a byte past the new end), not only by the check at the end.
    expect(e!.message).toMatch(/ends at byte 0 but byte \d+ was needed \(tensor big\): the file was truncated or replaced while being read/);
    // The process and the addon are fine: the other models give the same statistics as before.
    const after = await runJob(job(others), { backend: 'cpu', threads: 4 });
    expect(after.io).toBe('mmap');
    expect(numbers(after)).toEqual(numbers(before));
  });

  it('rewritten in place (same size) while read: E_IO_TRUNCATED, not a silent mix of old and new bytes', async () => {
    const { tensors, files } = await writeJobModels(dir, 'rewrite', 3, [{ name: 'w', shape: [1024, 512] }],
      (_t, k) => randomValues(1024 * 512, 70 + k), () => 'F32');
    const bytes = readFileSync(files[1]!);
    let done = false;
    const e = await runJob({ ...base, tensors, models: 3, kurtosis: true, sumsq: true, chunkBytes: 3 * 4 * 256 }, {
      backend: 'cpu', threads: 2,
      onProgress: () => { if (!done) { done = true; writeFileSync(files[1]!, bytes); } },
    }).then(() => null, (x: unknown) => x as MotherError);
    expect(done).toBe(true);
    expect(e).toMatchObject({ code: 'E_IO_TRUNCATED', file: files[1] });
  });
});

// Children run the addon alone, so that signal dispositions can be looked at and a real SIGBUS
// delivered without taking vitest down.
const addonPath = resolve(process.env.MOTHER_CPU_ADDON ?? 'build/Release/mother_cpu.node');
const sanitized = !!process.env.MOTHER_CPU_ADDON;

// Inside a child: writes N F32 models of one tensor and returns a job over them.
const CHILD_LIB = `
const fs = require('node:fs'), path = require('node:path');
function models(tag, N, rows, cols) {
  const files = [];
  for (let k = 0; k < N; k++) {
    const hdr = JSON.stringify({ w: { dtype: 'F32', shape: [rows, cols], data_offsets: [0, rows * cols * 4] } });
    const pad = hdr + ' '.repeat((8 - (hdr.length % 8)) % 8);
    const buf = Buffer.alloc(8 + pad.length + rows * cols * 4);
    buf.writeBigUInt64LE(BigInt(pad.length), 0);
    buf.write(pad, 8);
    const f = new Float32Array(buf.buffer, buf.byteOffset + 8 + pad.length, rows * cols);
    for (let i = 0; i < f.length; i++) f[i] = Math.sin(i * 0.37 + k) * 0.05;
    const p = path.join(${JSON.stringify('DIR')}, tag + '-' + k + '.safetensors');
    fs.writeFileSync(p, buf);
    files.push({ path: p, offset: 8 + pad.length });
  }
  return files;
}
function job(files, rows, cols, extra) {
  return Object.assign({ tensors: [{ name: 'w', rows, cols, sources: files.map((f) => ({ file: f.path, offset: f.offset, dtype: 'F32' })) }],
    models: files.length, kurtosis: true, sumsq: false, sumabs: false, maxabs: false, dot: false, rank: false, perTensor: false, threads: 2 }, extra);
}
const stats = (j, p) => addon.computeStats(j, p || null, new addon.CancelToken());
const rssMiB = () => Number(/VmHWM:\\s*(\\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]) / 1024;
`;
const lib = () => CHILD_LIB.replace(JSON.stringify('DIR'), JSON.stringify(dir));

describe('SIGBUS that is not ours (child processes)', () => {
  it('goes to the default action: the process still dies of SIGBUS', () => {
    const r = childIn(`
      (async () => {
        const files = models('dfl', 2, 64, 64);
        await stats(job(files, 64, 64));   // the guard's handler is installed now
        process.kill(process.pid, 'SIGBUS');
        setTimeout(() => console.log('survived'), 200);
      })();`);
    expect(r.stdout).not.toContain('survived');
    if (!sanitized) expect(r.signal).toBe('SIGBUS');
    else expect(r.status !== 0 || r.signal !== null).toBe(true);  // the sanitizer's handler had it
  });

  it("goes to Node's own listener installed after ours; truncation is still caught after it", () => {
    const r = childIn(`
      (async () => {
        await stats(job(models('warm', 3, 1024, 512), 1024, 512));
        process.on('SIGBUS', () => { console.log('listener'); });   // libuv's handler now in front of ours
        // The cut is made from a progress callback, which reaches JS asynchronously: on a loaded
        // machine the job can have read (and checked) everything first and rightly succeed. So up
        // to 5 tries, on fresh files, until the cut lands while the job runs.
        let cut = false, e = null, files;
        for (let attempt = 0; attempt < 5 && !e; attempt++) {
          files = models('node' + attempt, 3, 4096, 512);
          cut = false;
          e = await stats(job(files, 4096, 512, { chunkBytes: 3 * 4 * 256 }), (done, total) => {
            if (!cut && done < total / 2) { cut = true; fs.truncateSync(files[1].path, 4096); }
          }).then(() => null, (x) => x);
        }
        console.log('job', cut, e && e.code, e && e.file === files[1].path);
        process.kill(process.pid, 'SIGBUS');
        setTimeout(() => console.log('alive'), 200);
      })();`);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('job true E_IO_TRUNCATED true');
    expect(r.stdout).toContain('listener');
    expect(r.stdout).toContain('alive');
    expect(r.status).toBe(0);
  });
});

function childIn(source: string, env: Record<string, string> = {}) {
  const script = join(dir, `child-${Math.random().toString(36).slice(2)}.cjs`);
  writeFileSync(script, `const addon = require(${JSON.stringify(addonPath)});\n${lib()}\n${source}`);
  return spawnSync(process.execPath, [script], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
}

describe('memory', () => {
  it('peak RSS: the mapping adds a constant to the pread peak, not an amount per model', async () => {
    // 16 models x 8 MiB and 64 x 2 MiB of F32 (128 MiB each), written here (so in the page cache);
    // each child only loads the addon and runs one job on 2 threads: kurtosis + sumsq (the
    // item-major pass), then kurtosis alone (the model-major moments pass).
    const run = (jobFile: string, mode: string) => {
      const r = childIn(`
        (async () => {
          const j = JSON.parse(fs.readFileSync(${JSON.stringify(jobFile)}, 'utf8'));
          const before = rssMiB();
          const r = await stats(j);
          console.log(JSON.stringify({ io: r.io, before, peak: rssMiB() }));
        })();`, { MOTHER_MMAP: mode });
      expect(r.stderr).toBe('');
      return JSON.parse(r.stdout.trim()) as { io: string; before: number; peak: number };
    };
    for (const [N, rows] of [[16, 2048], [64, 512]] as const) {
      const { tensors } = await writeJobModels(dir, `rss${N}`, N, [{ name: 'w', shape: [rows, 1024] }],
        (_t, k) => randomValues(rows * 1024, 90 + k), () => 'F32');
      for (const flags of [{ kurtosis: true, sumsq: true }, { kurtosis: true }]) {
        const jobFile = join(dir, `rss-job-${N}.json`);
        writeFileSync(jobFile, JSON.stringify({ ...base, tensors, models: N, ...flags, perTensor: false, threads: 2 }));
        const mapped = run(jobFile, '1'), plain = run(jobFile, '0');
        expect(mapped.io).toBe('mmap');
        expect(plain.io).toBe('pread');
        console.log(`peak RSS, ${N} models x ${rows * 4 / 1024} MiB, ${Object.keys(flags).join('+')}: mmap +${(mapped.peak - mapped.before).toFixed(1)} MiB, pread +${(plain.peak - plain.before).toFixed(1)} MiB`);
        // Each thread maps only the stretch it is reading (at most two 2 MiB blocks in flight),
        // given back as soon as it is read: a few MiB in all, whatever N (it was N x 4 MiB).
        expect(mapped.peak - mapped.before).toBeLessThan(plain.peak - plain.before + 12);
      }
    }
  }, 60_000);
});

describe('recover() and the pread fall-back', () => {
  it('says in its warnings, once, that the files were read with pread', async () => {
    const { recover } = await import('../src/index.js');
    const zoo = resolve(import.meta.dirname, '../examples/zoo/ft');
    const mapped = await recover(zoo, { bootstrap: 0 });
    process.env.MOTHER_MMAP = '0';
    try {
      const plain = await recover(zoo, { bootstrap: 0 });
      expect(plain.diagnostics.warnings.filter((w) => w.includes('MOTHER_MMAP=0: files read with pread'))).toHaveLength(1);
      expect(mapped.diagnostics.warnings.some((w) => w.includes('pread'))).toBe(false);
      expect(plain.models).toEqual(mapped.models);
    } finally {
      delete process.env.MOTHER_MMAP;
    }
  });
});
