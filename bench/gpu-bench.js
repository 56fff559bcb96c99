// End-to-end computeStats, CPU addon vs CUDA addon, on synthetic float32 models written to a temp
// dir (page cache warm after the first pass). Prints one "E2E ..." line per backend and metric set.
//   node bench/gpu-bench.js [models=8] [millionsOfElementsPerModel=32]
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const N = Number(process.argv[2] ?? 8);
const n = Math.round(Number(process.argv[3] ?? 32) * 1e6);

const cpu = require(join(root, 'build/Release/mother_cpu.node'));
const cuda = require(process.env.MOTHER_CUDA_ADDON ?? join(root, 'build-cuda/Release/mother_cuda.node'));
console.log('device:', JSON.stringify(cuda.devices()[0]));

const dir = mkdtempSync(join(tmpdir(), 'mother-gpu-bench-'));
try {
  const files = [];
  let seed = 1;
  const rnd = () => { seed = (seed * 1664525 + 1013904223) >>> 0; return seed / 4294967296 - 0.5; };
  const base = new Float32Array(n);
  for (let i = 0; i < n; i++) base[i] = 0.04 * rnd();
  for (let k = 0; k < N; k++) {
    const header = JSON.stringify({ w: { dtype: 'F32', shape: [n], data_offsets: [0, 4 * n] } });
    const hb = Buffer.from(header + ' '.repeat((8 - (header.length % 8)) % 8));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(hb.length));
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = base[i] + 0.002 * (k + 1) * rnd();
    const path = join(dir, `m${k}.safetensors`);
    const fd = openSync(path, 'w');
    writeSync(fd, len); writeSync(fd, hb); writeSync(fd, Buffer.from(data.buffer));
    closeSync(fd);
    files.push({ path, offset: 8 + hb.length });
  }
  const job = (extra) => ({
    tensors: [{ name: 'w', rows: 1, cols: n, sources: files.map((f) => ({ file: f.path, offset: f.offset, dtype: 'F32' })) }],
    models: N, kurtosis: false, sumsq: false, sumabs: false, maxabs: false, dot: false, rank: false,
    perTensor: false, threads: 0, chunkBytes: 64 << 20, ...extra,
  });
  const sets = { kurtosis: { kurtosis: true }, l2: { sumsq: true }, all: { kurtosis: true, sumsq: true, sumabs: true, maxabs: true, dot: true } };
  for (const [label, extra] of Object.entries(sets)) {
    for (const [name, addon] of [['cpu', cpu], ['cuda', cuda]]) {
      await addon.computeStats(job(extra), null, new addon.CancelToken());  // warm page cache / context
      const t0 = process.hrtime.bigint();
      const r = await addon.computeStats(job(extra), null, new addon.CancelToken());
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      console.log(`E2E ${label} ${name} N=${N} n=${n} seconds=${s.toFixed(3)} GBps=${(r.bytesRead / s / 1e9).toFixed(2)} isa=${r.isa}`);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
