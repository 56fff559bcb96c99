// Peak RSS of computeStats through the mapping (MOTHER_MMAP=1: every job mapped, also those with
// pairwise sums, which read with pread by default) against pread (MOTHER_MMAP=0), in one run.
//   node bench/mmap-rss.js [--reps 2] [--addon PATH] [--json FILE]
// Per case (N models of one F32 tensor, written here so they are in the page cache), one child
// process per (mode, repetition), the modes interleaved so that the machine's load hits both
// alike. Each child loads the addon, reads VmHWM (/proc/self/status), runs one job and reads VmHWM
// again: the delta is what the job added to the peak. The bar: mapped peak <= pread peak
// plus a small constant that does not grow with the number of models.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const arg = (name, d) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : d; };
const reps = Number(arg('--reps', '2'));
const addonPath = resolve(arg('--addon', join(root, 'build/Release/mother_cpu.node')));

// N models x MiB each; `flags`: what the job computes (2 threads).
const CASES = [
  { N: 4, mib: 32, flags: { kurtosis: true, sumsq: true } },
  { N: 16, mib: 8, flags: { kurtosis: true, sumsq: true } },
  { N: 64, mib: 4, flags: { kurtosis: true, sumsq: true } },
  { N: 16, mib: 8, flags: { kurtosis: true } },
  { N: 256, mib: 1, flags: { kurtosis: true } },
  { N: 2000, mib: 0.25, flags: { kurtosis: true } },
];

function writeModels(dir, tag, N, n) {
  const files = [];
  const hdr = JSON.stringify({ w: { dtype: 'F32', shape: [n], data_offsets: [0, n * 4] } });
  const pad = hdr + ' '.repeat((8 - (hdr.length % 8)) % 8);
  for (let k = 0; k < N; k++) {
    const buf = Buffer.alloc(8 + pad.length + n * 4);
    buf.writeBigUInt64LE(BigInt(pad.length), 0);
    buf.write(pad, 8);
    const f = new Float32Array(buf.buffer, buf.byteOffset + 8 + pad.length, n);
    for (let i = 0; i < n; i++) f[i] = Math.sin(i * 0.37 + k) * 0.05;
    const path = join(dir, `${tag}-${k}.safetensors`);
    writeFileSync(path, buf);
    files.push({ file: path, offset: 8 + pad.length, dtype: 'F32' });
  }
  return files;
}

const CHILD = `
const fs = require('node:fs');
const addon = require(process.argv[2]);
const job = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'));
const hwm = () => Number(/VmHWM:\\s*(\\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]) / 1024;
(async () => {
  await new Promise((r) => setTimeout(r, 20));
  const before = hwm(), t0 = performance.now();
  const r = await addon.computeStats(job, null, new addon.CancelToken());
  console.log(JSON.stringify({ io: r.io, before, peak: hwm(), seconds: (performance.now() - t0) / 1000 }));
})();`;

const dir = mkdtempSync(join(tmpdir(), 'mother-mmap-rss-'));
const rows = [];
try {
  const script = join(dir, 'child.cjs');
  writeFileSync(script, CHILD);
  console.log(`peak RSS added by one computeStats job (VmHWM delta, MiB), 2 threads, files in the page cache; ${reps} run(s) per mode, interleaved`);
  console.log('     N   MiB/model  job                mmap +MiB   pread +MiB   mmap - pread   per model');
  CASES.forEach((c, ci) => {
    const n = Math.round((c.mib * (1 << 20)) / 4);
    const sources = writeModels(dir, `c${ci}`, c.N, n);
    const job = { tensors: [{ name: 'w', rows: n, cols: 1, sources }], models: c.N, kurtosis: false, sumsq: false, sumabs: false,
      maxabs: false, dot: false, rank: false, perTensor: false, threads: 2, ...c.flags };
    const jobFile = join(dir, `job-${ci}.json`);
    writeFileSync(jobFile, JSON.stringify(job));
    const got = { mmap: [], pread: [] };
    for (let r = 0; r < reps; r++)
      for (const mode of r % 2 ? ['pread', 'mmap'] : ['mmap', 'pread']) {
        const p = spawnSync(process.execPath, [script, addonPath, jobFile], { encoding: 'utf8', env: { ...process.env, MOTHER_MMAP: mode === 'mmap' ? '1' : '0' } });
        if (p.status !== 0) throw new Error(`child failed: ${p.stderr}`);
        const o = JSON.parse(p.stdout.trim());
        if (o.io !== mode) throw new Error(`asked for ${mode}, the runner used ${o.io}`);
        got[mode].push(o.peak - o.before);
      }
    // The smallest delta of each mode: the least disturbed run (deltas only grow with noise).
    const m = Math.min(...got.mmap), p = Math.min(...got.pread);
    const what = Object.keys(c.flags).join('+');
    console.log(`${String(c.N).padStart(6)}  ${String(c.mib).padStart(9)}   ${what.padEnd(17)} ${m.toFixed(1).padStart(9)} ${p.toFixed(1).padStart(12)} ${(m - p).toFixed(1).padStart(14)} ${((m - p) / c.N).toFixed(3).padStart(11)}`);
    rows.push({ N: c.N, mibPerModel: c.mib, flags: c.flags, mmapMiB: got.mmap, preadMiB: got.pread });
    for (const s of sources) rmSync(s.file);
  });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const json = arg('--json');
if (json) writeFileSync(json, JSON.stringify(rows, null, 1));
